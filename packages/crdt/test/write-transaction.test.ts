// A local write places the slots of fields the document lacks straight into the document's map
// while the intent is built, and commits or abandons them afterwards (`OpBuilder` in
// `document.ts`). These tests pin the invariants of that transaction: an abandoned write leaves
// the document exactly as it was, an intent reads the state before it, and a write's delta (built
// when first read) is what the write committed, however much later it is read.
import { fc, test } from '@fast-check/vitest';
import { hasCode } from '@lattice/errors';
import {
  asPeerId,
  CrdtDocument,
  decodeDocument,
  DOC_MAX_BYTES,
  encodeDelta,
  encodeDocument,
} from '@lattice/crdt';
import type { DocDelta, Path, Timestamp, Value, WriteIntent, WriteResult } from '@lattice/crdt';
import { describe, expect, it } from 'vitest';
import { pathArb, stepsArb, run, stateOf, valueArb } from './arbitraries.js';
import { Replica } from './helpers.js';

const peer = asPeerId('w');
let time = 1_000_000;
function at(): Timestamp {
  return { time: ++time, peer } as Timestamp;
}

function setMany(keys: readonly string[], value: (i: number) => unknown): WriteIntent {
  return {
    kind: 'update',
    set: keys.map((k, i) => ({ path: [k], value: value(i) as Value })),
  };
}

function deltaOf(r: WriteResult): DocDelta {
  if (r.delta === undefined) throw new Error('the write changed nothing');
  return r.delta;
}

/** Everything observable about a document, as comparable values. */
function observe(doc: CrdtDocument): unknown {
  return {
    bytes: Buffer.from(encodeDocument(doc)).toString('hex'),
    json: doc.toJSON(),
    vv: [...doc.versionVector],
    size: doc.byteSize,
    exists: doc.exists,
    delta: Buffer.from(encodeDelta(doc.delta(new Map([[peer, 0]])))).toString('hex'),
  };
}

