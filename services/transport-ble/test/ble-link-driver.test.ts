import { afterEach, describe, expect, it } from 'vitest';
import type { Characteristic, Noble, Peripheral } from '@stoprocent/noble';
import { waitFor } from '@lattice/testing';
import type { LinkEvent, LinkId, LinkInfo } from '@lattice/multiplexer';
import { BleLinkDriver, LATTICE_RX_UUID, LATTICE_SERVICE_UUID } from '../src/index.js';
import { FakeAir, type FakeAirOptions } from '../src/testing.js';
import { centralAndPeripheral, FAST, hostilePeripheral } from './harness.js';

interface Recorded {
  readonly events: LinkEvent[];
  up(): LinkInfo | undefined;
  frames(id: LinkId): Uint8Array[];
  downs(id: LinkId): number;
}

function record(driver: BleLinkDriver): Recorded {
  const events: LinkEvent[] = [];
  driver.listen((e) => events.push(e));
  return {
    events,
    up() {
      const live = new Map<LinkId, LinkInfo>();
      for (const e of events) {
        if (e.type === 'up') live.set(e.link.id, e.link);
        if (e.type === 'down') live.delete(e.linkId);
      }
      return [...live.values()].pop();
    },
    frames: (id) => events.flatMap((e) => (e.type === 'frame' && e.linkId === id ? [e.data] : [])),
    downs: (id) => events.filter((e) => e.type === 'down' && e.linkId === id).length,
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function pair(
  airOptions: FakeAirOptions,
  options: Partial<ConstructorParameters<typeof BleLinkDriver>[0]> = {},
): Promise<{
  air: FakeAir;
  central: BleLinkDriver;
  peripheral: BleLinkDriver;
  rc: Recorded;
  rp: Recorded;
  lc: LinkInfo;
  lp: LinkInfo;
}> {
  const air = new FakeAir(airOptions);
  const { central, peripheral } = centralAndPeripheral(air, options);
  cleanups.push(
    () => air.close(),
    () => peripheral.close(),
    () => central.close(),
  );
  const rc = record(central);
  const rp = record(peripheral);
  peripheral.start();
  central.start();
  await waitFor(() => rc.up() !== undefined && rp.up() !== undefined, { what: 'link up' });
  return { air, central, peripheral, rc, rp, lc: rc.up() as LinkInfo, lp: rp.up() as LinkInfo };
}

function frame(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed * 7) & 0xff);
}

