/**
 * The multiplexer's frame format: one frame per link frame, encoded and decoded as pairs.
 *
 * Wire format (all integers big-endian; "varint" is unsigned LEB128, at most 4 bytes here):
 *
 * ```
 * byte 0:  V V K A C S S S
 *          VV   bits 7-6  protocol version (1). Frames of another version are dropped.
 *          K    bit 5     0 = DATA, 1 = CONTROL
 *          A    bit 4     an ACK block follows the fixed header (acks ride on any frame)
 *          C    bit 3     the frame ends with a CRC-32 (IEEE) of every byte before it; set on
 *                         links without their own checksum
 *          SSS  bits 2-0  DATA: the stream 0-7 (0 is the most urgent); CONTROL: the control type
 *
 * DATA     [byte 0][offset: 3 bytes][ACK block]?[payload: 1+ bytes][CRC-32: 4 bytes]?
 *          offset = the low 24 bits of the stream offset of the payload's first byte. A stream is
 *          a byte sequence of messages, each a varint length then its bytes, so the stream
 *          offset is at once the message sequence and the fragment offset: any byte range can be
 *          re-sent, split differently, on a link with another frame size. The receiver widens
 *          the 24 bits to the value nearest its next expected offset, which is exact because a
 *          receive window never exceeds 2^22 bytes (a quarter of the space).
 * CONTROL  [byte 0][ACK block]?[body][CRC-32]?
 *          type 0 ACK        no body: an ACK block alone
 *          type 1 HELLO      body: [chunk byte: index << 4 | last index][protobuf chunk]
 *          type 2 AUTH       as HELLO (a MuxHello / MuxAuth / MuxRefuse split in ≤ 16 chunks,
 *          type 3 REFUSE     so the handshake fits links of 20-byte frames)
 *          type 4 PING       body: 4-byte token; asks for an immediate PONG and ACK
 *          type 5 PONG       body: the token echoed (round-trip time per link)
 *
 * ACK block: one or more entries, each
 *          [E M S S S N N N]  E = another entry follows, M = spare (0), SSS = stream,
 *                             NNN = number of selective ranges (0-7)
 *          [cumulative: 3 bytes]  low 24 bits of the next stream offset expected in order
 *          [window: varint]       bytes the sender may send beyond `cumulative` (flow control)
 *          NNN × [gap: varint][length: varint]  received ranges beyond `cumulative`: each starts
 *                             `gap` (≥ 1) bytes after the previous one's end (the first after
 *                             `cumulative`) and is `length` (≥ 1) bytes long.
 * ```
 *
 * Overhead: a DATA frame costs 4 bytes (plus 4 for the CRC on links without a checksum). Acks
 * are cumulative and selective, sent as an 8-byte ACK block on a data frame going the other way
 * or, when none is, as a 9-byte ACK frame once per several received frames (see `session.ts`).
 */
import { crc32 } from 'node:zlib';
import { muxError } from './errors.js';

/** The protocol version in every frame's first two bits. */
export const PROTOCOL_VERSION = 1;
/** Bytes of a DATA frame's fixed header. */
export const DATA_HEADER_BYTES = 4;
/** Bytes of a CONTROL frame's fixed header. */
export const CONTROL_HEADER_BYTES = 1;
/** Bytes of the CRC-32 trailer. */
export const CRC_BYTES = 4;
/** Smallest max frame size a link may declare. */
export const MIN_FRAME_BYTES = 20;
/** Largest frame the decoder accepts (64 KiB plus room for the header and CRC). */
export const MAX_FRAME_BYTES = 65_536 + 64;
/** Number of streams per peer. */
export const STREAM_COUNT = 8;
/** Most selective ranges in one ACK entry. */
export const MAX_SACK_RANGES = 7;
/** Stream offsets travel as their low 24 bits. */
export const OFFSET_MODULUS = 2 ** 24;
/** Largest receive window, so 24-bit offsets stay unambiguous. */
export const MAX_WINDOW_BYTES = 2 ** 22;
/** Most chunks of one handshake message. */
export const MAX_CHUNKS = 16;

