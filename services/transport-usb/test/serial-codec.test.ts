import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  cobsDecode,
  cobsEncode,
  decodeSerialFrame,
  encodedFrameBytes,
  encodeSerialFrame,
  encodeSerialFrameInto,
  frameOverheadBytes,
  maxEncodedBytes,
  SerialFrameDecoder,
  SerialFrameType,
  type SerialFrame,
} from '../src/index.js';

const MAX = 512;

function collect(maxPayloadBytes = MAX): {
  decoder: SerialFrameDecoder;
  frames: SerialFrame[];
  drops: string[];
} {
  const frames: SerialFrame[] = [];
  const drops: string[] = [];
  const decoder = new SerialFrameDecoder({
    maxPayloadBytes,
    // The payload is the decoder's, valid during the call only: keep a copy.
    onFrame: (type, p) => frames.push({ type, payload: p.slice() }),
    onDrop: (e) => drops.push(e.code),
  });
  return { decoder, frames, drops };
}

/** Feeds `bytes` in chunks cut at the given points. */
function feed(decoder: SerialFrameDecoder, bytes: Uint8Array, cuts: readonly number[]): void {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let at = 0;
  for (const p of [...points, bytes.length]) {
    decoder.push(bytes.subarray(at, p));
    at = p;
  }
}

const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const payload = fc.uint8Array({ maxLength: MAX });

/** Payloads with runs of zeros and of non-zero bytes around the 254-byte block edge. */
const runs = fc
  .array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 300 })), { maxLength: 6 })
  .map((rs) => concat(rs.map(([zero, n]) => new Uint8Array(n).fill(zero ? 0 : 0x41))));

/** COBS as the textbook writes it, one byte at a time: the reference for the fast encoder. */
function textbookCobs(body: Uint8Array): Uint8Array {
  const out: number[] = [0];
  let codeAt = 0;
  let code = 1;
  for (const byte of body) {
    if (byte === 0) {
      out[codeAt] = code;
      codeAt = out.push(0) - 1;
      code = 1;
    } else {
      out.push(byte);
      if (++code === 0xff) {
        out[codeAt] = code;
        codeAt = out.push(0) - 1;
        code = 1;
      }
    }
  }
  out[codeAt] = code;
  return Uint8Array.from(out);
}

describe('COBS', () => {
  it('round-trips any bytes and never emits a zero', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_000 }), (body) => {
        const enc = cobsEncode(body);
        expect(enc).toEqual(textbookCobs(body));
        expect(enc.includes(0)).toBe(false);
        expect(enc.length).toBeLessThanOrEqual(body.length + 1 + Math.floor(body.length / 254));
        expect(cobsDecode(enc)).toEqual(body);
      }),
    );
  });

  it('encodes runs of 254 non-zero bytes at the edge of a code block', () => {
    for (const n of [253, 254, 255, 508, 509]) {
      const body = new Uint8Array(n).fill(7);
      expect(cobsDecode(cobsEncode(body))).toEqual(body);
    }
  });
});

