import { fc, test } from '@fast-check/vitest';
import { hasCode } from '@lattice/errors';
import { compareDocIds, decodeDocId, docIdKey, encodeDocId } from '@lattice/crdt';
import type { DocId } from '@lattice/crdt';
import { describe, expect, it } from 'vitest';

const part = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.dictionary(fc.string(), tie('v'), { maxKeys: 3 }),
  ),
}));
const docId: fc.Arbitrary<DocId> = fc.oneof(
  fc.string(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.dictionary(fc.string(), part.v, { maxKeys: 4 }) as fc.Arbitrary<DocId>,
);

describe('canonical _id', () => {
  test.prop([docId])('round-trips', (id) => {
    const back = decodeDocId(encodeDocId(id));
    expect(docIdKey(back)).toBe(docIdKey(id));
  });

  test.prop([
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
  ])('numbers sort by value', (a, b) => {
    expect(Math.sign(compareDocIds(a, b))).toBe(a < b ? -1 : a > b ? 1 : 0);
  });

  test.prop([fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' })])(
    'strings sort by code point',
    (a, b) => {
      const cps = (s: string): number[] => [...s].map((c) => c.codePointAt(0) as number);
      const x = cps(a);
      const y = cps(b);
      let expected = 0;
      for (let i = 0; i < Math.min(x.length, y.length) && expected === 0; i++)
        expected = Math.sign((x[i] as number) - (y[i] as number));
      if (expected === 0) expected = Math.sign(x.length - y.length);
      expect(Math.sign(compareDocIds(a, b))).toBe(expected);
    },
  );

  it('compares objects by value, not key order', () => {
    expect(docIdKey({ region: '1', location: '42' })).toBe(
      docIdKey({ location: '42', region: '1' }),
    );
    expect(compareDocIds({ a: 1 }, { a: 2 })).toBeLessThan(0);
    expect(compareDocIds(5, 'a')).toBeLessThan(0);
    expect(compareDocIds('z', { a: 1 })).toBeLessThan(0);
    expect(compareDocIds('a', 'a\u0000')).toBeLessThan(0);
  });

  it('refuses invalid ids and non-canonical bytes with typed errors', () => {
    expect(() => encodeDocId(Number.NaN)).toThrow(
      expect.objectContaining({ code: 'CRDT_INVALID_ID' }),
    );
    expect(() => encodeDocId(null as unknown as DocId)).toThrow(
      expect.objectContaining({ code: 'CRDT_INVALID_ID' }),
    );
    for (const bytes of [
      new Uint8Array([]),
      new Uint8Array([0x99]),
      new Uint8Array([0x20, 0x61]),
      new Uint8Array([0x30, 1, 0x62, 0, 1, 0x40, 1, 0x61, 0, 1, 0x40, 0]),
    ]) {
      let err: unknown;
      try {
        decodeDocId(bytes);
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, 'CRDT_DECODE')).toBe(true);
    }
  });
});
