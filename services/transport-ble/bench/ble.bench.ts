// `pnpm bench ble`: the BLE transport over the fake radio (the real noble and bleno code over
// fake bindings, `src/fake-air.ts`) with a 20 000 B/s radio budget per direction, in real time.
//
// - Goodput at MTU 23, 185 and 517: frame bytes through the driver alone (max-size frames,
//   central → peripheral) and message bytes through two multiplexers over it (10 KB messages,
//   acks and mux headers included), as a fraction of the budget. The radio charges each value its
//   3-byte ATT header, so no subject can pass (MTU − 3) / MTU of the budget: that ceiling is
//   printed as a row of its own.
// - Sync between two whole peers (merge engine + memory store + multiplexer + BLE driver, one
//   central, one peripheral): a cold collection of 1,000 small documents, then a change of one
//   field in each of 100 of them, timed from the multiplexers' handshake (cold) or the write
//   (change) until the receiver holds everything, against the ideal: the sync protocol's bytes in
//   the sending direction ÷ the radio budget (what the transport adds), and, as "end to end", the
//   documents' raw JSON ÷ the budget (cold) or the sync suite's minimum bytes of the change (ids,
//   key and value of the 100 fields) ÷ the budget (what sync and transport add together).
//
// Goodput values are the median of `LATTICE_BLE_RUNS` (3) runs; sync, see `syncRuns`. Anchors:
// the radio budget (goodput) and bytes ÷ rate (sync); the ratio column is the fraction of the
// budget, or the time over the ideal. About 2 minutes in all.
import { BenchSuite } from '@lattice/bench';
import {
  createIdentity,
  Multiplexer,
  type LinkEvent,
  type LinkId,
  type MultiplexerEvent,
} from '@lattice/multiplexer';
import { BleLinkDriver, maxFrameBytesForMtu } from '../src/index.js';
import { FakeAir } from '../src/testing.js';
import { FAST } from '../test/harness.js';
import { bleSyncPair } from '../test/sync-peers.js';

const BUDGET = 20_000; // ATT bytes per second per direction
const MTUS = [23, 185, 517] as const;
const RUNS = Number(process.env['LATTICE_BLE_RUNS'] ?? 3);
/** Bytes of payload per goodput run: ~3 s of air at the budget (shorter runs are noisier). */
const GOODPUT_BYTES = 60_000;
const DOCS = 1_000;
/**
 * A cold sync takes 11 s of air at MTU 185 and 20 s at MTU 23: the median of `RUNS` at MTU 185
 * (the usual BLE 4.2+ MTU), one run at the others, to stay within ~3 minutes.
 */
const syncRuns = (mtu: number): number =>
  mtu === 185 ? RUNS : Number(process.env['LATTICE_BLE_SYNC_RUNS'] ?? 1);
const MB = 1e6;

function payload(size: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 131 + seed * 7) & 0xff);
}

