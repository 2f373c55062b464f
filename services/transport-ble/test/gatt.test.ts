import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  clampMtu,
  decodeAdvertisedName,
  encodeAdvertisedName,
  isShortPeerId,
  maxFrameBytesForMtu,
  shouldDial,
} from '../src/index.js';

const shortId = fc.stringMatching(/^[0-9A-Za-z_-]{1,8}$/);

describe('gatt', () => {
  it('derives the frame size from the MTU: MTU − 3, at least 20, MTU clamped to 23..517', () => {
    expect(maxFrameBytesForMtu(23)).toBe(20);
    expect(maxFrameBytesForMtu(185)).toBe(182);
    expect(maxFrameBytesForMtu(517)).toBe(514);
    expect(maxFrameBytesForMtu(null)).toBe(20);
    expect(maxFrameBytesForMtu(5)).toBe(20);
    expect(maxFrameBytesForMtu(9000)).toBe(514);
    fc.assert(
      fc.property(fc.integer({ min: -10, max: 10_000 }), (mtu) => {
        const f = maxFrameBytesForMtu(mtu);
        expect(f).toBe(clampMtu(mtu) - 3);
        expect(f).toBeGreaterThanOrEqual(20);
        expect(f).toBeLessThanOrEqual(514);
      }),
    );
  });

  it('round-trips a short id through the advertised name, and rejects other names', () => {
    fc.assert(
      fc.property(shortId, (id) => {
        expect(decodeAdvertisedName(encodeAdvertisedName(id))).toBe(id);
      }),
    );
    expect(decodeAdvertisedName(undefined)).toBeUndefined();
    expect(decodeAdvertisedName('Fitbit')).toBeUndefined();
    expect(decodeAdvertisedName('L')).toBeUndefined();
    expect(decodeAdvertisedName('L123456789')).toBeUndefined();
    expect(() => encodeAdvertisedName('too-long-id')).toThrow(RangeError);
    expect(isShortPeerId('a b')).toBe(false);
  });

  it('lets exactly one of two distinct peers dial, and never ourselves', () => {
    fc.assert(
      fc.property(shortId, shortId, (a, b) => {
        if (a === b) expect(shouldDial(a, b)).toBe(false);
        else expect(Number(shouldDial(a, b)) + Number(shouldDial(b, a))).toBe(1);
      }),
    );
  });
});
