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
import { FakeAir, type FakeAirOptions } from '../src/testing.js';
import { centralAndPeripheral, hostilePeripheral } from './harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function message(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + (i >> 8)) & 0xff);
}

/** Two multiplexers (real time) joined by BLE over the fake air, plus any extra driver pairs. */
function world(
  extra: readonly (readonly [LinkDriver, LinkDriver])[] = [],
  airOptions: FakeAirOptions = {},
) {
  const air = new FakeAir({ mtu: 185, bytesPerS: 20_000, ...airOptions });
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
    // Resumed, not restarted: the same session, and what crossed before the cut is not delivered
    // again — the next message is the second and last one.
    const next = message(500, 7);
    await w.a.send(w.b.peerId, next);
    await waitFor(() => w.got.length === 2, { what: 'the next message' });
    expect(w.got.map((m) => m.data)).toEqual([payload, next]);
    expect(w.b.peers()[0]?.metrics.messagesReceived).toBe(2);
    expect(w.a.counters.sessionResets + w.b.counters.sessionResets).toBe(0);
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

  it('with BLE and a second transport both up, BLE dropping mid-message: completed over the other, once', async () => {
    const net = new LoopbackNetwork();
    const la = net.driver('lan-a');
    const lb = net.driver('lan-b');
    const w = world([[la, lb]]);
    // A slower second link (5 KB/s, standing in for a weak LAN/Wi-Fi path) up from the start:
    // the multiplexer uses both at once, so the message is split over BLE and it.
    const lan = net.connect(la, lb, {
      maxFrameBytes: 512,
      bandwidthBytesPerS: 5_000,
      latencyMs: 5,
      transport: 'lan',
    });
    await waitFor(() => (w.a.peers()[0]?.links.length ?? 0) === 2, { what: 'peer over both' });
    const payload = message(30_000, 8);
    await w.a.send(w.b.peerId, payload);
    await waitFor(() => w.peripheral.counters.bytesIn > 8_000, { what: 'part of it over BLE' });
    const lanBefore = lan.stats.aToB.bytesSent;
    expect(lanBefore).toBeGreaterThan(0); // both links were carrying it
    expect(w.got).toHaveLength(0);
    w.air.jam(); // BLE drops, with frames in flight, and stays down
    await waitFor(() => w.central.links.length === 0, { what: 'BLE down' });
    await waitFor(() => w.got.length === 1, {
      what: 'the message over the LAN',
      timeoutMs: 20_000,
    });
    expect(w.got[0]?.data).toEqual(payload);
    expect(lan.stats.aToB.bytesSent).toBeGreaterThan(lanBefore + 5_000); // the rest went this way
    // Exactly once: another message follows it, nothing else arrives.
    const next = message(400, 9);
    await w.a.send(w.b.peerId, next);
    await waitFor(() => w.got.length === 2, { what: 'the next message' });
    expect(w.got.map((m) => m.data)).toEqual([payload, next]);
    expect(w.b.peers()[0]?.metrics.messagesReceived).toBe(2);
    expect(w.a.peers()[0]?.links.map((l) => l.transport)).toEqual(['lan']);
  });

  it('counts garbage frames from a hostile BLE device in the multiplexer while the honest peer carries on', async () => {
    // Room in the radio for the hostile burst (each connection still gets 20 KB/s).
    const w = world([], { radioQueueFrames: 1_000 });
    const hostile = await hostilePeripheral(w.air, 'z9'); // a1 < z9: the central dials it too
    cleanups.push(() => hostile.close());
    await waitFor(() => w.a.peers().some((p) => p.connected) && hostile.subscribed(), {
      what: 'the honest peer and the hostile device linked',
    });
    const random = seededRandom(99);
    for (let i = 0; i < 300; i++) {
      const n = 1 + Math.floor(random() * 182);
      hostile.notify(Buffer.from(Uint8Array.from({ length: n }, () => random() * 256)));
    }
    const honest = message(8_000, 10);
    const got: Uint8Array[] = [];
    w.a.onMessage((m) => got.push(m.data));
    await w.b.send(w.a.peerId, honest);
    await waitFor(() => got.length === 1, { what: "the honest peer's message", timeoutMs: 20_000 });
    expect(got[0]).toEqual(honest);
    const rejected = (): number =>
      w.a.counters.malformedFrames +
      w.a.counters.unauthenticatedFrames +
      w.a.counters.handshakesFailed;
    await waitFor(() => rejected() > 0, { what: 'garbage counted by the multiplexer' });
    // The hostile device never became a peer; the honest one never lost its session.
    expect(w.a.peers().map((p) => p.peerId)).toEqual([w.b.peerId]);
    expect(w.a.counters.sessionResets).toBe(0);
  });
});
