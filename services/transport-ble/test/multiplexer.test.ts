import { afterEach, describe, expect, it } from 'vitest';
import {
  createIdentity,
  LoopbackNetwork,
  Multiplexer,
  seededRandom,
  type InboundMessage,
  type LinkDriver,
} from '@lattice/multiplexer';
import { waitFor } from '@lattice/testing';
import { FakeAir } from '../src/testing.js';
import { centralAndPeripheral } from './harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function message(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + (i >> 8)) & 0xff);
}

/** Two multiplexers (real time) joined by BLE over the fake air, plus any extra driver pairs. */
function world(extra: readonly (readonly [LinkDriver, LinkDriver])[] = []) {
  const air = new FakeAir({ mtu: 185, bytesPerS: 20_000 });
  const { central, peripheral } = centralAndPeripheral(air);
  const a = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(1)) });
  const b = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(2)) });
  a.attach(central);
  b.attach(peripheral);
  for (const [da, db] of extra) {
    a.attach(da);
    b.attach(db);
  }
  const got: InboundMessage[] = [];
  b.onMessage((m) => got.push(m));
  cleanups.push(
    () => air.close(),
    () => peripheral.close(),
    () => central.close(),
    () => b.close(),
    () => a.close(),
  );
  peripheral.start();
  central.start();
  return { air, central, peripheral, a, b, got };
}

describe('Multiplexer over BLE (fake air, real time)', () => {
  it('completes a message cut mid-way once the BLE link comes back', async () => {
    const w = world();
    await waitFor(() => w.a.peers().some((p) => p.connected), { what: 'peer up over BLE' });
    const payload = message(24_000, 1); // ~1.2 s at 20 KB/s
    await w.a.send(w.b.peerId, payload);
    await waitFor(() => w.peripheral.counters.bytesIn > 6_000, { what: 'a quarter across' });
    expect(w.got).toHaveLength(0);
    w.air.cut();
    await waitFor(() => w.got.length === 1, { what: 'the message', timeoutMs: 20_000 });
    expect(w.got[0]?.data).toEqual(payload);
    expect(w.air.stats.connections).toBeGreaterThanOrEqual(2); // it did reconnect
  });

  it('delivers every message intact through disconnects at random moments (seeded)', async () => {
    const w = world();
    const random = seededRandom(12);
    await waitFor(() => w.a.peers().some((p) => p.connected), { what: 'peer up over BLE' });
    const payloads = [message(9_000, 3), message(15_000, 4), message(300, 5), message(7_000, 6)];
    for (const p of payloads) await w.a.send(w.b.peerId, p);
    let cuts = 0;
    let timer: NodeJS.Timeout | undefined;
    const chaos = (): void => {
      timer = setTimeout(
        () => {
          if (w.central.links.length > 0) {
            w.air.cut();
            cuts++;
          }
          chaos();
        },
        150 + random() * 400,
      );
    };
    chaos();
    try {
      await waitFor(() => w.got.length === payloads.length, {
        what: 'every message',
        timeoutMs: 30_000,
      });
    } finally {
      clearTimeout(timer);
    }
    expect(w.got.map((m) => m.data)).toEqual(payloads);
    expect(cuts).toBeGreaterThanOrEqual(2);
  });

  it('fails a message over to another transport when BLE stays down', async () => {
    // A second, slower transport (an in-process loopback standing in for the LAN).
    const net = new LoopbackNetwork();
    const la = net.driver('lan-a');
    const lb = net.driver('lan-b');
    const w = world([[la, lb]]);
    await waitFor(() => w.a.peers().some((p) => p.connected), { what: 'peer up over BLE' });
    await waitFor(() => w.central.links.length === 1, { what: 'BLE link' });
    const payload = message(24_000, 2);
    await w.a.send(w.b.peerId, payload);
    await waitFor(() => w.peripheral.counters.bytesIn > 6_000, { what: 'a quarter over BLE' });
    w.air.jam(); // BLE gone for good
    await waitFor(() => w.central.links.length === 0, { what: 'BLE down' });
    net.connect(la, lb, { maxFrameBytes: 1_024, bandwidthBytesPerS: 200_000 });
    await waitFor(() => w.got.length === 1, {
      what: 'the message via loopback',
      timeoutMs: 20_000,
    });
    expect(w.got[0]?.data).toEqual(payload);
    expect(w.central.links).toHaveLength(0);
  });
});
