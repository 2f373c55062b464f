import { MISSING, valueAtPath } from '@lattice/dql';
import type { JsonValue } from '@lattice/dql';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeTrustedValue, encodeValue, NOT_FOUND, readEncodedPath } from '../src/value-codec.js';

const key = fc.constantFrom(
  'a',
  'b',
  'c',
  '',
  'é',
  '__proto__',
  '__proto_',
  'constructor',
  'x'.repeat(40),
);
const leaf = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 300 }),
  fc.constantFrom(true, false, null),
  fc.uint8Array({ maxLength: 4 }),
  fc.bigInt({ min: 2n ** 40n, max: 2n ** 52n }).map(Number),
);
const value: fc.Arbitrary<JsonValue> = fc.letrec<{ v: JsonValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf as fc.Arbitrary<JsonValue>,
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(key, tie('v'), { maxKeys: 20 }),
  ),
})).v;

describe('readEncodedPath', () => {
  it('equals valueAtPath of the decoded value, for any value and path', () => {
    fc.assert(
      fc.property(value, fc.array(key, { minLength: 1, maxLength: 3 }), (v, path) => {
        const bytes = encodeValue(v);
        const expected = valueAtPath(decodeTrustedValue(bytes) as JsonValue, path);
        const got = readEncodedPath(bytes, path);
        expect(got === NOT_FOUND ? MISSING : got).toEqual(expected);
      }),
      { numRuns: 2_000 },
    );
  });

  it('reads a field of a large map (map 16) and nested objects', () => {
    const big: Record<string, JsonValue> = {};
    for (let i = 0; i < 70_000; i++) big[`k${i}`] = i;
    const doc = { _id: 'a', big, deep: { x: { y: 'z' } } };
    const bytes = encodeValue(doc);
    expect(readEncodedPath(bytes, ['big', 'k69999'])).toBe(69_999);
    expect(readEncodedPath(bytes, ['deep', 'x'])).toEqual({ y: 'z' });
    expect(readEncodedPath(bytes, ['deep', 'x', 'y', 'w'])).toBe(NOT_FOUND);
  });
});