/** Control frame types. */
export const ControlType = {
  ACK: 0,
  HELLO: 1,
  AUTH: 2,
  REFUSE: 3,
  PING: 4,
  PONG: 5,
} as const;

/** One control frame type. */
export type ControlType = (typeof ControlType)[keyof typeof ControlType];

/** One stream's acknowledgement. Offsets are full (widened) on encode, 24-bit on decode. */
export interface AckEntry {
  readonly stream: number;
  /** Next offset expected in order (on decode: its low 24 bits, widen with {@link widenOffset}). */
  readonly cumulative: number;
  /** Bytes the receiver accepts beyond `cumulative`. */
  readonly window: number;
  /** Received ranges beyond `cumulative`, as [start, end) relative to `cumulative`, ascending. */
  readonly ranges: readonly (readonly [number, number])[];
}

/** A decoded DATA frame. */
export interface DataFrame {
  readonly kind: 'data';
  readonly stream: number;
  /** Low 24 bits of the stream offset (widen with {@link widenOffset}). */
  readonly offset: number;
  readonly acks: readonly AckEntry[];
  readonly payload: Uint8Array;
}

/** A decoded CONTROL frame. */
export interface ControlFrame {
  readonly kind: 'control';
  readonly type: ControlType;
  readonly acks: readonly AckEntry[];
  readonly body: Uint8Array;
}

/** Any decoded frame. */
export type Frame = DataFrame | ControlFrame;

/** Options of {@link decodeFrame}. */
export interface DecodeOptions {
  /** Reject frames without a CRC (links without their own checksum). */
  readonly requireCrc?: boolean;
  /** Largest frame accepted (default {@link MAX_FRAME_BYTES}). */
  readonly maxFrameBytes?: number;
}

const K_CONTROL = 0x20;
const A_ACK = 0x10;
const C_CRC = 0x08;

/** Bytes of a varint. */
export function varintBytes(value: number): number {
  return value < 0x80
    ? 1
    : value < 0x4000
      ? 2
      : value < 0x20_0000
        ? 3
        : value < 0x1000_0000
          ? 4
          : 5;
}

function writeVarint(buf: Uint8Array, pos: number, value: number): number {
  let v = value;
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** Encodes a varint on its own (the length prefix of messages inside a stream). */
export function encodeVarint(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(`varint out of range: ${value}`);
  const out = new Uint8Array(varintBytes(value));
  writeVarint(out, 0, value);
  return out;
}

/**
 * Decodes a varint at `pos` of at most `maxBytes` bytes.
 * @returns the value and the next position, or undefined when truncated or too long.
 */
export function decodeVarint(
  buf: Uint8Array,
  pos: number,
  maxBytes = 4,
): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < maxBytes; i++) {
    const b = buf[pos + i];
    if (b === undefined) return undefined;
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return { value, next: pos + i + 1 };
    scale *= 128;
  }
  return undefined;
}

/** Where the varint {@link readVarint} read last ended (a module variable: no result object). */
let varintEnd = 0;

/**
 * Reads a varint of at most 4 bytes at `pos`, before `end`, for the frame decoder.
 * @returns its value and sets {@link varintEnd}, or -1 when truncated or too long.
 */
function readVarint(buf: Uint8Array, pos: number, end: number): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 4 && pos + i < end; i++) {
    const b = buf[pos + i] as number;
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) {
      varintEnd = pos + i + 1;
      return value;
    }
    scale *= 128;
  }
  return -1;
}

/**
 * The full offset whose low 24 bits are `low24`, nearest to `reference`.
 * @remarks Exact while the true offset lies within 2^23 of `reference` (see the module comment).
 */