describe('write transactions', () => {
  it('a write that throws halfway leaves the document as it was, and later writes as on a twin', () => {
    const keys = Array.from({ length: 2_000 }, (_, i) => `k${i}`);
    for (const start of ['empty', 'written', 'decoded'] as const) {
      let doc = CrdtDocument.create('doc');
      if (start !== 'empty') {
        doc.write({ kind: 'insert', document: { _id: 'doc', k5: 'old', m: { x: 1 } } }, at());
        doc.write(
          setMany(keys.slice(0, 100), (i) => i),
          at(),
        );
      }
      if (start === 'decoded') doc = decodeDocument(encodeDocument(doc));
      const twin = decodeDocument(encodeDocument(doc));
      const before = observe(doc);
      // New fields, fields the document holds, a nested one, then an invalid value at the end.
      const bad: WriteIntent = {
        kind: 'update',
        set: [
          ...keys.map((k, i) => ({ path: [k], value: i })),
          { path: ['m', 'y'], value: 2 },
          { path: ['last'], value: Number.POSITIVE_INFINITY },
        ],
      };
      let err: unknown;
      try {
        doc.write(bad, at());
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, 'CRDT_INVALID_VALUE'), String(err)).toBe(true);
      expect(observe(doc)).toEqual(before);
      expect(doc.get(['k1999'])).toBeUndefined();
      const insert: WriteIntent = {
        kind: 'insert',
        document: { _id: 'doc', bad: 1n as unknown as Value },
      };
      expect(() => doc.write(insert, at())).toThrow();
      expect(observe(doc)).toEqual(before);
      // The same later write gives the same document as on a twin that never saw the failures.
      const t = at();
      const r1 = doc.write(
        setMany(keys, (i) => `v${i}`),
        t,
      );
      const r2 = twin.write(
        setMany(keys, (i) => `v${i}`),
        t,
      );
      expect(observe(doc)).toEqual(observe(twin));
      expect(encodeDelta(deltaOf(r1))).toEqual(encodeDelta(deltaOf(r2)));
    }
  });

  it('a write refused as too large leaves the document as it was', () => {
    const doc = CrdtDocument.create('doc');
    doc.write({ kind: 'insert', document: { _id: 'doc', a: 'x'.repeat(3 * 1024 * 1024) } }, at());
    const before = observe(doc);
    const big = 'y'.repeat(1200 * 1024);
    let err: unknown;
    try {
      doc.write(
        setMany(['b', 'c', 'd'], () => big),
        at(),
      );
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'CRDT_DOC_TOO_LARGE')).toBe(true);
    expect(observe(doc)).toEqual(before);
    expect(doc.byteSize).toBeLessThanOrEqual(DOC_MAX_BYTES);
  });

  it('an intent reads the state before it, also for fields it creates', () => {
    const cases: [WriteIntent, Record<string, Value>][] = [
      // The later SET of a path wins; a SET then UNSET of a field the document lacked keeps the SET
      // (the UNSET removes only what existed before the intent).
      [
        {
          kind: 'update',
          set: [
            { path: ['a'], value: 1 },
            { path: ['a'], value: 2 },
          ],
        },
        { a: 2, old: 'x' },
      ],
      [
        { kind: 'update', set: [{ path: ['a'], value: 1 }], unset: [['a']] },
        { a: 1, old: 'x' },
      ],
      [{ kind: 'update', set: [{ path: ['old'], value: 1 }], unset: [['old']] }, {}],
      [
        {
          kind: 'update',
          set: [
            { path: ['m', 'x'], value: 1 },
            { path: ['m', 'y'], value: 2 },
            { path: ['old', 'z'], value: 3 },
          ],
        },
        { m: { x: 1, y: 2 }, old: { z: 3 } },
      ],
      [
        {
          kind: 'update',
          apply: [
            { op: 'INCREMENT', path: ['c'], by: 2 },
            { op: 'INCREMENT', path: ['c'], by: 3 },
            { op: 'INCREMENT', path: ['old'], by: 1 },
          ],
        },
        { c: 5, old: 1 },
      ],
      // A PN_COUNTER SET increments by the difference to the value before the intent.
      [
        {
          kind: 'update',
          set: [
            { path: ['p'], value: 3 },
            { path: ['p'], value: 5 },
          ],
          typedefs: { p: 'PN_COUNTER' },
        },
        { p: 8, old: 'x' },
      ],
      [
        {
          kind: 'insert',
          document: { _id: 'doc', old: 'x', n: { a: 1 } },
          onConflict: 'DO_UPDATE_LOCAL_DIFF',
        },
        { old: 'x', n: { a: 1 } },
      ],
    ];
    for (const [intent, expected] of cases) {
      const doc = CrdtDocument.create('doc');
      doc.write({ kind: 'insert', document: { _id: 'doc', old: 'x' } }, at());
      const before = doc.clone();
      const r = doc.write(intent, at());
      expect(doc.toJSON()).toEqual({ _id: 'doc', ...expected });
      before.merge(deltaOf(r));
      expect(encodeDocument(before)).toEqual(encodeDocument(doc));
    }
  });

  it("a write's delta read after later writes is what the write committed", () => {
    const a = new Replica('a');
    a.insert({ _id: 'doc', held: 1, m: { x: 1 } });
    const base = a.doc.clone();
    const r = a.write({
      kind: 'update',
      set: [
        ...Array.from({ length: 50 }, (_, i) => ({ path: [`n${i}`], value: i })),
        { path: ['held'], value: 2 },
        { path: ['m', 'y'], value: 2 },
        { path: ['fresh', 'deep'], value: 3 },
      ],
    });
    const after = encodeDocument(a.doc);
    // Later writes change every field the first one wrote, in place where the document owns them.
    a.write({
      kind: 'update',
      set: [
        ...Array.from({ length: 50 }, (_, i) => ({ path: [`n${i}`], value: -i })),
        { path: ['held'], value: 3 },
        { path: ['m', 'y'], value: 3 },
        { path: ['fresh', 'deep'], value: 4 },
      ],
    });
    a.unset(['n0']);
    const bytes = encodeDelta(deltaOf(r));
    expect(encodeDelta(deltaOf(r))).toEqual(bytes);
    base.merge(deltaOf(r));
    expect(encodeDocument(base)).toEqual(after);
  });

  it("a write's delta (built when first read) equals the document's delta since the write's start, read in any order", () => {
    // Its since, version vector and tree are made lazily and separately (`DocDelta._ofWrite`).
    for (const first of ['since', 'versionVector', 'root'] as const) {
      const a = new Replica('a');
      const r0 = a.write({ kind: 'insert', document: { _id: 'doc', held: 1, m: { x: 1 } } });
      const d0 = deltaOf(r0);
      if (first === 'root') expect(d0.root).toBe(d0.root);
      expect([...d0.since]).toEqual([]);
      expect([...d0.versionVector]).toEqual([...a.doc.versionVector]);
      const before = a.doc.clone();
      const start = new Map(a.doc.versionVector);
      // A held field first, then new ones (the op's list of document slots starts at the first
      // field), a held one again, and a nested path under a held map.
      const r = a.write({
        kind: 'update',
        set: [
          { path: ['held'], value: 2 },
          { path: ['n1'], value: 1 },
          { path: ['n2'], value: 2 },
          { path: ['m', 'y'], value: 2 },
        ],
      });
      const d = deltaOf(r);
      const reads = {
        since: () => [...d.since],
        versionVector: () => [...d.versionVector],
        root: () => encodeDelta(d),
      };
      const firstRead = reads[first]();
      expect(reads[first]()).toEqual(firstRead);
      expect([...d.since]).toEqual([...start]);
      expect([...d.versionVector]).toEqual([...a.doc.versionVector]);
      expect(encodeDelta(d)).toEqual(encodeDelta(a.doc.delta(start)));
      // A later write does not change it.
      a.write(setMany(['held', 'n1', 'n3'], (i) => -i));
      expect(encodeDelta(d)).toEqual(encodeDelta(deltaOf(r)));
      before.merge(d);
      expect(before.toJSON()).toEqual({ _id: 'doc', held: 2, m: { x: 1, y: 2 }, n1: 1, n2: 2 });
    }
  });

  it('a near-limit merge of fields the document holds is accepted, in key order or not', () => {
    // Long keys: the two states together exceed the limit by their key bytes alone, the merge
    // (every key held on both sides) adds only entries.
    const keys = Array.from(
      { length: 3_000 },
      (_, i) => `${String(i).padStart(5, '0')}${'k'.repeat(1_000)}`,
    );
    const shuffled = [...keys].reverse();
    for (const [orderA, orderB] of [
      [keys, keys],
      [shuffled, shuffled],
      [keys, shuffled],
    ] as const) {
      const a = new Replica('a');
      const b = new Replica('b');
      a.write(setMany(orderA, (i) => i));
      b.write(setMany(orderB, (i) => -i));
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const) {
        expect(x.doc.byteSize + y.doc.byteSize).toBeGreaterThan(DOC_MAX_BYTES);
      }
      const fromA = decodeDocument(encodeDocument(a.doc));
      const loadedB = decodeDocument(encodeDocument(b.doc));
      a.pull(b);
      b.pull(a);
      loadedB.merge(fromA.snapshot());
      expect(encodeDocument(a.doc)).toEqual(encodeDocument(b.doc));
      expect(encodeDocument(loadedB)).toEqual(encodeDocument(a.doc));
      expect(a.doc.byteSize).toBeLessThanOrEqual(DOC_MAX_BYTES);
    }
  });
});

