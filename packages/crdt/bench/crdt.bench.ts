// `pnpm bench crdt`: our CRDT engine side by side with Yjs (Y.Map) and Automerge 3 on the same
// workloads in one run (the `crdt` row of shared/BENCHMARKS.md): batched map writes, single-write
// transactions, full-state size, and the size of a delta for 100 changed keys against the minimum
// bytes those keys and values need.
import * as A from '@automerge/automerge';
import * as Y from 'yjs';
import { BenchSuite } from '@lattice/bench';
import { asPeerId, CrdtDocument, encodeDelta, HybridClock } from '@lattice/crdt';
import type { Value } from '@lattice/crdt';

const clock = new HybridClock({ peer: asPeerId('bench'), wallClock: () => Date.now() });

function latticeDoc(keys: number): CrdtDocument {
  const doc = CrdtDocument.create('bench');
  doc.write({ kind: 'insert', document: { _id: 'bench' } }, clock.now());
  doc.write(
    {
      kind: 'update',
      set: Array.from({ length: keys }, (_, i) => ({ path: [`key${i}`], value: i as Value })),
    },
    clock.now(),
  );
  return doc;
}

function yjsDoc(keys: number): Y.Doc {
  const doc = new Y.Doc();
  const map = doc.getMap('m');
  doc.transact(() => {
    for (let i = 0; i < keys; i++) map.set(`key${i}`, i);
  });
  return doc;
}

function automergeDoc(keys: number): A.Doc<Record<string, number>> {
  return A.change(A.init<Record<string, number>>(), (d) => {
    for (let i = 0; i < keys; i++) d[`key${i}`] = i;
  });
}

/** Key bytes plus a varint per value: the floor for a delta carrying these keys and values. */
function minimumBytes(keys: readonly string[], values: readonly number[]): number {
  let bytes = 0;
  for (const k of keys) bytes += Buffer.byteLength(k);
  for (const v of values) bytes += v < 128 ? 1 : v < 16_384 ? 2 : 3;
  return bytes;
}

export default async function run(): Promise<BenchSuite> {
  const suite = new BenchSuite('crdt');

  await suite.measure(
    '10k map writes in one transaction',
    {
      lattice: () => latticeDoc(10_000),
      yjs: () => yjsDoc(10_000),
      automerge: () => automergeDoc(10_000),
    },
    { anchor: 'yjs', opsPerCall: 10_000, timeMs: 2_000 },
  );

  const ours = latticeDoc(0);
  const yDoc = yjsDoc(0);
  const yMap = yDoc.getMap('m');
  let aDoc = automergeDoc(0);
  let n = 0;
  await suite.measure(
    'single-write transactions',
    {
      lattice: () =>
        ours.write(
          { kind: 'update', set: [{ path: [`key${n++ % 1000}`], value: n }] },
          clock.now(),
        ),
      yjs: () => yMap.set(`key${n++ % 1000}`, n),
      automerge: () => {
        aDoc = A.change(aDoc, (d) => {
          d[`key${n++ % 1000}`] = n;
        });
      },
    },
    { anchor: 'yjs' },
  );

  for (const keys of [10_000, 100_000]) {
    const l = latticeDoc(keys);
    const y = yjsDoc(keys);
    suite.record(
      `full state, ${keys} keys`,
      'lattice',
      'size',
      encodeDelta(l.snapshot()).byteLength,
      'bytes',
      'yjs',
    );
    suite.record(
      `full state, ${keys} keys`,
      'yjs',
      'size',
      Y.encodeStateAsUpdate(y).byteLength,
      'bytes',
    );
    if (keys === 10_000) {
      suite.record(
        `full state, ${keys} keys`,
        'automerge',
        'size',
        A.save(automergeDoc(keys)).byteLength,
        'bytes',
      );
    }

    const changed = Array.from({ length: 100 }, (_, i) => `key${i * Math.floor(keys / 100)}`);
    const values = changed.map((_, i) => keys + i);
    const caseName = `delta for 100 changed keys, ${keys}-key doc`;
    const since = new Map(l.versionVector); // a copy: versionVector is a live view
    l.write(
      { kind: 'update', set: changed.map((k, i) => ({ path: [k], value: values[i] as Value })) },
      clock.now(),
    );
    const started = performance.now();
    const delta = encodeDelta(l.delta(since));
    const computeMs = performance.now() - started;
    const sv = Y.encodeStateVector(y);
    y.transact(() => changed.forEach((k, i) => y.getMap('m').set(k, values[i])));
    suite.record(caseName, 'minimum', 'size', minimumBytes(changed, values), 'bytes', 'minimum');
    suite.record(caseName, 'lattice', 'size', delta.byteLength, 'bytes');
    suite.record(caseName, 'yjs', 'size', Y.encodeStateAsUpdate(y, sv).byteLength, 'bytes');
    suite.record(`delta compute + encode, ${keys}-key doc`, 'lattice', 'time', computeMs, 'ms');
  }
  return suite;
}