export function widenOffset(low24: number, reference: number): number {
  const base = reference - (reference % OFFSET_MODULUS);
  let candidate = base + low24;
  if (candidate - reference > OFFSET_MODULUS / 2) candidate -= OFFSET_MODULUS;
  else if (reference - candidate > OFFSET_MODULUS / 2) candidate += OFFSET_MODULUS;
  return candidate;
}

/** Bytes of an ACK block with these entries. */
export function ackBlockBytes(acks: readonly AckEntry[]): number {
  let n = 0;
  for (const a of acks) {
    n += 4 + varintBytes(a.window);
    let prev = 0;
    for (const [s, e] of a.ranges) {
      n += varintBytes(s - prev) + varintBytes(e - s);
      prev = e;
    }
  }
  return n;
}

function writeAcks(buf: Uint8Array, pos: number, acks: readonly AckEntry[]): number {
  for (let i = 0; i < acks.length; i++) {
    const a = acks[i] as AckEntry;
    if (a.ranges.length > MAX_SACK_RANGES) throw new RangeError('too many SACK ranges');
    buf[pos++] = (i < acks.length - 1 ? 0x80 : 0) | ((a.stream & 7) << 3) | a.ranges.length;
    pos = write24(buf, pos, a.cumulative % OFFSET_MODULUS);
    pos = writeVarint(buf, pos, a.window);
    let prev = 0;
    for (const [s, e] of a.ranges) {
      if (!(s > prev && e > s))
        throw new RangeError(`SACK ranges must ascend with gaps: ${JSON.stringify(a)}`);
      pos = writeVarint(buf, pos, s - prev);
      pos = writeVarint(buf, pos, e - s);
      prev = e;
    }
  }
  return pos;
}

function write24(buf: Uint8Array, pos: number, v: number): number {
  buf[pos] = (v >>> 16) & 0xff;
  buf[pos + 1] = (v >>> 8) & 0xff;
  buf[pos + 2] = v & 0xff;
  return pos + 3;
}

function read24(buf: Uint8Array, pos: number): number {
  return ((buf[pos] ?? 0) << 16) | ((buf[pos + 1] ?? 0) << 8) | (buf[pos + 2] ?? 0);
}

function finish(buf: Uint8Array, pos: number, crc: boolean): Uint8Array {
  if (crc) {
    const c = crc32(pos === buf.length ? buf : buf.subarray(0, pos));
    buf[pos] = c >>> 24;
    buf[pos + 1] = (c >>> 16) & 0xff;
    buf[pos + 2] = (c >>> 8) & 0xff;
    buf[pos + 3] = c & 0xff;
    pos += CRC_BYTES;
  }
  return pos === buf.length ? buf : buf.subarray(0, pos);
}

/** Bytes of the slab small frames are carved from. */
const SLAB_BYTES = 64 * 1024;
/** Frames from this size on get an allocation of their own. */
const OWN_ALLOCATION_BYTES = 8 * 1024;
let slab = new ArrayBuffer(0);
let slabUsed = 0;

/**
 * A zero-filled buffer for one frame.
 *
 * @remarks
 * `new Uint8Array(n)` of more than a few dozen bytes allocates an ArrayBuffer with its own
 * off-heap store, which costs more than encoding a small frame. Small frames are therefore
 * views carved one after another from a shared 64 KiB slab; a region is never handed out twice
 * (a full slab is replaced, not reused), so each frame's bytes stay its own, as the link
 * contract's frame ownership needs. A slab lives as long as any frame in it.
 */
function allocFrame(size: number): Uint8Array {
  if (size >= OWN_ALLOCATION_BYTES) return new Uint8Array(size);
  if (slabUsed + size > slab.byteLength) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, size);
  slabUsed += size;
  return out;
}

/** The acks of a frame that carries none (shared: decoded frames are read-only). */
const NO_ACKS: readonly AckEntry[] = Object.freeze([]);

/** What a DATA frame carries. */
export interface DataFrameInput {
  readonly stream: number;
  /** The full stream offset of the payload's first byte (only its low 24 bits travel). */
  readonly offset: number;
  readonly acks?: readonly AckEntry[];
  readonly payload: Uint8Array;
  readonly crc?: boolean;
}

