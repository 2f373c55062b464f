import { fc, test } from '@fast-check/vitest';
import { CrdtDocument, decodeDelta, encodeDelta } from '@lattice/crdt';
import { describe, expect, it } from 'vitest';
import { merged, run, stateOf, stepsArb } from './arbitraries.js';
import { Replica } from './helpers.js';

const three = stepsArb(3);

describe('merge is a join', () => {
  test.prop([three], { numRuns: Number(process.env.LATTICE_SOAK ?? 0) > 0 ? 5000 : 300 })(
    'commutative',
    (steps) => {
      const [a, b] = run(steps, 3);
      if (!a || !b) return;
      const ab = merged(a.doc, b.doc);
      const ba = merged(b.doc, a.doc);
      expect(stateOf(ab)).toBe(stateOf(ba));
      expect(ab.toJSON()).toEqual(ba.toJSON());
    },
  );

  test.prop([three], { numRuns: Number(process.env.LATTICE_SOAK ?? 0) > 0 ? 5000 : 300 })(
    'associative',
    (steps) => {
      const [a, b, c] = run(steps, 3);
      if (!a || !b || !c) return;
      expect(stateOf(merged(merged(a.doc, b.doc), c.doc))).toBe(
        stateOf(merged(a.doc, merged(b.doc, c.doc))),
      );
    },
  );

  test.prop([three], { numRuns: Number(process.env.LATTICE_SOAK ?? 0) > 0 ? 5000 : 300 })(
    'idempotent',
    (steps) => {
      const [a, b] = run(steps, 3);
      if (!a || !b) return;
      expect(stateOf(merged(a.doc, a.doc))).toBe(stateOf(a.doc));
      const ab = merged(a.doc, b.doc);
      expect(stateOf(merged(ab, b.doc))).toBe(stateOf(ab));
    },
  );

  test.prop([three], { numRuns: Number(process.env.LATTICE_SOAK ?? 0) > 0 ? 5000 : 300 })(
    'delta-then-apply equals full merge',
    (steps) => {
      const [a, b] = run(steps, 3);
      if (!a || !b) return;
      const viaDelta = b.doc.clone();
      viaDelta.merge(a.doc.delta(b.doc.versionVector));
      expect(stateOf(viaDelta)).toBe(stateOf(merged(b.doc, a.doc)));
      expect(viaDelta.toJSON()).toEqual(merged(b.doc, a.doc).toJSON());
    },
  );

  test.prop([three], { numRuns: Number(process.env.LATTICE_SOAK ?? 0) > 0 ? 5000 : 300 })(
    'encode/decode round trip',
    (steps) => {
      const [a, b] = run(steps, 3);
      if (!a || !b) return;
      const bytes = encodeDelta(a.doc.snapshot());
      const back = CrdtDocument.fromDelta(decodeDelta(bytes));
      expect(stateOf(back)).toBe(stateOf(a.doc));
      expect(back.toJSON()).toEqual(a.doc.toJSON());
      const d = a.doc.delta(b.doc.versionVector);
      expect(Buffer.from(encodeDelta(decodeDelta(encodeDelta(d)))).toString('hex')).toBe(
        Buffer.from(encodeDelta(d)).toString('hex'),
      );
    },
  );
});

describe('shared subtrees (copy on write)', () => {
  test.prop([three, three], { numRuns: Number(process.env.LATTICE_SOAK ?? 0) > 0 ? 2000 : 200 })(
    'deltas, snapshots, clones and merged-in states never change afterwards',
    (steps, later) => {
      const [a, b, c] = run(steps, 3);
      if (!a || !b || !c) return;
      // Share subtrees every way there is: b adopts a's snapshot and a delta, a clone of b.
      const snap = a.doc.snapshot();
      const delta = a.doc.delta(c.doc.versionVector);
      b.doc.merge(snap);
      c.doc.merge(delta);
      const clone = b.doc.clone();
      const before = [snap, delta].map((d) => Buffer.from(encodeDelta(d)).toString('hex'));
      const aState = stateOf(a.doc);
      const cloneState = stateOf(clone);
      // Then b and c go on writing and merging (a only gives).
      const reps = [a, b, c];
      for (const s of later) {
        if (s.r === 0) continue;
        if (s.t === 'write') {
          const rep = reps[s.r] as Replica;
          rep.wall += s.tick;
          rep.write(s.intent);
        } else if (s.r !== s.from) (reps[s.r] as Replica).pull(reps[s.from] as Replica);
      }
      expect([snap, delta].map((d) => Buffer.from(encodeDelta(d)).toString('hex'))).toEqual(before);
      expect(stateOf(clone)).toBe(cloneState);
      expect(stateOf(a.doc)).toBe(aState);
    },
  );
});

describe('delta index', () => {
  test.prop([fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 40 })], { numRuns: 15 })(
    'after long histories (log compaction) a delta still equals the full merge',
    (syncAt, keys) => {
      const a = new Replica('a');
      const b = new Replica('b');
      a.insert({ _id: 'doc' });
      for (let i = 0; i < 3000; i++) {
        if (i === syncAt) b.pull(a);
        a.wall += i % 3;
        a.set([`k${i % keys}`, i % 2 === 0 ? 'x' : 'y'], i);
        if (i % 500 === 0) b.set([`b${i}`], i);
      }
      const viaDelta = b.doc.clone();
      viaDelta.merge(a.doc.delta(b.doc.versionVector));
      expect(stateOf(viaDelta)).toBe(stateOf(merged(b.doc, a.doc)));
    },
  );

  it('many peers writing every field: the log settles instead of rebuilding forever', () => {
    const peers = Array.from({ length: 6 }, (_, i) => new Replica(`p${i}`));
    const first = peers[0] as Replica;
    first.insert({ _id: 'doc' });
    const b = new Replica('b');
    b.pull(first);
    const set = Array.from({ length: 1500 }, (_, i) => ({ path: [`k${i}`], value: i }));
    for (const p of peers) {
      if (p !== first) p.pull(first);
      p.write({ kind: 'update', set });
      first.pull(p);
    }
    for (let round = 0; round < 3; round++) {
      first.write({ kind: 'update', set: set.slice(0, 700) });
      const viaDelta = b.doc.clone();
      viaDelta.merge(first.doc.delta(b.doc.versionVector));
      expect(stateOf(viaDelta)).toBe(stateOf(merged(b.doc, first.doc)));
    }
  });
});
