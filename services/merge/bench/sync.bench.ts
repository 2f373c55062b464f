// `pnpm bench sync`: our sync protocol between two peers, side by side with Yjs (state-vector
// sync of one Y.Doc) and Automerge 3 (its sync protocol on one document) on the same data in the
// same run: initial sync of 1 KB documents, incremental sync of 100 changed fields, and the same
// over throttled links (real time through the multiplexer over loopback links).
//
// Data: N documents `{_id, title, n, body (≈1 KB)}`. Yjs and Automerge hold them as one map of
// N entries (their natural shape for a collection); we hold N documents in a collection. Every
// document has the same body, which deflate (ours, and Automerge's columns) folds away: the
// "random bodies" case gives each document its own 1 KB of base64 noise, the bytes a sync of
// real data cannot compress away.
//
// Initial sync time: "lattice" runs with pack off, as peers in one process do
// (`SessionOptions.pack`) and as Yjs does (it compresses nothing); "lattice, packed" deflates
// messages as over a link, and the bytes rows come from that run. Both peers store in the memory
// engine without sync (the receiver still commits each batch before acknowledging it). Every
// subject runs once on 200 documents first, so the first row does not pay alone for loading and
// compiling its code.
//
// Issue #6 (initial sync time), 2026-11-21, on a shared 2-core machine (load 4.5–6): the sync
// window of `lattice()` with pack off, old and new code alternating in one process (rotated
// order, a GC before each run), medians of 11 runs (5 for 10k), wall / CPU:
// 2k identical bodies 336 / 339 → 330 / 313 ms, 2k random bodies 377 / 350 → 306 / 290 ms, 10k
// identical 917 / 1,412 → 706 / 1,054 ms. `pnpm exec tsx scripts/bench.ts sync` right after
// (load 4–5.4, two runs): 2k 165 and 175 ms vs Yjs 75 and 144 ms, random 111 and 74 ms vs Yjs
// 35 and 26 ms, 10k 535 and 629 ms vs Yjs 180 and 181 ms; bytes and throttled rows unchanged
// (1.01–1.07×). Changes: the memory engine's paged key index (an insert no longer splices the
// whole sorted key array; keys compare as latin1 strings; values copied from Node's buffer
// pool), a message of deltas written by hand byte for byte as protobufjs writes it (2–3× faster
// for 200 documents of 1 KB), and a hello's `resume_from` read as a number (an absent one is the
// generated prototype's `Long` zero, which rode along as every scanned batch's `through_commit`).
// Where the CPU of an initial sync of 2k documents goes now (profile of the sync window): the
// store's commits and record reads 28–31 %, CRDT decode and merge 16–21 %, the `_id` codec
// 13–16 % (five encodes or decodes per document: the sender's `records`, the receiver's
// `decodeDelta`, `CrdtDocument.create`, the store's `encodeId` for the write and for its
// expectation), the merge service 9–15 %, the memory engine 8–9 %, GC 8 %, msgpack of values
// 3–6 %, protobufjs 1–5 %.
import { randomBytes } from 'node:crypto';
import * as A from '@automerge/automerge';
import * as Y from 'yjs';
import { BenchSuite } from '@lattice/bench';
import { channelPair, MergeEngine, syncOverMultiplexer } from '@lattice/merge';
import { createIdentity, LoopbackNetwork, Multiplexer, SystemClock } from '@lattice/multiplexer';
import { DocumentStore, MemoryEngine } from '@lattice/store';

const BODY = 'lorem ipsum dolor sit amet '.repeat(37).slice(0, 1000);

type Bodies = 'same' | 'random';

/** 1 KB of base64 noise per document index (the same for every subject of a run). */
const noise: string[] = [];

function docs(
  n: number,
  bodies: Bodies = 'same',
): { _id: string; title: string; n: number; body: string }[] {
  return Array.from({ length: n }, (_, i) => ({
    _id: `doc${i}`,
    title: `title ${i}`,
    n: i,
    body: bodies === 'same' ? BODY : (noise[i] ??= randomBytes(750).toString('base64')),
  }));
}

