import { fc, test } from '@fast-check/vitest';
import {
  asPeerId,
  CrdtDocument,
  decodeDelta,
  decodeDocument,
  encodeDelta,
  encodeDocument,
  HybridClock,
  mergeEncoded,
} from '@lattice/crdt';
import type { MergeResult, VersionVector } from '@lattice/crdt';
import { describe, expect, it } from 'vitest';
import { run, stateOf, stepsArb } from './arbitraries.js';
import { Replica, sync } from './helpers.js';

const SOAK = Number(process.env.LATTICE_SOAK ?? 0) > 0;
const WALL = 1_700_000_000_000;

interface Outcome {
  readonly result: MergeResult | undefined;
  readonly code: unknown;
  readonly state: string;
  readonly json: unknown;
  readonly vv: [string, number][];
  readonly deltas: string[];
  readonly clock: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/**
 * Merges `bytes` into `doc` with `merge` (a fresh clock at `wall`) and reports everything
 * observable: result or error code, state, version vector, deltas since `probes`, the clock.
 */
function outcome(
  doc: CrdtDocument,
  bytes: Uint8Array,
  how: (doc: CrdtDocument, bytes: Uint8Array, clock: HybridClock) => MergeResult,
  probes: readonly VersionVector[],
  wall = WALL,
): Outcome {
  const clock = new HybridClock({ peer: asPeerId('receiver'), wallClock: () => wall });
  let result: MergeResult | undefined;
  let code: unknown;
  try {
    result = how(doc, bytes, clock);
  } catch (e) {
    code = (e as { code?: unknown }).code ?? String(e);
  }
  return {
    result,
    code,
    state: stateOf(doc),
    json: doc.toJSON(),
    vv: [...doc.versionVector].sort(([a], [b]) => (a < b ? -1 : 1)),
    deltas: probes.map((p) => hex(encodeDelta(doc.delta(p)))),
    clock: clock.highWaterMark,
  };
}

const decodeThenMerge = (doc: CrdtDocument, bytes: Uint8Array, clock: HybridClock): MergeResult =>
  doc.merge(decodeDelta(bytes), { clock });
const streamed = (doc: CrdtDocument, bytes: Uint8Array, clock: HybridClock): MergeResult =>
  mergeEncoded(doc, bytes, { clock });

/**
 * `mergeEncoded` into `target` behaves exactly as `merge(decodeDelta(bytes))`: on a clone (shared
 * slots, a change log) and on a copy loaded from bytes (slots owned, no log); a failed merge
 * changes nothing.
 */
function expectSameMerge(
  target: CrdtDocument,
  bytes: Uint8Array,
  probes: readonly VersionVector[] = [],
  wall = WALL,
): Outcome {
  const all = [new Map(), target.versionVector, ...probes];
  // Build the change log of the target first, so the clones carry one.
  target.delta(target.versionVector);
  const before = stateOf(target);
  let last: Outcome | undefined;
  for (const copy of [
    () => target.clone(),
    () => decodeDocument(encodeDocument(target)),
  ] as const) {
    const want = outcome(copy(), bytes, decodeThenMerge, all, wall);
    const got = outcome(copy(), bytes, streamed, all, wall);
    expect(got).toEqual(want);
    if (got.code !== undefined) expect(got.state).toBe(before);
    last = got;
  }
  return last as Outcome;
}

describe('mergeEncoded (streaming decode and merge)', () => {
  test.prop([stepsArb(3)], { numRuns: SOAK ? 3000 : 300 })(
    'equals decode-then-merge for full states and deltas between arbitrary replicas',
    (steps) => {
      const reps = run(steps, 3);
      for (const to of reps) {
        for (const from of reps) {
          if (to === from) continue;
          const probes = reps.map((r) => r.doc.versionVector);
          expectSameMerge(to.doc, encodeDelta(from.doc.snapshot()), probes);
          expectSameMerge(to.doc, encodeDelta(from.doc.delta(to.doc.versionVector)), probes);
        }
      }
    },
  );

  const mutations = fc.array(
    fc.record({
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
      op: fc.constantFrom('flip', 'insert', 'delete', 'truncate'),
    }),
    { minLength: 1, maxLength: 4 },
  );
  function mutate(input: Uint8Array, ms: readonly { at: number; byte: number; op: string }[]) {
    let bytes = Array.from(input);
    for (const m of ms) {
      const i = m.at % Math.max(bytes.length, 1);
      if (m.op === 'flip') bytes[i] = m.byte;
      else if (m.op === 'insert') bytes.splice(i, 0, m.byte);
      else if (m.op === 'delete') bytes.splice(i, 1);
      else bytes = bytes.slice(0, i);
    }
    return Uint8Array.from(bytes);
  }

  /** A receiver with fields and a sender whose state overlaps it: held, new and nested fields. */
  function pairWithHistory(fields: number): [Replica, Replica] {
    const a = new Replica('a');
    const b = new Replica('b');
    a.insert({ _id: 'doc', n: 1, m: { x: 1, y: 'two' } });
    sync(a, b);
    b.write({
      kind: 'update',
      set: Array.from({ length: fields }, (_, i) => ({ path: [`f${i}`], value: `v${i}` })),
      apply: [{ op: 'INCREMENT', path: ['c'], by: 2 }],
    });
    b.set(['m', 'x'], [1, 2]);
    b.unset(['n']);
    a.set(['m', 'z'], true);
    a.set(['f1'], 'mine');
    return [a, b];
  }

  test.prop([mutations], { numRuns: SOAK ? 5000 : 1000 })(
    'mutated messages: the same error (and nothing changed) or the same merge',
    (ms) => {
      const [a, b] = pairWithHistory(6);
      expectSameMerge(a.doc, mutate(encodeDelta(b.doc.snapshot()), ms), [b.doc.versionVector]);
    },
  );

  test.prop([mutations], { numRuns: SOAK ? 1000 : 150 })(
    'mutated deflated messages: the same error (and nothing changed) or the same merge',
    (ms) => {
      const [a, b] = pairWithHistory(600);
      expectSameMerge(a.doc, mutate(encodeDelta(b.doc.snapshot()), ms), [b.doc.versionVector]);
    },
  );

  it('a conflict on every key merges the same in both tie-break directions', () => {
    for (const [local, remote] of [
      ['peer-a', 'peer-b'],
      ['peer-b', 'peer-a'],
    ] as const) {
      const mk = (peer: string): CrdtDocument => {
        const c = new HybridClock({ peer: asPeerId(peer), wallClock: () => WALL });
        const d = CrdtDocument.create('conflict');
        d.write(
          {
            kind: 'update',
            set: Array.from({ length: 2000 }, (_, i) => ({
              path: [`k${i}`],
              value: `${peer}-${i}`,
            })),
          },
          c.now(),
        );
        return d;
      };
      const got = expectSameMerge(mk(local), encodeDocument(mk(remote)));
      expect(got.code).toBeUndefined();
      expect(got.result?.changed).toBe(true);
    }
  });

  it('a delta too far ahead of the clock is refused and changes nothing', () => {
    const [a, b] = pairWithHistory(20);
    b.wall += 3_600_000;
    b.set(['late'], 1);
    const got = expectSameMerge(a.doc, encodeDelta(b.doc.snapshot()), [], a.wall);
    expect(got.code).toBe('CRDT_CLOCK_DRIFT');
  });

  it('a merge over the size limit is refused and changes nothing; under it, it runs', () => {
    const big = 'y'.repeat(700 * 1024);
    const a = new Replica('a');
    const b = new Replica('b');
    a.insert({ _id: 'doc', m: { k1: 'a1', k2: big }, r: big, n: 1 });
    sync(a, b);
    b.set(['m', 'k1'], big);
    b.set(['r'], `${big}!`);
    b.set(['m', 'k3'], big);
    b.unset(['n']);
    a.set(['m', 'k4'], big);
    a.set(['m', 'k5'], big);
    a.set(['k6'], big);
    const bytes = encodeDelta(b.doc.delta(a.doc.versionVector));
    expect(expectSameMerge(a.doc, bytes, [b.doc.versionVector]).code).toBe('CRDT_DOC_TOO_LARGE');
    expect(expectSameMerge(a.doc, encodeDocument(b.doc)).code).toBe('CRDT_DOC_TOO_LARGE');
    a.write({ kind: 'update', unset: [['m', 'k4'], ['m', 'k5'], ['r']] });
    const ok = expectSameMerge(a.doc, bytes, [b.doc.versionVector]);
    expect(ok.code).toBeUndefined();
    expect(ok.result?.warning?.code).toBe('CRDT_DOC_LARGE');
  });

  it('merges into a held map in place (no copy of its children), far from the size limit', () => {
    const a = new Replica('a');
    const b = new Replica('b');
    const items = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`i${i}`, i]));
    a.insert({ _id: 'doc', items, n: 1 });
    sync(a, b);
    b.set(['items', 'i7'], 'seven');
    b.set(['n'], 2);
    const bytes = encodeDelta(b.doc.delta(a.doc.versionVector));
    const loaded = decodeDocument(encodeDocument(a.doc));
    const held = loaded._root.child('items');
    expect(mergeEncoded(loaded, bytes).changed).toBe(true);
    expect(loaded._root.child('items')).toBe(held);
    expect(loaded.toJSON()).toEqual(b.doc.toJSON());
    expectSameMerge(a.doc, bytes, [b.doc.versionVector]);
  });

  it('takes merge of the decoded message for a delete, an empty document and another document', () => {
    const [a, b] = pairWithHistory(5);
    const c = new Replica('c', 'other');
    c.insert({ _id: 'other', f0: 1 });
    expect(expectSameMerge(a.doc, encodeDocument(c.doc)).code).toBe('CRDT_DOC_MISMATCH');
    expect(expectSameMerge(CrdtDocument.create('doc'), encodeDocument(b.doc)).code).toBeUndefined();
    b.write({ kind: 'delete' });
    const del = expectSameMerge(a.doc, encodeDelta(b.doc.delta(a.doc.versionVector)));
    expect(del.code).toBeUndefined();
    expect(() => mergeEncoded(a.doc, 'x' as unknown as Uint8Array)).toThrow(TypeError);
  });
});
