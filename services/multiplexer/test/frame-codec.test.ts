import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChunkAssembler,
  ControlType,
  DATA_HEADER_BYTES,
  decodeFrame,
  encodeChunks,
  encodeControlFrame,
  encodeDataFrame,
  MAX_FRAME_BYTES,
  widenOffset,
} from '@lattice/multiplexer';
import type { AckEntry } from '@lattice/multiplexer';

const ackArb: fc.Arbitrary<AckEntry> = fc
  .record({
    stream: fc.integer({ min: 0, max: 7 }),
    cumulative: fc.integer({ min: 0, max: 2 ** 24 - 1 }),
    window: fc.integer({ min: 0, max: 2 ** 22 }),
    cuts: fc.uniqueArray(fc.integer({ min: 1, max: 100_000 }), { maxLength: 14 }),
  })
  .map(({ stream, cumulative, window, cuts }) => {
    // Pairs of ascending cut points, strictly increasing with gaps: [s, e) ranges.
    const sorted = [...cuts].sort((a, b) => a - b);
    const ranges: [number, number][] = [];
    for (let i = 0; i + 1 < sorted.length && ranges.length < 7; i += 2) {
      const s = sorted[i] as number;
      const e = sorted[i + 1] as number;
      const prevEnd = ranges[ranges.length - 1]?.[1] ?? 0;
      if (s > prevEnd && e > s) ranges.push([s, e]);
    }
    return { stream, cumulative, window, ranges };
  });

const acksArb = fc
  .uniqueArray(ackArb, { maxLength: 8, selector: (a) => a.stream })
  .map((acks) => acks);

function isMuxError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'MUX_FRAME_MALFORMED' || code === 'MUX_FRAME_TOO_LARGE';
}

describe('frame codec', () => {
  it('costs 4 bytes of header on a data frame without acks or CRC', () => {
    for (const n of [1, 16, 181, 508, 65_532]) {
      const frame = encodeDataFrame({ stream: 3, offset: 123_456_789, payload: new Uint8Array(n) });
      expect(frame.length).toBe(n + DATA_HEADER_BYTES);
    }
    expect(DATA_HEADER_BYTES).toBe(4);
  });

  it('decodes what it encodes: data frames', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        acksArb,
        fc.uint8Array({ minLength: 1, maxLength: 600 }),
        fc.boolean(),
        (stream, offset, acks, payload, crc) => {
          const frame = decodeFrame(encodeDataFrame({ stream, offset, acks, payload, crc }), {
            requireCrc: crc,
          });
          expect(frame).toEqual({
            kind: 'data',
            stream,
            offset: offset % 2 ** 24,
            acks: acks.map((a) => ({ ...a, cumulative: a.cumulative % 2 ** 24 })),
            payload,
          });
        },
      ),
    );
  });

  it('decodes what it encodes: control frames', () => {
    fc.assert(
      fc.property(
        acksArb,
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.boolean(),
        (acks, token, crc) => {
          const body = new Uint8Array(4);
          new DataView(body.buffer).setUint32(0, token);
          const ping = decodeFrame(encodeControlFrame({ type: ControlType.PING, acks, body, crc }));
          expect(ping).toEqual({ kind: 'control', type: ControlType.PING, acks, body });
          if (acks.length > 0) {
            const ack = decodeFrame(encodeControlFrame({ type: ControlType.ACK, acks, crc }));
            expect(ack).toEqual({
              kind: 'control',
              type: ControlType.ACK,
              acks,
              body: new Uint8Array(0),
            });
          }
        },
      ),
    );
  });

  it('widens a 24-bit offset to the value nearest the reference', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 45 }),
        fc.integer({ min: -(2 ** 23) + 1, max: 2 ** 23 - 1 }),
        (reference, delta) => {
          const offset = Math.max(0, reference + delta);
          expect(widenOffset(offset % 2 ** 24, reference)).toBe(offset);
        },
      ),
    );
  });

  it('splits handshake messages into chunks that reassemble in any order', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 200 }),
        fc.integer({ min: 14, max: 300 }),
        fc.func(fc.integer()),
        (message, maxBody, order) => {
          const chunks = encodeChunks(message, maxBody);
          expect(chunks.every((c) => c.length <= maxBody)).toBe(true);
          const shuffled = [...chunks, ...chunks].sort((x, y) => order(x) - order(y));
          const asm = new ChunkAssembler();
          let out: Uint8Array | undefined;
          for (const c of shuffled) out ??= asm.add(c);
          expect(out).toEqual(message);
        },
      ),
    );
  });

  it('fuzz: random bytes decode or fail with a typed error, never anything else', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.boolean(),
        (bytes, requireCrc) => {
          try {
            decodeFrame(bytes, { requireCrc });
          } catch (error) {
            expect(isMuxError(error)).toBe(true);
          }
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it('fuzz: mutated valid frames decode or fail typed; with a CRC every mutation is caught', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.nat(),
        acksArb,
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.boolean(),
        (stream, offset, acks, payload, flips, crc) => {
          const frame = encodeDataFrame({ stream, offset, acks, payload, crc });
          const mutated = frame.slice();
          for (const [pos, xor] of flips)
            mutated[pos % mutated.length] = (mutated[pos % mutated.length] ?? 0) ^ xor;
          const changed = mutated.some((b, i) => b !== frame[i]);
          let decoded;
          try {
            decoded = decodeFrame(mutated, { requireCrc: crc });
          } catch (error) {
            expect(isMuxError(error)).toBe(true);
            return;
          }
          // CRC-32 detects every error within a 32-bit burst, so up to 3 flipped bytes in a
          // short frame can slip through only if they are far apart; one flipped byte never does.
          if (crc && changed && flips.length === 1)
            expect.unreachable(`undetected: ${String(decoded)}`);
        },
      ),
      { numRuns: 3_000 },
    );
  });

  it('refuses frames over the limit and truncated or empty ones', () => {
    expect(() => decodeFrame(new Uint8Array(MAX_FRAME_BYTES + 1))).toThrow(
      expect.objectContaining({ code: 'MUX_FRAME_TOO_LARGE' }) as Error,
    );
    for (const bad of [[], [0x40], [0x40, 0, 0, 0], [0x00, 0, 0, 0, 1], [0x27], [0x60]]) {
      expect(() => decodeFrame(Uint8Array.from(bad))).toThrow(
        expect.objectContaining({ code: 'MUX_FRAME_MALFORMED' }) as Error,
      );
    }
    const noCrc = encodeDataFrame({ stream: 0, offset: 0, payload: new Uint8Array(5) });
    expect(() => decodeFrame(noCrc, { requireCrc: true })).toThrow(
      expect.objectContaining({ code: 'MUX_FRAME_MALFORMED' }) as Error,
    );
  });
});