async function engine(peerId: string, pack = true): Promise<MergeEngine> {
  const store = await DocumentStore.open(new MemoryEngine(), { sync: false });
  return MergeEngine.open({ peerId, store, session: { batchSize: 200, window: 4, pack } });
}

async function until(cond: () => boolean, timeoutMs = 600_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('sync did not finish');
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * Ours over an in-process channel: initial sync, then 100 one-field changes. `pack`: deflate
 * messages as over a link (the bytes rows); peers in one process turn it off (`SessionOptions.pack`),
 * and so does the time row compared with Yjs and Automerge, which compress nothing in memory
 * (Yjs) or only inside their own encoding (Automerge).
 */
async function lattice(
  n: number,
  bodies: Bodies = 'same',
  pack = true,
): Promise<{ initialBytes: number; initialMs: number; incBytes: number; incMs: number }> {
  const a = await engine('peer-a', pack);
  const b = await engine('peer-b', pack);
  for (const chunk of chunks(docs(n, bodies), 500)) {
    await a.execute(
      `INSERT INTO c DOCUMENTS ${chunk.map((_, i) => `(:d${i})`).join(', ')}`,
      Object.fromEntries(chunk.map((d, i) => [`d${i}`, d])),
    );
  }
  await b.subscribe('SELECT * FROM c');
  let bytes = 0;
  const [ca, cb] = channelPair({ onSend: (_from, k) => (bytes += k) });
  const t0 = performance.now();
  const sessions = Promise.allSettled([a.connect('peer-b', ca), b.connect('peer-a', cb)]);
  await until(
    () => b.store.lastSeq > 0 && (b.syncStatus()[0]?.receivedThrough ?? 0) >= a.store.lastSeq,
  );
  const initialMs = performance.now() - t0;
  const initialBytes = bytes;
  await until(() => a.syncStatus()[0]?.state === 'idle' && b.syncStatus()[0]?.state === 'idle');
  bytes = 0;
  const t1 = performance.now();
  await a.execute("UPDATE c SET title = 'changed!' WHERE n < 100");
  const target = a.store.lastSeq;
  await until(() => (b.syncStatus()[0]?.receivedThrough ?? 0) >= target);
  const incMs = performance.now() - t1;
  await until(() => a.syncStatus()[0]?.state === 'idle');
  const incBytes = bytes;
  ca.close();
  await sessions;
  await a.close();
  await b.close();
  return { initialBytes, initialMs, incBytes, incMs };
}

function yjs(
  n: number,
  bodies: Bodies = 'same',
): {
  initialBytes: number;
  initialMs: number;
  incBytes: number;
  incMs: number;
} {
  const a = new Y.Doc();
  const b = new Y.Doc();
  const map = a.getMap<Record<string, unknown>>('c');
  a.transact(() => {
    for (const d of docs(n, bodies)) map.set(d._id, d);
  });
  const t0 = performance.now();
  const sv = Y.encodeStateVector(b);
  const update = Y.encodeStateAsUpdate(a, sv);
  Y.applyUpdate(b, update);
  const initialMs = performance.now() - t0;
  const initialBytes = sv.length + update.length;
  const before = Y.encodeStateVector(b);
  a.transact(() => {
    for (let i = 0; i < 100; i++)
      map.set(`doc${i}`, { ...(map.get(`doc${i}`) ?? {}), title: 'changed!' });
  });
  const t1 = performance.now();
  const inc = Y.encodeStateAsUpdate(a, before);
  Y.applyUpdate(b, inc);
  const incMs = performance.now() - t1;
  return { initialBytes, initialMs, incBytes: before.length + inc.length, incMs };
}

function automerge(
  n: number,
  bodies: Bodies = 'same',
): {
  initialBytes: number;
  initialMs: number;
  incBytes: number;
  incMs: number;
} {
  let a = A.from<{ c: Record<string, { title: string; n: number; body: string }> }>({ c: {} });
  a = A.change(a, (d) => {
    for (const x of docs(n, bodies)) d.c[x._id] = { title: x.title, n: x.n, body: x.body };
  });
  let b = A.init<typeof a>();
  const run = (): number => {
    let sa = A.initSyncState();
    let sb = A.initSyncState();
    let bytes = 0;
    for (let round = 0; round < 100; round++) {
      const [sa2, ma] = A.generateSyncMessage(a, sa);
      sa = sa2;
      if (ma) {
        bytes += ma.length;
        [b, sb] = A.receiveSyncMessage(b, sb, ma);
      }
      const [sb2, mb] = A.generateSyncMessage(b, sb);
      sb = sb2;
      if (mb) {
        bytes += mb.length;
        [a, sa] = A.receiveSyncMessage(a, sa, mb);
      }
      if (!ma && !mb) break;
    }
    return bytes;
  };
  const t0 = performance.now();
  const initialBytes = run();
  const initialMs = performance.now() - t0;
  a = A.change(a, (d) => {
    for (let i = 0; i < 100; i++) (d.c[`doc${i}`] as { title: string }).title = 'changed!';
  });
  const t1 = performance.now();
  const incBytes = run();
  const incMs = performance.now() - t1;
  return { initialBytes, initialMs, incBytes, incMs };
}

/** Ours through two multiplexers over one throttled loopback link, in real time. */
async function throttled(
  n: number,
  bytesPerS: number,
  latencyMs: number,
  mtu: number,
): Promise<{ ms: number; bytes: number; forward: number }> {
  const clock = new SystemClock();
  const net = new LoopbackNetwork({ clock, seed: 1 });
  const ia = createIdentity(new Uint8Array(32).fill(1));
  const ib = createIdentity(new Uint8Array(32).fill(2));
  const ma = new Multiplexer({ identity: ia, clock });
  const mb = new Multiplexer({ identity: ib, clock });
  const da = net.driver('a');
  const db = net.driver('b');
  ma.attach(da);
  mb.attach(db);
  const a = await engine(ia.peerId);
  const b = await engine(ib.peerId);
  // Random bodies: deflate would shrink identical ones 40-fold, and the run would measure
  // round trips instead of the link.
  await a.execute(
    `INSERT INTO c DOCUMENTS ${docs(n, 'random')
      .map((_, i) => `(:d${i})`)
      .join(', ')}`,
    Object.fromEntries(docs(n, 'random').map((d, i) => [`d${i}`, d])),
  );
  await b.subscribe('SELECT * FROM c');
  const stopA = syncOverMultiplexer(a, ma);
  const stopB = syncOverMultiplexer(b, mb);
  // A few ms of transmit buffer, as a radio or UART has: with real timers, a link that may only
  // take the next frame when the previous one is out idles whenever a timer fires late.
  const link = net.connect(da, db, {
    maxFrameBytes: mtu,
    bandwidthBytesPerS: bytesPerS,
    latencyMs,
    transmitBufferMs: 5,
  });
  const t0 = performance.now();
  await until(
    () => (b.syncStatus()[0]?.receivedThrough ?? 0) >= a.store.lastSeq && b.store.lastSeq > 0,
  );
  const ms = performance.now() - t0;
  const forward = link.stats.aToB.bytesSent;
  const bytes = forward + link.stats.bToA.bytesSent;
  stopA();
  stopB();
  await a.close();
  await b.close();
  await ma.close();
  await mb.close();
  return { ms, bytes, forward };
}

function* chunks<T>(xs: readonly T[], size: number): Iterable<T[]> {
  for (let i = 0; i < xs.length; i += size) yield xs.slice(i, i + size);
}

export default async function run(): Promise<BenchSuite> {
  const suite = new BenchSuite('sync');
  const raw = (n: number, bodies: Bodies = 'same'): number =>
    docs(n, bodies).reduce((s, d) => s + JSON.stringify(d).length, 0);
  // The floor of the incremental delta: the 100 changed keys and values.
  const minimum = 100 * ('doc00'.length + 'title'.length + '"changed!"'.length);
  for (const bodies of ['same', 'random'] as const) {
    await lattice(200, bodies);
    await lattice(200, bodies, false);
    yjs(200, bodies);
    automerge(200, bodies);
  }
  for (const n of [2_000, 10_000]) {
    const ours = await lattice(n);
    const inProcess = await lattice(n, 'same', false);
    const y = yjs(n);
    const am = n <= 2_000 ? automerge(n) : undefined;
    const c = `initial sync, ${n} docs of 1 KB`;
    suite.record(c, 'raw JSON', 'bytes', raw(n), 'bytes');
    suite.record(c, 'lattice', 'bytes', ours.initialBytes, 'bytes', 'raw JSON');
    suite.record(c, 'yjs', 'bytes', y.initialBytes, 'bytes', 'raw JSON');
    if (am) suite.record(c, 'automerge', 'bytes', am.initialBytes, 'bytes', 'raw JSON');
    suite.record(c, 'lattice', 'time', inProcess.initialMs, 'ms');
    suite.record(c, 'lattice, packed', 'time', ours.initialMs, 'ms');
    suite.record(c, 'yjs', 'time', y.initialMs, 'ms');
    if (am) suite.record(c, 'automerge', 'time', am.initialMs, 'ms');
    const i = `incremental: 100 changed fields of ${n} docs`;
    suite.record(i, 'minimum', 'bytes', minimum, 'bytes');
    suite.record(i, 'lattice', 'bytes', ours.incBytes, 'bytes', 'minimum');
    suite.record(i, 'yjs', 'bytes', y.incBytes, 'bytes', 'minimum');
    if (am) suite.record(i, 'automerge', 'bytes', am.incBytes, 'bytes', 'minimum');
    suite.record(i, 'lattice', 'time', ours.incMs, 'ms');
    suite.record(i, 'yjs', 'time', y.incMs, 'ms');
    if (am) suite.record(i, 'automerge', 'time', am.incMs, 'ms');
  }
  {
    const n = 2_000;
    const c = `initial sync, ${n} docs of 1 KB, random bodies`;
    const ours = await lattice(n, 'random');
    const inProcess = await lattice(n, 'random', false);
    const y = yjs(n, 'random');
    const am = automerge(n, 'random');
    suite.record(c, 'raw JSON', 'bytes', raw(n, 'random'), 'bytes');
    suite.record(c, 'lattice', 'bytes', ours.initialBytes, 'bytes', 'raw JSON');
    suite.record(c, 'yjs', 'bytes', y.initialBytes, 'bytes', 'raw JSON');
    suite.record(c, 'automerge', 'bytes', am.initialBytes, 'bytes', 'raw JSON');
    suite.record(c, 'lattice', 'time', inProcess.initialMs, 'ms');
    suite.record(c, 'lattice, packed', 'time', ours.initialMs, 'ms');
    suite.record(c, 'yjs', 'time', y.initialMs, 'ms');
    suite.record(c, 'automerge', 'time', am.initialMs, 'ms');
  }
  for (const [label, rate, latency, mtu, n] of [
    ['BLE-like 20 KB/s, 185 B frames', 20_000, 15, 185, 50],
    ['BLE-like 1.3 Mbit/s, 244 B frames', 162_500, 10, 244, 300],
    ['UART 11.5 KB/s, 512 B frames', 11_500, 2, 512, 30],
  ] as const) {
    const r = await throttled(n, rate, latency, mtu);
    // The sending direction carries the data; the other carries needs and acks alongside.
    const ideal = (r.forward / rate) * 1000 + 2 * latency;
    const c = `initial sync of ${n} docs over ${label}`;
    suite.record(c, 'bytes ÷ rate + round trip', 'time', ideal, 'ms');
    suite.record(c, 'lattice via multiplexer', 'time', r.ms, 'ms', 'bytes ÷ rate + round trip');
    suite.record(c, 'lattice via multiplexer', 'bytes on the link', r.bytes, 'bytes');
  }
  return suite;
}