/** Encodes a DATA frame. */
export function encodeDataFrame(input: DataFrameInput): Uint8Array {
  const acks = input.acks ?? NO_ACKS;
  const crc = input.crc === true;
  if (input.stream < 0 || input.stream >= STREAM_COUNT) throw new RangeError('stream out of range');
  if (input.payload.length === 0) throw new RangeError('a DATA frame carries at least one byte');
  const size =
    DATA_HEADER_BYTES + ackBlockBytes(acks) + input.payload.length + (crc ? CRC_BYTES : 0);
  const buf = allocFrame(size);
  buf[0] =
    (PROTOCOL_VERSION << 6) | (acks.length > 0 ? A_ACK : 0) | (crc ? C_CRC : 0) | input.stream;
  let pos = write24(buf, 1, input.offset % OFFSET_MODULUS);
  if (acks.length > 0) pos = writeAcks(buf, pos, acks);
  buf.set(input.payload, pos);
  return finish(buf, pos + input.payload.length, crc);
}

/** What a CONTROL frame carries. */
export interface ControlFrameInput {
  readonly type: ControlType;
  readonly acks?: readonly AckEntry[];
  readonly body?: Uint8Array;
  readonly crc?: boolean;
}

/** Encodes a CONTROL frame. */
export function encodeControlFrame(input: ControlFrameInput): Uint8Array {
  const acks = input.acks ?? NO_ACKS;
  const body = input.body ?? new Uint8Array(0);
  const crc = input.crc === true;
  const size = CONTROL_HEADER_BYTES + ackBlockBytes(acks) + body.length + (crc ? CRC_BYTES : 0);
  const buf = allocFrame(size);
  buf[0] =
    (PROTOCOL_VERSION << 6) |
    K_CONTROL |
    (acks.length > 0 ? A_ACK : 0) |
    (crc ? C_CRC : 0) |
    input.type;
  let pos = writeAcks(buf, 1, acks);
  buf.set(body, pos);
  pos += body.length;
  return finish(buf, pos, crc);
}

function malformed(reason: string): never {
  throw muxError('MUX_FRAME_MALFORMED', `malformed frame: ${reason}`, { reason });
}

/**
 * Decodes one frame.
 * @throws MuxError MUX_FRAME_TOO_LARGE or MUX_FRAME_MALFORMED; never anything else, for any input.
 */