describe('serial frames', () => {
  it('decode(encode(x)) is x for data and keepalive frames', () => {
    fc.assert(
      fc.property(payload, fc.array(fc.nat()), (p, cuts) => {
        const { decoder, frames, drops } = collect();
        const bytes = concat([
          encodeSerialFrame(SerialFrameType.DATA, p),
          encodeSerialFrame(SerialFrameType.KEEPALIVE, new Uint8Array(0)),
        ]);
        feed(decoder, bytes, cuts);
        expect(drops).toEqual([]);
        expect(frames).toEqual([
          { type: SerialFrameType.DATA, payload: p },
          { type: SerialFrameType.KEEPALIVE, payload: new Uint8Array(0) },
        ]);
      }),
    );
  });

  it('writes exactly 0 | COBS(type | payload | crc32le) | 0, in place at any offset', () => {
    // The reference is the wire format of the module comment, built the obvious way.
    const reference = (type: number, p: Uint8Array): Uint8Array => {
      const body = new Uint8Array(p.length + 5);
      body[0] = type;
      body.set(p, 1);
      new DataView(body.buffer).setUint32(
        p.length + 1,
        crc32(body.subarray(0, p.length + 1)),
        true,
      );
      return concat([Uint8Array.of(0), textbookCobs(body), Uint8Array.of(0)]);
    };
    fc.assert(
      fc.property(
        fc.oneof(payload, runs),
        fc.constantFrom(SerialFrameType.DATA, SerialFrameType.KEEPALIVE),
        fc.nat({ max: 100 }),
        (p, type, offset) => {
          const out = new Uint8Array(offset + encodedFrameBytes(p.length)).fill(0xee);
          const end = encodeSerialFrameInto(type, p, out, offset);
          expect(out.subarray(offset, end)).toEqual(reference(type, p));
          expect(out.subarray(0, offset).every((b) => b === 0xee)).toBe(true); // nothing before
          expect(encodeSerialFrame(type, p)).toEqual(reference(type, p));
        },
      ),
    );
    expect(() => encodeSerialFrameInto(1, new Uint8Array(10), new Uint8Array(17), 0)).toThrow(
      RangeError,
    );
  });

  it('encodes a batch into one buffer exactly as the frames encoded alone, one after another', () => {
    // Payloads as Buffers and plain Uint8Arrays (the encoder scans the latter through a Buffer
    // view from 256 bytes on), short and long, with runs of zeros and of non-zero bytes.
    const item = fc.tuple(
      fc.constantFrom(SerialFrameType.DATA, SerialFrameType.KEEPALIVE),
      fc.oneof(payload, runs, fc.uint8Array({ minLength: 250, maxLength: 1_200 })),
      fc.boolean(),
    );
    fc.assert(
      fc.property(fc.array(item, { maxLength: 12 }), fc.nat({ max: 40 }), (items, offset) => {
        const frames = items.map(([type, p, asBuffer]) => ({
          type,
          payload: asBuffer ? Buffer.from(p) : p,
        }));
        const room = frames.reduce((n, f) => n + encodedFrameBytes(f.payload.length), offset);
        const batch = Buffer.alloc(room, 0xee);
        let at = offset;
        for (const f of frames) at = encodeSerialFrameInto(f.type, f.payload, batch, at);
        const alone = concat(frames.map((f) => encodeSerialFrame(f.type, f.payload)));
        expect(new Uint8Array(batch.subarray(offset, at))).toEqual(alone);
        expect(batch.subarray(at).every((b) => b === 0xee)).toBe(true); // nothing past the end
        // And the batch decodes back to the frames, in order.
        const { decoder, frames: got, drops } = collect(1_800);
        decoder.push(batch.subarray(offset, at));
        expect(drops).toEqual([]);
        expect(got).toEqual(
          frames.map((f) => ({ type: f.type, payload: new Uint8Array(f.payload) })),
        );
      }),
    );
  });

  it('decodes a stream of frames the same however it is cut into reads', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(payload, runs), { minLength: 1, maxLength: 25 }),
        fc.array(fc.nat(), { maxLength: 300 }),
        (payloads, cuts) => {
          const bytes = concat(payloads.map((p) => encodeSerialFrame(SerialFrameType.DATA, p)));
          const whole = collect(2_000);
          whole.decoder.push(bytes);
          const cut = collect(2_000);
          feed(cut.decoder, bytes, cuts);
          const byByte = collect(2_000);
          for (let i = 0; i < bytes.length; i++) byByte.decoder.push(bytes.subarray(i, i + 1));
          for (const r of [whole, cut, byByte]) {
            expect(r.drops).toEqual([]);
            expect(r.frames.map((f) => f.payload)).toEqual(payloads);
            expect(r.decoder.pendingBytes).toBe(0);
          }
        },
      ),
    );
  });

  it('hands every frame a view of one reused buffer, valid during the call', () => {
    const views: Uint8Array[] = [];
    const copies: Uint8Array[] = [];
    const decoder = new SerialFrameDecoder({
      maxPayloadBytes: MAX,
      onFrame: (_type, p) => {
        views.push(p);
        copies.push(p.slice());
      },
    });
    const payloads = [Uint8Array.of(1, 2, 3), new Uint8Array(300).fill(9), Uint8Array.of(0, 0)];
    // Split mid-frame and whole in one read: both paths decode into the same buffer.
    const bytes = concat(payloads.map((p) => encodeSerialFrame(SerialFrameType.DATA, p)));
    decoder.push(bytes.subarray(0, 7));
    decoder.push(bytes.subarray(7));
    expect(copies).toEqual(payloads);
    expect(new Set(views.map((v) => v.buffer)).size).toBe(1);
    expect(views.every((v) => v.buffer !== bytes.buffer)).toBe(true);
  });

  it('refuses a zero inside a frame handed to decodeSerialFrame or cobsDecode', () => {
    const body = encodeSerialFrame(SerialFrameType.DATA, Uint8Array.of(5, 6, 7)).slice(1, -1);
    body[2] = 0;
    expect(() => decodeSerialFrame(body, MAX)).toThrow(
      expect.objectContaining({ code: 'USB_FRAME_CORRUPT' }) as Error,
    );
    expect(() => cobsDecode(body)).toThrow(
      expect.objectContaining({ code: 'USB_FRAME_CORRUPT' }) as Error,
    );
  });

  it('costs exactly frameOverheadBytes on the line for non-zero payloads, never more', () => {
    fc.assert(
      fc.property(payload, (p) => {
        const line = encodeSerialFrame(SerialFrameType.DATA, p).length;
        expect(line).toBeLessThanOrEqual(p.length + frameOverheadBytes(p.length));
        const dense = p.map((b) => b | 1);
        expect(encodeSerialFrame(SerialFrameType.DATA, dense).length).toBe(
          dense.length + frameOverheadBytes(dense.length),
        );
      }),
    );
    expect(frameOverheadBytes(0)).toBe(8);
    expect(frameOverheadBytes(248)).toBe(8);
    expect(frameOverheadBytes(249)).toBe(9);
  });

  it('rejects a flipped bit with USB_FRAME_CORRUPT and an over-long frame with USB_FRAME_TOO_LARGE', () => {
    const line = encodeSerialFrame(SerialFrameType.DATA, Uint8Array.from([1, 2, 3, 4]));
    const body = line.slice(1, -1);
    body[3] = (body[3] as number) ^ 0x10;
    expect(() => decodeSerialFrame(body, MAX)).toThrow(
      expect.objectContaining({ code: 'USB_FRAME_CORRUPT' }) as Error,
    );
    const big = encodeSerialFrame(SerialFrameType.DATA, new Uint8Array(100).fill(9)).slice(1, -1);
    expect(() => decodeSerialFrame(big, 50)).toThrow(
      expect.objectContaining({ code: 'USB_FRAME_TOO_LARGE' }) as Error,
    );
  });

  it('never throws on random bytes and holds at most one max frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4_000 }), fc.array(fc.nat()), (bytes, cuts) => {
        const { decoder, frames, drops } = collect(64);
        let highest = 0;
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        let at = 0;
        for (const p of [...points, bytes.length]) {
          decoder.push(bytes.subarray(at, p));
          highest = Math.max(highest, decoder.pendingBytes);
          at = p;
        }
        expect(highest).toBeLessThanOrEqual(maxEncodedBytes(64));
        for (const d of drops) expect(['USB_FRAME_CORRUPT', 'USB_FRAME_TOO_LARGE']).toContain(d);
        // A random frame passes a CRC-32 with odds of 2^-32: none does in a run.
        expect(frames).toEqual([]);
      }),
    );
  });

  it('delivers every intact frame between corrupted ones and counts each corrupted one once', () => {
    const damage = fc.oneof(
      fc.constant({ kind: 'intact' as const }),
      fc.record({
        kind: fc.constant('flip' as const),
        at: fc.nat(),
        bit: fc.integer({ min: 0, max: 7 }),
      }),
      fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
      fc.record({
        kind: fc.constant('garbage' as const),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((g) => g.map((b) => b || 1)),
      }),
      fc.record({
        kind: fc.constant('oversize' as const),
        bytes: fc.integer({ min: 700, max: 3_000 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(payload, damage), { maxLength: 30 }),
        fc.array(fc.nat()),
        (items, cuts) => {
          const { decoder, frames, drops } = collect();
          const parts: Uint8Array[] = [];
          const expected: Uint8Array[] = [];
          let corrupted = 0;
          for (const [p, d] of items) {
            const line = encodeSerialFrame(SerialFrameType.DATA, p);
            if (d.kind === 'intact') {
              parts.push(line);
              expected.push(p);
            } else if (d.kind === 'flip') {
              // Flip one bit of the COBS body; a flip that makes a zero is a different fault
              // (it splits the frame in two), so flip the next bit instead.
              const i = 1 + (d.at % (line.length - 2));
              let flipped = (line[i] as number) ^ (1 << d.bit);
              if (flipped === 0) flipped = (line[i] as number) ^ (1 << ((d.bit + 1) % 8));
              const bad = line.slice();
              bad[i] = flipped;
              parts.push(bad);
              corrupted++;
            } else if (d.kind === 'truncate') {
              // Torn: the head of a frame without its closing delimiter, then the next frame.
              parts.push(line.subarray(0, 2 + (d.keep % (line.length - 3))));
              corrupted++;
            } else if (d.kind === 'garbage') {
              parts.push(line);
              expected.push(p);
              parts.push(d.bytes, Uint8Array.of(0));
              corrupted++;
            } else {
              parts.push(Uint8Array.of(0), new Uint8Array(d.bytes).fill(0x55), Uint8Array.of(0));
              corrupted++;
            }
          }
          parts.push(Uint8Array.of(0)); // closes a trailing torn frame
          feed(decoder, concat(parts), cuts);
          expect(frames.map((f) => f.payload)).toEqual(expected);
          expect(drops.length).toBe(corrupted);
          expect(decoder.counters.corrupt + decoder.counters.oversized).toBe(corrupted);
          expect(decoder.counters.frames).toBe(expected.length);
        },
      ),
    );
  });
});