const clauseArb: fc.Arbitrary<WriteIntent> = fc
  .record({
    set: fc.array(fc.record({ path: pathArb, value: valueArb }), { maxLength: 4 }),
    unset: fc.array(pathArb, { maxLength: 2 }),
    apply: fc.array(
      fc.record({
        path: pathArb,
        op: fc.constantFrom('INCREMENT' as const, 'RESTART' as const),
        n: fc.integer({ min: -3, max: 3 }),
      }),
      { maxLength: 2 },
    ),
  })
  .map((x): WriteIntent => ({
    kind: 'update',
    set: x.set,
    unset: x.unset as Path[],
    apply: x.apply.map((a) =>
      a.op === 'RESTART'
        ? { op: 'RESTART', path: a.path, with: a.n }
        : { op: 'INCREMENT', path: a.path, by: a.n },
    ),
  }));

describe('write transactions (properties)', () => {
  test.prop([stepsArb(2, 12), fc.array(clauseArb, { minLength: 1, maxLength: 4 })])(
    "multi-clause intents: a write's delta merged into the state before it gives the state after it",
    (steps, intents) => {
      const [r] = run(steps, 2) as [Replica, Replica];
      for (const intent of intents) {
        const before = r.doc.clone();
        let result;
        try {
          result = r.write(intent);
        } catch {
          // Whatever refuses an intent must leave the document unchanged.
          expect(stateOf(r.doc)).toEqual(stateOf(before));
          continue;
        }
        if (result.delta === undefined) {
          expect(stateOf(r.doc)).toEqual(stateOf(before));
          continue;
        }
        before.merge(result.delta);
        expect(stateOf(before)).toEqual(stateOf(r.doc));
      }
    },
  );
});
