/** The hand-written `DocRecord` codec against protobufjs, which defines the format. */
import type { PeerId, VersionVector } from '@lattice/crdt';
import { v1 } from '@lattice/proto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord, encodeRecordTail } from '../src/record-codec.js';

/** What protobufjs makes of the bytes, in the decoder's shape. */
function reference(b: Uint8Array): {
  seq: number;
  state: number[];
  vv: [string, number][];
  deletedAtMs: number;
  tombstone: boolean;
} {
  const m = v1.DocRecord.decode(b);
  return {
    seq: Number(m.seq),
    state: [...m.state],
    vv: [...new Map(m.versionVector.map((e) => [e.peer ?? '', Number(e.counter ?? 0)]))],
    deletedAtMs: Number(m.deletedAtMs),
    tombstone: m.tombstone,
  };
}

function decoded(b: Uint8Array): ReturnType<typeof reference> {
  const r = decodeRecord(b);
  return {
    seq: r.seq,
    state: [...r.state],
    vv: [...r.versionVector],
    deletedAtMs: r.deletedAtMs,
    tombstone: r.tombstone,
  };
}

const counter = fc.oneof(
  fc.nat({ max: 300 }),
  fc.constantFrom(0, 127, 128, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER),
);
const peer = fc.oneof(fc.constantFrom('', 'p1', 'é-peer', '\u{1F600}'), fc.string());
const versionVector = fc
  .array(fc.tuple(peer, counter), { maxLength: 4 })
  // Any string: a record on disk may hold peers `asPeerId` would refuse (the empty one).
  .map((e) => new Map(e.map(([p, c]) => [p as PeerId, c])) as VersionVector);
const record = fc.record({
  seq: counter,
  state: fc.uint8Array({ maxLength: 300 }),
  vv: versionVector,
  deletedAt: counter,
  tombstone: fc.boolean(),
});

describe('DocRecord codec', () => {
  it('decodes what the store encodes exactly as protobufjs does', () => {
    fc.assert(
      fc.property(record, (r) => {
        const bytes = encodeRecord(
          r.seq,
          r.state,
          encodeRecordTail(r.vv, r.deletedAt, r.tombstone),
        );
        expect(decoded(bytes)).toEqual(reference(bytes));
        expect(decoded(Buffer.from(bytes))).toEqual(reference(bytes));
      }),
      { numRuns: 1_000 },
    );
  });

  it('decodes protobufjs encodings too (fields omitted, repeated, unknown, huge)', () => {
    fc.assert(
      fc.property(record, fc.constantFrom(0, 2 ** 53, 2 ** 60), fc.boolean(), (r, big, unknown) => {
        const m = v1.DocRecord.encode({
          seq: r.seq || big,
          state: r.state,
          versionVector: [...r.vv].map(([p, c]) => ({ peer: p, counter: c })),
          deletedAtMs: r.deletedAt,
          tombstone: r.tombstone,
        }).finish();
        // An unknown field (number 9, varint), which protobufjs skips, and a second seq, of
        // which it keeps the last.
        const bytes = unknown ? Uint8Array.of(...m, 0x48, 0x05, 0x08, 0x07) : m;
        expect(decoded(bytes)).toEqual(reference(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('answers malformed bytes as protobufjs does (the same record, or an error)', () => {
    const cases = [
      // A version entry whose length cuts its counter's varint short.
      Uint8Array.of(0x08, 0x01, 0x1a, 0x02, 0x10, 0x80, 0x01),
      Uint8Array.of(0x08, 0x01, 0x1a, 0x02, 0x10, 0x80, 0x08, 0x02),
      // A state longer than the bytes, a truncated varint, a varint of 10 bytes.
      Uint8Array.of(0x08, 0x01, 0x12, 0x05, 0x01),
      Uint8Array.of(0x08, 0x81),
      Uint8Array.of(0x08, ...new Array<number>(9).fill(0xff), 0x01),
      // A peer that is not UTF-8, an entry with an unknown field, wire type 1.
      Uint8Array.of(0x1a, 0x03, 0x0a, 0x01, 0xff),
      Uint8Array.of(0x1a, 0x02, 0x18, 0x01),
      Uint8Array.of(0x09, 1, 2, 3, 4, 5, 6, 7, 8),
    ];
    for (const bytes of cases) {
      let expected: ReturnType<typeof reference> | 'throws';
      try {
        expected = reference(bytes);
      } catch {
        expected = 'throws';
      }
      if (expected === 'throws') expect(() => decodeRecord(bytes), `${bytes.join(' ')}`).toThrow();
      else expect(decoded(bytes), `${bytes.join(' ')}`).toEqual(expected);
    }
  });

  it('keeps a view of the state and rejects what protobufjs rejects', () => {
    const state = Uint8Array.of(1, 2, 3);
    const bytes = encodeRecord(7, state, encodeRecordTail(new Map(), 0, false));
    const r = decodeRecord(bytes);
    expect(r.state.buffer).toBe(bytes.buffer);
    expect([...r.state]).toEqual([1, 2, 3]);
    const truncated = bytes.subarray(0, bytes.length - 1);
    expect(() => v1.DocRecord.decode(truncated)).toThrow();
    expect(() => decodeRecord(truncated)).toThrow();
  });
});