export function decodeFrame(frame: Uint8Array, options: DecodeOptions = {}): Frame {
  const max = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  if (frame.length > max) {
    throw muxError('MUX_FRAME_TOO_LARGE', `frame of ${frame.length} bytes exceeds ${max}`, {
      bytes: String(frame.length),
      max: String(max),
    });
  }
  const b0 = frame[0];
  if (b0 === undefined) malformed('empty');
  if (b0 >> 6 !== PROTOCOL_VERSION) malformed('version');
  let end = frame.length;
  if ((b0 & C_CRC) !== 0) {
    end -= CRC_BYTES;
    if (end < 1) malformed('truncated');
    const want = (((frame[end] as number) << 24) >>> 0) + read24(frame, end + 1);
    if (crc32(frame.subarray(0, end)) !== want) malformed('crc');
  } else if (options.requireCrc === true) {
    malformed('missing crc');
  }
  const control = (b0 & K_CONTROL) !== 0;
  let pos = control ? CONTROL_HEADER_BYTES : DATA_HEADER_BYTES;
  if (pos > end) malformed('truncated');
  let acks = NO_ACKS;
  if ((b0 & A_ACK) !== 0) {
    const entries: AckEntry[] = [];
    acks = entries;
    for (;;) {
      const e = frame[pos];
      if (e === undefined || pos >= end) malformed('truncated ack');
      if ((e & 0x40) !== 0) malformed('ack spare bit');
      if (entries.length >= STREAM_COUNT) malformed('too many ack entries');
      if (pos + 4 > end) malformed('truncated ack');
      const cumulative = read24(frame, pos + 1);
      const window = readVarint(frame, pos + 4, end);
      if (window < 0 || window > MAX_WINDOW_BYTES) malformed('ack window');
      pos = varintEnd;
      const count = e & 7;
      const ranges: [number, number][] = [];
      let prev = 0;
      for (let i = 0; i < count; i++) {
        const gap = readVarint(frame, pos, end);
        if (gap < 1) malformed('sack gap');
        const len = readVarint(frame, varintEnd, end);
        if (len < 1) malformed('sack length');
        pos = varintEnd;
        const start = prev + gap;
        const stop = start + len;
        if (stop > MAX_WINDOW_BYTES) malformed('sack beyond window');
        ranges.push([start, stop]);
        prev = stop;
      }
      entries.push({ stream: (e >> 3) & 7, cumulative, window, ranges });
      if ((e & 0x80) === 0) break;
    }
  }
  if (control) {
    const type = b0 & 7;
    if (type > ControlType.PONG) malformed('control type');
    const body = frame.subarray(pos, end);
    if (type === ControlType.ACK && (body.length > 0 || acks.length === 0)) malformed('ack frame');
    if ((type === ControlType.PING || type === ControlType.PONG) && body.length !== 4)
      malformed('ping body');
    if (
      (type === ControlType.HELLO || type === ControlType.AUTH || type === ControlType.REFUSE) &&
      body.length < 2
    )
      malformed('handshake body');
    return { kind: 'control', type: type as ControlType, acks, body };
  }
  if (pos >= end) malformed('empty payload');
  return {
    kind: 'data',
    stream: b0 & 7,
    offset: read24(frame, 1),
    acks,
    payload: frame.subarray(pos, end),
  };
}

/** Splits a handshake message into control-frame bodies of at most `maxBodyBytes` each. */
export function encodeChunks(message: Uint8Array, maxBodyBytes: number): Uint8Array[] {
  const per = maxBodyBytes - 1;
  if (per < 1) throw new RangeError('no room for a chunk');
  const count = Math.max(1, Math.ceil(message.length / per));
  if (count > MAX_CHUNKS) {
    throw muxError('MUX_MESSAGE_TOO_LARGE', `handshake message needs ${count} chunks`, {
      bytes: String(message.length),
    });
  }
  return Array.from({ length: count }, (_, i) => {
    const chunk = message.subarray(i * per, (i + 1) * per);
    const body = new Uint8Array(chunk.length + 1);
    body[0] = (i << 4) | (count - 1);
    body.set(chunk, 1);
    return body;
  });
}

/** Collects the chunks of one handshake message (any order, duplicates ignored). */
export class ChunkAssembler {
  #count = 0;
  #chunks: (Uint8Array | undefined)[] = [];

  /**
   * Adds a chunk body; returns the whole message once every chunk arrived.
   * @throws MuxError MUX_FRAME_MALFORMED when chunk counts disagree.
   */
  add(body: Uint8Array): Uint8Array | undefined {
    const head = body[0] ?? 0;
    const index = head >> 4;
    const count = (head & 15) + 1;
    if (index >= count) malformed('chunk index');
    if (this.#count === 0) {
      this.#count = count;
      this.#chunks = Array.from({ length: count }, () => undefined);
    } else if (count !== this.#count) {
      malformed('chunk count');
    }
    // A copy (`body` is a view of a frame valid only during its event; `Buffer#slice` would
    // not copy).
    this.#chunks[index] ??= new Uint8Array(body.subarray(1));
    if (this.#chunks.some((c) => c === undefined)) return undefined;
    const parts = this.#chunks as Uint8Array[];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let pos = 0;
    for (const p of parts) {
      out.set(p, pos);
      pos += p.length;
    }
    this.#count = 0;
    this.#chunks = [];
    return out;
  }
}
