import { fc, test } from '@fast-check/vitest';
import { CrdtDocument, decodeDelta, encodeDelta } from '@lattice/crdt';
import { describe, expect } from 'vitest';
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
});