/** Sends every frame, awaiting `writable` (the event itself, no polling) whenever refused. */
async function sendAll(
  driver: BleLinkDriver,
  _rec: Recorded,
  id: LinkId,
  frames: readonly Uint8Array[],
): Promise<void> {
  let wake: (() => void) | undefined;
  const stop = driver.listen((e) => {
    if ((e.type === 'writable' || e.type === 'down') && e.linkId === id) wake?.();
  });
  try {
    for (const f of frames) {
      while (!driver.send(id, f)) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no writable within 10 s')), 10_000);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  } finally {
    stop();
  }
}

/** A raw noble central (no driver): finds the Lattice peripheral, connects, discovers. */
async function rawCentral(
  noble: Noble,
  subscribe: boolean,
): Promise<{ rx: Characteristic; tx: Characteristic }> {
  await noble.waitForPoweredOnAsync();
  const found = new Promise<Peripheral>((resolve) => noble.once('discover', resolve));
  await noble.startScanningAsync([LATTICE_SERVICE_UUID], false);
  const p = await found;
  await p.connectAsync();
  const { characteristics } = await p.discoverAllServicesAndCharacteristicsAsync();
  const rx = characteristics.find((c) => c.properties.includes('writeWithoutResponse'));
  const tx = characteristics.find((c) => c.properties.includes('notify'));
  if (rx === undefined || tx === undefined) throw new Error('no Lattice characteristics');
  if (subscribe) await tx.subscribeAsync();
  return { rx, tx };
}

describe('BleLinkDriver over the fake air', () => {
  it.each([
    [23, 20],
    [185, 182],
    [517, 514],
  ])('MTU %i gives %i-byte frames on both ends, and carries one of that size', async (mtu, max) => {
    const { central, peripheral, rc, rp, lc, lp } = await pair({ mtu });
    expect(lc.capabilities.maxFrameBytes).toBe(max);
    expect(lp.capabilities.maxFrameBytes).toBe(max);
    expect(lc.capabilities).toMatchObject({ kind: 1, reliable: true, ordered: true });
    // The 20 000 B/s budget counts each value's 3-byte ATT header; the rest is for frames.
    expect(lc.capabilities.bandwidthBytesPerS).toBe(Math.floor((20_000 * max) / (max + 3)));
    expect(() => central.send(lc.id, new Uint8Array(max + 1))).toThrow(
      expect.objectContaining({ code: 'MUX_FRAME_TOO_LARGE' }) as Error,
    );
    const down = frame(max, 1);
    const up = frame(max, 2);
    expect(central.send(lc.id, down)).toBe(true);
    expect(peripheral.send(lp.id, up)).toBe(true);
    await waitFor(() => rp.frames(lp.id).length === 1 && rc.frames(lc.id).length === 1, {
      what: 'a frame each way',
    });
    expect(rp.frames(lp.id)[0]).toEqual(down);
    expect(rc.frames(lc.id)[0]).toEqual(up);
  });

  it('waits for an MTU exchange that completes after the connection (up to mtuWaitMs)', async () => {
    const { lc, lp } = await pair({ mtu: 247, mtuDelayMs: 40 }, { mtuWaitMs: 1_000 });
    expect(lc.capabilities.maxFrameBytes).toBe(244);
    expect(lp.capabilities.maxFrameBytes).toBe(244);
  });

  it('after an MTU exchange later than mtuWaitMs the central sends small frames and still takes large ones', async () => {
    const { central, peripheral, rc, rp, lc, lp } = await pair(
      { mtu: 247, mtuDelayMs: 150 },
      { mtuWaitMs: 10 },
    );
    expect(lc.capabilities.maxFrameBytes).toBe(20); // the exchange had not finished
    expect(lp.capabilities.maxFrameBytes).toBe(244);
    await new Promise((r) => setTimeout(r, 200)); // the late exchange (no event reaches us)
    expect(peripheral.send(lp.id, frame(244, 1))).toBe(true);
    expect(central.send(lc.id, frame(20, 2))).toBe(true);
    await waitFor(() => rc.frames(lc.id).length === 1 && rp.frames(lp.id).length === 1, {
      what: 'both frames',
    });
    expect(rc.frames(lc.id)[0]).toEqual(frame(244, 1));
    expect(central.counters.droppedMalformed).toBe(0);
  });

  it.each([
    ['central', 23],
    ['peripheral', 23],
    ['central', 185],
    ['peripheral', 185],
    ['central', 517],
    ['peripheral', 517],
  ] as const)(
    'paces %s writes at MTU %i to a slow radio: no overflow, goodput near 20 KB/s',
    async (from, mtu) => {
      // The radio holds 8 values; the driver keeps at most 8 (and ~40 ms of air) in flight.
      const { air, central, peripheral, rc, rp, lc, lp } = await pair(
        { mtu, bytesPerS: 20_000, radioQueueFrames: 8 },
        { bandwidthBytesPerS: 20_000, windowFrames: 8 },
      );
      const [tx, txRec, txId, rxRec, rxId] =
        from === 'central'
          ? ([central, rc, lc.id, rp, lp.id] as const)
          : ([peripheral, rp, lp.id, rc, lc.id] as const);
      const size = mtu - 3;
      const frames = Array.from({ length: Math.ceil(20_000 / size) }, (_, i) => frame(size, i));
      const t0 = performance.now();
      await sendAll(tx, txRec, txId, frames);
      await waitFor(() => rxRec.frames(rxId).length === frames.length, {
        what: 'every frame',
        intervalMs: 1,
      });
      const seconds = (performance.now() - t0) / 1000;
      // The budget is air time: every value also costs its 3-byte ATT header.
      const airRate = (frames.length * (size + 3)) / seconds;
      const goodput = (frames.length * size) / seconds;
      expect(air.stats.overflows).toBe(0);
      // At most ~40 ms of air waits in the radio (radioQueueMs), and never fewer than 3 values.
      expect(air.stats.maxQueued).toBeLessThanOrEqual({ 23: 8, 185: 4, 517: 3 }[mtu]);
      expect(air.stats.airBytesDelivered).toBe(frames.length * (size + 3));
      expect(rxRec.frames(rxId)).toEqual(frames);
      expect(tx.counters.refused).toBeGreaterThan(0); // the pacer did refuse and resume
      // 20-byte frames need a wake-up per 9 ms of air: under CI load timer latency costs more.
      expect(airRate).toBeGreaterThan((mtu === 23 ? 0.8 : 0.9) * 20_000);
      // Never faster than the radio allows (the first window goes out as a burst).
      expect(airRate).toBeLessThan(1.1 * 20_000);
      console.info(
        `BLE fake radio MTU ${mtu} ${from}→: ${goodput.toFixed(0)} B/s of frames = ${(goodput / 20_000).toFixed(3)} of the 20 000 B/s budget (ceiling ${(size / (size + 3)).toFixed(3)}); air ${(airRate / 20_000).toFixed(3)}`,
      );
    },
  );

  it('without pacing the same radio overflows (the fake detects what pacing prevents)', async () => {
    const { air, central, rc, lc } = await pair(
      { mtu: 185, bytesPerS: 20_000, radioQueueFrames: 4 },
      { bandwidthBytesPerS: 1_000_000, windowFrames: 32 },
    );
    await sendAll(
      central,
      rc,
      lc.id,
      Array.from({ length: 40 }, (_, i) => frame(182, i)),
    );
    expect(air.stats.overflows).toBeGreaterThan(0);
  });

  it('reports a dropped connection down on both ends, then up again after rediscovery', async () => {
    const { air, central, peripheral, rc, rp, lc, lp } = await pair({ mtu: 185 });
    air.cut();
    await waitFor(() => rc.downs(lc.id) === 1 && rp.downs(lp.id) === 1, { what: 'both down' });
    expect(central.send(lc.id, frame(4, 0))).toBe(false);
    await waitFor(
      () => {
        const c = rc.up();
        const p = rp.up();
        return c !== undefined && p !== undefined && c.id !== lc.id && p.id !== lp.id;
      },
      { what: 'a new link after rediscovery' },
    );
    const again = rc.up() as LinkInfo;
    const againP = rp.up() as LinkInfo;
    expect(central.send(again.id, frame(50, 9))).toBe(true);
    await waitFor(() => rp.frames(againP.id).length === 1, { what: 'a frame on the new link' });
    expect(air.stats.connections).toBe(2);
    expect(peripheral.links).toHaveLength(1);
  });

  it('lets only the lower id dial when both sides play both roles', async () => {
    const air = new FakeAir({ mtu: 185 });
    const stacks = {
      central: async () => air.noble(),
      peripheral: async () => air.bleno(),
    };
    const low = new BleLinkDriver({ ...FAST, shortId: 'g1', stacks });
    const high = new BleLinkDriver({ ...FAST, shortId: 'g2', stacks });
    cleanups.push(
      () => air.close(),
      () => high.close(),
      () => low.close(),
    );
    const rl = record(low);
    const rh = record(high);
    high.start();
    low.start();
    await waitFor(() => rl.up() !== undefined && rh.up() !== undefined, { what: 'link up' });
    // Absence cannot be awaited: let several scan restarts (100 ms) and dial rounds (20 ms) pass.
    await new Promise((r) => setTimeout(r, 400));
    expect(air.stats.connections).toBe(1);
    expect(low.links.map((l) => l.id[0])).toEqual(['c']); // g1 dialed
    expect(high.links.map((l) => l.id[0])).toEqual(['p']); // g2 accepted
    expect(low.seenPeers).toEqual(['g2']);
    expect(high.seenPeers).toEqual(['g1']);
  });

  it('keeps at most maxConnections links and forgets peers not seen for peerTtlMs', async () => {
    const air = new FakeAir({ mtu: 185 });
    const central = new BleLinkDriver({
      ...FAST,
      shortId: 'a0',
      stacks: { central: async () => air.noble() },
      maxConnections: 2,
      peerTtlMs: 300,
    });
    const peripherals = ['p1', 'p2', 'p3'].map(
      (shortId) =>
        new BleLinkDriver({ ...FAST, shortId, stacks: { peripheral: async () => air.bleno() } }),
    );
    cleanups.push(
      () => air.close(),
      () => central.close(),
    );
    for (const p of peripherals) cleanups.push(() => p.close());
    for (const p of peripherals) p.start();
    central.start();
    await waitFor(() => central.seenPeers.length === 3 && central.links.length === 2, {
      what: 'three seen, two linked',
    });
    await new Promise((r) => setTimeout(r, 200)); // more dial rounds: still two
    expect(central.links).toHaveLength(2);
    expect(air.connectionCount).toBe(2);
    // The unlinked peer goes away; it is forgotten after peerTtlMs (scan restarts every 100 ms).
    const linked = new Set(peripherals.filter((p) => p.links.length > 0));
    const idle = peripherals.find((p) => !linked.has(p)) as BleLinkDriver;
    const idleId = ['p1', 'p2', 'p3'][peripherals.indexOf(idle)] as string;
    expect(central.seenPeers).toContain(idleId);
    await idle.close();
    await waitFor(() => !central.seenPeers.includes(idleId), {
      what: 'the silent peer forgotten',
    });
    expect(central.seenPeers).toHaveLength(2);
  });

  it('drops hostile writes (empty, oversized) at the peripheral, counts them, keeps the link', async () => {
    const air = new FakeAir({ mtu: 23 });
    const peripheral = new BleLinkDriver({
      ...FAST,
      shortId: 'b2',
      stacks: { peripheral: async () => air.bleno() },
    });
    const rp = record(peripheral);
    const noble = air.noble();
    cleanups.push(
      () => air.close(),
      () => peripheral.close(),
      () => noble.stop(),
    );
    peripheral.start();
    const { rx } = await rawCentral(noble, true);
    await waitFor(() => rp.up(), { what: 'peripheral link up' });
    const link = rp.up() as LinkInfo;
    rx.write(Buffer.alloc(0), true);
    rx.write(Buffer.alloc(600, 1), true); // far over MTU − 3 = 20
    rx.write(Buffer.alloc(21, 2), true);
    rx.write(Buffer.from('fine'), true);
    await waitFor(() => rp.frames(link.id).length === 1, { what: 'the valid write' });
    expect(Buffer.from(rp.frames(link.id)[0] as Uint8Array).toString()).toBe('fine');
    expect(peripheral.counters.droppedMalformed).toBe(3);
    expect(peripheral.links).toHaveLength(1);
  });

  it('drops a notification flood beyond the inbound limit, counts it, keeps the link', async () => {
    // An unlimited radio: the hostile peripheral's notifications all arrive at once.
    const air = new FakeAir({ mtu: 185, bytesPerS: Infinity, radioQueueFrames: 100_000 });
    const central = new BleLinkDriver({
      ...FAST,
      shortId: 'a1',
      stacks: { central: async () => air.noble() },
    });
    const rc = record(central);
    const hostile = await hostilePeripheral(air);
    cleanups.push(
      () => air.close(),
      () => central.close(),
      () => hostile.close(),
    );
    central.start();
    await waitFor(() => rc.up() !== undefined && hostile.subscribed(), { what: 'link up' });
    const link = rc.up() as LinkInfo;
    for (let i = 0; i < 5_000; i++) hostile.notify(Buffer.alloc(182, i & 0xff)); // 910 KB at once
    await waitFor(() => central.counters.framesIn + central.counters.droppedFlood === 5_000, {
      what: 'every notification accounted for',
    });
    expect(central.counters.droppedFlood).toBeGreaterThan(4_000);
    expect(rc.frames(link.id).length).toBe(central.counters.framesIn);
    expect(central.links).toHaveLength(1);
  });

  it('drops a write flood from a central beyond the inbound limit, counts it, keeps the link', async () => {
    const air = new FakeAir({ mtu: 185, bytesPerS: Infinity, radioQueueFrames: 100_000 });
    const peripheral = new BleLinkDriver({
      ...FAST,
      shortId: 'b2',
      stacks: { peripheral: async () => air.bleno() },
    });
    const rp = record(peripheral);
    const noble = air.noble();
    cleanups.push(
      () => air.close(),
      () => peripheral.close(),
      () => noble.stop(),
    );
    peripheral.start();
    const { rx } = await rawCentral(noble, true);
    await waitFor(() => rp.up(), { what: 'peripheral link up' });
    const link = rp.up() as LinkInfo;
    for (let i = 0; i < 5_000; i++) rx.write(Buffer.alloc(182, i & 0xff), true);
    await waitFor(() => peripheral.counters.framesIn + peripheral.counters.droppedFlood === 5_000, {
      what: 'every write accounted for',
    });
    expect(peripheral.counters.droppedFlood).toBeGreaterThan(4_000);
    expect(rp.frames(link.id).length).toBe(peripheral.counters.framesIn);
    expect(peripheral.links).toHaveLength(1);
  });

  it('drops notifications of wrong length at the central (empty, one byte over, 600 B), counts them, keeps working', async () => {
    const { air, central, peripheral, rc, rp, lc, lp } = await pair({ mtu: 185 });
    // What the remote's stack hands noble, bypassing bleno's cut to MTU − 3.
    expect(air.forgeNotification(new Uint8Array(0))).toBe(1);
    air.forgeNotification(new Uint8Array(183).fill(1));
    air.forgeNotification(new Uint8Array(600).fill(2));
    air.forgeNotification(new Uint8Array(182).fill(3)); // the largest valid one
    await waitFor(() => rc.frames(lc.id).length === 1, { what: 'the valid notification' });
    expect(rc.frames(lc.id)[0]).toEqual(new Uint8Array(182).fill(3));
    expect(central.counters.droppedMalformed).toBe(3);
    expect(central.counters.droppedFlood).toBe(0);
    // The link is intact both ways.
    expect(central.links).toHaveLength(1);
    expect(central.send(lc.id, frame(182, 4))).toBe(true);
    expect(peripheral.send(lp.id, frame(100, 5))).toBe(true);
    await waitFor(() => rp.frames(lp.id).length === 1 && rc.frames(lc.id).length === 2, {
      what: 'a frame each way after the hostile ones',
    });
    expect(rc.frames(lc.id)[1]).toEqual(frame(100, 5));
  });

  it('drops offset writes, oversized forged writes and writes before subscribing at the peripheral', async () => {
    const air = new FakeAir({ mtu: 185 });
    const peripheral = new BleLinkDriver({
      ...FAST,
      shortId: 'b2',
      stacks: { peripheral: async () => air.bleno() },
    });
    const rp = record(peripheral);
    const noble = air.noble();
    cleanups.push(
      () => air.close(),
      () => peripheral.close(),
      () => noble.stop(),
    );
    peripheral.start();
    const { rx, tx } = await rawCentral(noble, false);
    rx.write(Buffer.from('before any link'), true); // connected, not subscribed: no link yet
    await waitFor(() => peripheral.counters.droppedMalformed === 1, { what: 'the early write' });
    expect(rp.up()).toBeUndefined();
    await tx.subscribeAsync();
    await waitFor(() => rp.up(), { what: 'peripheral link up' });
    const link = rp.up() as LinkInfo;
    // A prepared write with an offset, and values a real noble would not send as one command.
    expect(air.forgeWrite(LATTICE_RX_UUID, Buffer.from('abc'), { offset: 4 })).toBe(1);
    air.forgeWrite(LATTICE_RX_UUID, new Uint8Array(183));
    air.forgeWrite(LATTICE_RX_UUID, new Uint8Array(600));
    air.forgeWrite(LATTICE_RX_UUID, new Uint8Array(0));
    air.forgeWrite(LATTICE_RX_UUID, new Uint8Array(182).fill(7), { withoutResponse: false });
    await waitFor(() => rp.frames(link.id).length === 1, { what: 'the one valid write' });
    expect(rp.frames(link.id)[0]).toEqual(new Uint8Array(182).fill(7));
    expect(peripheral.counters.droppedMalformed).toBe(5);
    expect(peripheral.links).toHaveLength(1);
  });
});
