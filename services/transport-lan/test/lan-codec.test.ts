import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hasCode } from '@lattice/errors';
import {
  decodeBye,
  decodeHello,
  encodeBye,
  encodeHello,
  encodeRecord,
  LAN_PROTOCOL_VERSION,
  MAX_BYE_BYTES,
  RECORD_HEADER_BYTES,
  RecordDecoder,
  RecordType,
} from '../src/index.js';

type Rec = { type: RecordType; payload: Uint8Array };

const MAX = 2_048; // a small max frame keeps the properties fast; the limit logic is the same
const record: fc.Arbitrary<Rec> = fc.oneof(
  fc
    .uint8Array({ minLength: 1, maxLength: MAX })
    .map((payload) => ({ type: RecordType.DATA, payload })),
  fc.constant({ type: RecordType.PING, payload: new Uint8Array(0) }),
  fc
    .record({ code: fc.string({ maxLength: 40 }), reason: fc.string({ maxLength: 100 }) })
    .map((b) => ({ type: RecordType.BYE, payload: encodeBye(b) })),
);

/** Splits bytes at the given cut points. */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  return out;
}

describe('lan-codec', () => {
  it('decode(encode(records)) is the records, however the stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(record, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (records, cuts) => {
          const bytes = Buffer.concat(records.map((r) => encodeRecord(r.type, r.payload)));
          const decoder = new RecordDecoder(MAX);
          const got: Rec[] = [];
          for (const chunk of split(bytes, cuts)) {
            decoder.push(chunk, (type, payload) => got.push({ type, payload: payload.slice() }));
            expect(decoder.bufferedBytes).toBeLessThanOrEqual(MAX + RECORD_HEADER_BYTES);
          }
          expect(decoder.midRecord).toBe(false);
          expect(got.map((r) => ({ type: r.type, payload: [...r.payload] }))).toEqual(
            records.map((r) => ({ type: r.type, payload: [...r.payload] })),
          );
        },
      ),
    );
  });

  it('random and mutated bytes give records or a typed error, never more than one record buffered', () => {
    const valid = fc
      .array(record, { minLength: 1, maxLength: 5 })
      .map((rs) => Buffer.concat(rs.map((r) => encodeRecord(r.type, r.payload))));
    const mutated = fc
      .tuple(
        valid,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      )
      .map(([b, flips]) => {
        const c = Buffer.from(b);
        for (const [i, v] of flips) c[i % c.length] = v;
        return new Uint8Array(c);
      });
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 4_096 }), mutated),
        fc.array(fc.nat(), { maxLength: 10 }),
        (bytes, cuts) => {
          const decoder = new RecordDecoder(MAX);
          try {
            for (const chunk of split(bytes, cuts)) {
              decoder.push(chunk, (type, payload) => {
                expect([
                  RecordType.HELLO,
                  RecordType.DATA,
                  RecordType.PING,
                  RecordType.BYE,
                ]).toContain(type);
                expect(payload.length).toBeLessThanOrEqual(MAX);
              });
              expect(decoder.bufferedBytes).toBeLessThanOrEqual(MAX + RECORD_HEADER_BYTES);
            }
          } catch (error) {
            expect(hasCode(error, 'LAN_FRAME_MALFORMED', 'LAN_FRAME_TOO_LARGE')).toBe(true);
          }
        },
      ),
    );
  });

  it('refuses an oversized length prefix from the header alone', () => {
    const decoder = new RecordDecoder(65_536);
    const header = Buffer.alloc(RECORD_HEADER_BYTES);
    header[0] = RecordType.DATA;
    header.writeUInt32BE(65_537, 1);
    expect(() => decoder.push(header, () => undefined)).toThrow(
      expect.objectContaining({ code: 'LAN_FRAME_TOO_LARGE' }) as Error,
    );
    expect(decoder.bufferedBytes).toBe(0);
    // A PING with a body and a BYE over its cap are refused the same way.
    for (const [type, n] of [
      [RecordType.PING, 1],
      [RecordType.BYE, MAX_BYE_BYTES + 1],
      [RecordType.HELLO, 26],
    ] as const) {
      const h = Buffer.alloc(RECORD_HEADER_BYTES);
      h[0] = type;
      h.writeUInt32BE(n, 1);
      expect(() => new RecordDecoder().push(h, () => undefined)).toThrow(
        expect.objectContaining({ code: 'LAN_FRAME_TOO_LARGE' }) as Error,
      );
    }
  });

  it('encodes HELLO and BYE as symmetric pairs', () => {
    const hello = {
      version: LAN_PROTOCOL_VERSION,
      maxFrameBytes: 65_536,
      instanceId: '0f'.repeat(16),
    };
    expect(decodeHello(encodeHello(hello))).toEqual(hello);
    expect(() => decodeHello(Buffer.alloc(25))).toThrow(
      expect.objectContaining({ code: 'LAN_FRAME_MALFORMED' }) as Error,
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), fc.string({ maxLength: 200 }), (code, reason) => {
        expect(decodeBye(encodeBye({ code, reason }))).toEqual({ code, reason });
      }),
    );
    const long = encodeBye({ code: 'LAN_X', reason: 'r'.repeat(10_000) });
    expect(long.length).toBeLessThanOrEqual(MAX_BYE_BYTES);
  });
});