async function until(cond: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`ble bench: no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function median(run: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < RUNS; i++) values.push(await run());
  values.sort((x, y) => x - y);
  return values[Math.floor(values.length / 2)] as number;
}

/** A central and a peripheral driver on a fresh air at `mtu`, linked. */
async function drivers(mtu: number): Promise<{
  air: FakeAir;
  central: BleLinkDriver;
  peripheral: BleLinkDriver;
  close(): Promise<void>;
}> {
  const air = new FakeAir({ mtu, bytesPerS: BUDGET });
  const common = { ...FAST, bandwidthBytesPerS: BUDGET };
  const central = new BleLinkDriver({
    ...common,
    shortId: 'a1',
    stacks: { central: async () => air.noble() },
  });
  const peripheral = new BleLinkDriver({
    ...common,
    shortId: 'b2',
    stacks: { peripheral: async () => air.bleno() },
  });
  peripheral.start();
  central.start();
  await until(() => central.links.length === 1 && peripheral.links.length === 1, 'link');
  return {
    air,
    central,
    peripheral,
    async close() {
      await central.close();
      await peripheral.close();
      air.close();
    },
  };
}

/** Max-size frames through the driver alone; value bytes per second. */
async function driverGoodput(mtu: number): Promise<number> {
  const { air, central, peripheral, close } = await drivers(mtu);
  const size = maxFrameBytesForMtu(mtu);
  const count = Math.ceil(GOODPUT_BYTES / size);
  const id = central.links[0]?.id as LinkId;
  let got = 0;
  const done = new Promise<number>((resolve) =>
    peripheral.listen((e: LinkEvent) => {
      if (e.type === 'frame' && (got += e.data.length) >= count * size) resolve(performance.now());
    }),
  );
  let wake: (() => void) | undefined;
  central.listen((e) => {
    if (e.type === 'writable') wake?.();
  });
  const frame = payload(size, 1);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    while (!central.send(id, frame)) await new Promise<void>((resolve) => (wake = resolve));
  }
  const end = await done;
  if (air.stats.overflows > 0) throw new Error(`the radio overflowed ${air.stats.overflows}×`);
  await close();
  return (count * size) / ((end - start) / 1000);
}

/** 10 KB messages through two multiplexers over the driver; payload bytes per second. */
async function muxGoodput(mtu: number): Promise<number> {
  const { air, central, peripheral, close } = await drivers(mtu);
  const ma = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(1)) });
  const mb = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(2)) });
  const up = new Promise<void>((resolve) =>
    ma.on((e: MultiplexerEvent) => {
      if (e.type === 'peer-up') resolve();
    }),
  );
  ma.attach(central);
  mb.attach(peripheral);
  await up;
  const size = 10_000;
  const count = Math.ceil(GOODPUT_BYTES / size);
  let got = 0;
  const done = new Promise<number>((resolve) =>
    mb.onMessage(() => {
      if (++got === count) resolve(performance.now());
    }),
  );
  const start = performance.now();
  for (let i = 0; i < count; i++) await ma.send(mb.peerId, payload(size, i));
  const end = await done;
  if (air.stats.overflows > 0) throw new Error(`the radio overflowed ${air.stats.overflows}×`);
  await ma.close();
  await mb.close();
  await close();
  return (count * size) / ((end - start) / 1000);
}

interface SyncRun {
  /** Cold sync: ms from the handshake until the receiver holds every document. */
  coldMs: number;
  /** Sync protocol bytes the holder sent during the cold sync. */
  coldBytes: number;
  /** Air bytes (values + ATT headers) the cold sync took in the data direction. */
  coldAirBytes: number;
  changeMs: number;
  changeBytes: number;
  changeAirBytes: number;
  rawJsonBytes: number;
}

function doc(i: number): Record<string, string | number> {
  return {
    _id: `s${String(i).padStart(4, '0')}`,
    title: `reading ${i}`,
    n: i,
    sensor: `probe-${i % 17}`,
    value: Math.round(Math.sin(i) * 1000) / 10,
    unit: 'C',
  };
}

/** One cold sync of {@link DOCS} documents, then the 100-field change, at `mtu`. */
async function syncRun(mtu: number): Promise<SyncRun> {
  const air = new FakeAir({ mtu, bytesPerS: BUDGET });
  const pair = await bleSyncPair(air, { driver: { bandwidthBytesPerS: BUDGET } });
  const { a, b } = pair;
  try {
    const docs = Array.from({ length: DOCS }, (_, i) => doc(i));
    for (let i = 0; i < docs.length; i += 250) {
      const chunk = docs.slice(i, i + 250);
      await a.engine.execute(
        `INSERT INTO c DOCUMENTS ${chunk.map((_, k) => `(:d${k})`).join(', ')}`,
        Object.fromEntries(chunk.map((d, k) => [`d${k}`, d])),
      );
    }
    await b.engine.subscribe('SELECT * FROM c');
    const status = (): { sent: number; through: number } => ({
      sent: a.engine.syncStatus()[0]?.bytesSent ?? 0,
      through: b.engine.syncStatus()[0]?.receivedThrough ?? 0,
    });
    // Air bytes the central (the holder) sent: what the peripheral's driver received, + headers.
    const airIn = (): number => b.ble.counters.bytesIn + 3 * b.ble.counters.framesIn;
    pair.start();
    const t0 = await pair.peerUp;
    const air0 = airIn();
    await until(() => status().through >= a.engine.store.lastSeq, 'cold sync');
    const coldMs = performance.now() - t0;
    const coldBytes = status().sent;
    const coldAirBytes = airIn() - air0;
    const rawJsonBytes = docs.reduce((s, d) => s + JSON.stringify(d).length, 0);
    await until(
      () =>
        a.engine.syncStatus()[0]?.state === 'idle' && b.engine.syncStatus()[0]?.state === 'idle',
      'idle',
    );
    const sent0 = status().sent;
    const air1 = airIn();
    const t1 = performance.now();
    await a.engine.execute("UPDATE c SET title = 'changed!' WHERE n < 100");
    const target = a.engine.store.lastSeq;
    await until(() => status().through >= target, '100-field change');
    const changeMs = performance.now() - t1;
    const changeAirBytes = airIn() - air1;
    await until(() => a.engine.syncStatus()[0]?.state === 'idle', 'idle after the change');
    const changeBytes = status().sent - sent0;
    if (air.stats.overflows > 0) throw new Error(`the radio overflowed ${air.stats.overflows}×`);
    if (pair.errors.length > 0) throw new Error(`sync failed: ${String(pair.errors[0])}`);
    return {
      coldMs,
      coldBytes,
      coldAirBytes,
      changeMs,
      changeBytes,
      changeAirBytes,
      rawJsonBytes,
    };
  } finally {
    await pair.close();
    air.close();
  }
}

/** Records `ideal` (`bytes` at the radio's rate, the case's anchor) and our time against it. */
function timeAgainst(
  suite: BenchSuite,
  caseName: string,
  ideal: string,
  bytes: number,
  ms: number,
): void {
  suite.record(caseName, ideal, 'time', (bytes / BUDGET) * 1000, 'ms', ideal);
  suite.record(caseName, ideal, 'bytes', bytes, 'bytes');
  suite.record(caseName, 'lattice over BLE', 'time', ms, 'ms');
}

function medianOf(runs: readonly SyncRun[], key: keyof SyncRun): number {
  const values = runs.map((r) => r[key]).sort((x, y) => x - y);
  return values[Math.floor(values.length / 2)] as number;
}

export default async function ble(): Promise<BenchSuite> {
  const suite = new BenchSuite('ble');
  for (const mtu of MTUS) {
    const frame = maxFrameBytesForMtu(mtu);
    const c = `goodput, MTU ${mtu} (${frame} B frames), 20 KB/s radio`;
    suite.record(c, 'radio budget', 'goodput', BUDGET / MB, 'MB/s', 'radio budget');
    suite.record(c, 'ATT ceiling (MTU−3)/MTU', 'goodput', (BUDGET * frame) / mtu / MB, 'MB/s');
    suite.record(
      c,
      'lattice-driver',
      'goodput',
      (await median(() => driverGoodput(mtu))) / MB,
      'MB/s',
    );
    suite.record(c, 'lattice-mux', 'goodput', (await median(() => muxGoodput(mtu))) / MB, 'MB/s');
  }
  for (const mtu of MTUS) {
    const runs: SyncRun[] = [];
    const n = syncRuns(mtu);
    for (let i = 0; i < n; i++) runs.push(await syncRun(mtu));
    const of = n === 1 ? '1 run' : `median of ${n}`;
    const cold = `cold sync, ${DOCS.toLocaleString('en-US')} docs, MTU ${mtu} (${of})`;
    const coldMs = medianOf(runs, 'coldMs');
    const coldBytes = medianOf(runs, 'coldBytes');
    const rawBytes = medianOf(runs, 'rawJsonBytes');
    // The transport's share: time against the sync protocol's own bytes at the radio's rate.
    timeAgainst(suite, cold, 'sync bytes ÷ rate', coldBytes, coldMs);
    suite.record(
      cold,
      'lattice over BLE',
      'on air (+mux, +ATT)',
      medianOf(runs, 'coldAirBytes'),
      'bytes',
    );
    // End to end: against the documents' raw JSON at the radio's rate.
    timeAgainst(suite, `${cold}, end to end`, 'raw JSON ÷ rate', rawBytes, coldMs);
    const change = `100-field change, MTU ${mtu} (${of})`;
    const changeMs = medianOf(runs, 'changeMs');
    timeAgainst(suite, change, 'sync bytes ÷ rate', medianOf(runs, 'changeBytes'), changeMs);
    suite.record(
      change,
      'lattice over BLE',
      'on air (+mux, +ATT)',
      medianOf(runs, 'changeAirBytes'),
      'bytes',
    );
    // The floor of the sync suite: the changed documents' ids, key and value.
    const minimum = Array.from({ length: 100 }, (_, i) => doc(i)['_id'] as string).reduce(
      (sum, id) => sum + id.length + 'title'.length + '"changed!"'.length,
      0,
    );
    timeAgainst(suite, `${change}, end to end`, 'minimum bytes ÷ rate', minimum, changeMs);
  }
  return suite;
}
