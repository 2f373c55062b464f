/**
 * Self-synchronizing framing of link frames over a serial byte stream: COBS with a CRC-32.
 *
 * @remarks
 * Wire format (every frame on the line):
 *
 * ```text
 * 0x00 | COBS( type:u8 | payload | crc32:u32le ) | 0x00
 *   type    0x01 DATA (payload: one link frame), 0x02 KEEPALIVE (payload empty)
 *   crc32   IEEE CRC-32 (node:zlib `crc32`) of `type | payload`
 * ```
 *
 * COBS (Consistent Overhead Byte Stuffing) removes every 0x00 from the body, so 0x00 only ever
 * delimits frames. Each frame is written with a delimiter on both sides: two frames back to back
 * put an empty frame between their delimiters, which the decoder skips, and garbage that arrives
 * between two frames stays between two delimiters instead of being glued to the next frame.
 *
 * Why COBS rather than SLIP: SLIP escapes two byte values with two bytes each, so a frame of
 * 0xC0/0xDB bytes doubles in size and the worst case decides the max frame size at a given baud;
 * COBS costs exactly one byte per 254 bytes of body whatever the data. Both resynchronize at the
 * next delimiter.
 *
 * Overhead per frame: 2 delimiters + 1 type + 4 CRC + 1 + floor((payload + 5) / 254) COBS code
 * bytes, i.e. 8 bytes for a payload up to 248 bytes ({@link frameOverheadBytes}).
 *
 * The decoder keeps at most `maxEncodedBytes(maxPayloadBytes)` bytes of a frame in progress: a
 * longer run without a delimiter is dropped as one oversized frame and skipped up to the next
 * delimiter. Every dropped frame is counted by reason; nothing the line sends makes it throw.
 */
import { crc32 } from 'node:zlib';
import { usbError, type UsbError } from './errors.js';

/** Frame delimiter on the line. */
export const DELIMITER = 0x00;

/** Kinds of serial frames. */
export const SerialFrameType = {
  /** A link frame for the multiplexer. */
  DATA: 0x01,
  /** Proof of life on an otherwise idle line. */
  KEEPALIVE: 0x02,
} as const;

/** One kind of serial frame. */
export type SerialFrameType = (typeof SerialFrameType)[keyof typeof SerialFrameType];

/** A decoded serial frame. */
export interface SerialFrame {
  readonly type: SerialFrameType;
  readonly payload: Uint8Array;
}

const TYPE_BYTES = 1;
const CRC_BYTES = 4;
const BODY_OVERHEAD = TYPE_BYTES + CRC_BYTES;

/** Largest COBS encoding of `bodyBytes` bytes (one code byte, plus one per 254 bytes). */
function cobsMaxBytes(bodyBytes: number): number {
  return bodyBytes + 1 + Math.floor(bodyBytes / 254);
}

/** Largest encoding (without delimiters) of a frame with a payload of `maxPayloadBytes`. */
export function maxEncodedBytes(maxPayloadBytes: number): number {
  return cobsMaxBytes(maxPayloadBytes + BODY_OVERHEAD);
}

/** Bytes a payload of `payloadBytes` costs on the line beyond itself, delimiters included. */
export function frameOverheadBytes(payloadBytes: number): number {
  return maxEncodedBytes(payloadBytes) - payloadBytes + 2;
}

/** COBS-encodes `body` (no delimiter). */
export function cobsEncode(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(cobsMaxBytes(body.length));
  const state: CobsState = { at: 1, codeAt: 0, code: 1 };
  cobsAppend(body, out, state);
  out[state.codeAt] = state.code;
  return out.subarray(0, state.at);
}

/** Where a COBS encoding in progress stands: the next byte, the open code byte, its count. */
interface CobsState {
  at: number;
  codeAt: number;
  code: number;
}

/** Runs shorter than this are copied byte by byte (a native `set` costs more for them). */
const SHORT_RUN = 16;

/**
 * Appends `bytes` to the COBS encoding in `out` described by `state`.
 * @remarks Runs of non-zero bytes are found with `indexOf` and copied with `set`: for typical
 * payloads (few zeros) that is a handful of native calls per frame instead of a loop per byte.
 */
function cobsAppend(bytes: Uint8Array, out: Uint8Array, state: CobsState): void {
  let { at, codeAt, code } = state;
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    let zero = bytes.indexOf(0, i);
    if (zero === -1) zero = n;
    // Copy the run up to the zero, closing a block every 254 non-zero bytes.
    while (i < zero) {
      const run = Math.min(zero - i, 0xff - code);
      if (run < SHORT_RUN) {
        for (let k = 0; k < run; k++) out[at + k] = bytes[i + k] as number;
      } else {
        out.set(bytes.subarray(i, i + run), at);
      }
      at += run;
      i += run;
      code += run;
      if (code === 0xff) {
        out[codeAt] = code;
        codeAt = at++;
        code = 1;
      }
    }
    if (zero < n) {
      out[codeAt] = code;
      codeAt = at++;
      code = 1;
      i = zero + 1;
    }
  }
  state.at = at;
  state.codeAt = codeAt;
  state.code = code;
}

/**
 * Decodes COBS bytes (no delimiter).
 * @throws UsbError USB_FRAME_CORRUPT when the codes do not describe `encoded`.
 */
export function cobsDecode(encoded: Uint8Array): Uint8Array {
  if (encoded.indexOf(0) !== -1) {
    throw usbError('USB_FRAME_CORRUPT', 'zero byte inside a COBS frame');
  }
  const out = new Uint8Array(encoded.length);
  return out.subarray(0, cobsDecodeInto(encoded, 0, encoded.length, out));
}

/**
 * Decodes the zero-free COBS bytes `encoded[from, to)` into `out` (room for `to - from` bytes).
 * @returns the decoded length.
 */
function cobsDecodeInto(encoded: Uint8Array, from: number, to: number, out: Uint8Array): number {
  let i = from;
  let o = 0;
  while (i < to) {
    const code = encoded[i++] as number;
    const end = i + code - 1;
    if (end > to) {
      throw usbError('USB_FRAME_CORRUPT', 'COBS code runs past the end of the frame', {
        code: String(code),
      });
    }
    if (code <= SHORT_RUN) {
      for (; i < end; i++) out[o++] = encoded[i] as number;
    } else {
      out.set(encoded.subarray(i, end), o);
      o += end - i;
      i = end;
    }
    if (code !== 0xff && i < to) out[o++] = 0;
  }
  return o;
}

/** The CRC-32 of each frame type byte alone, where every frame's CRC starts. */
const TYPE_CRC: Readonly<Record<SerialFrameType, number>> = {
  [SerialFrameType.DATA]: crc32(Uint8Array.of(SerialFrameType.DATA)),
  [SerialFrameType.KEEPALIVE]: crc32(Uint8Array.of(SerialFrameType.KEEPALIVE)),
};

/** Bytes {@link encodeSerialFrameInto} may write for a payload of `payloadBytes`. */
export function encodedFrameBytes(payloadBytes: number): number {
  return maxEncodedBytes(payloadBytes) + 2;
}

/**
 * Encodes one frame for the line, delimiters included, into `out` at `offset`.
 * @returns the offset after the frame; `out` needs {@link encodedFrameBytes} bytes of room.
 * @remarks No intermediate copy: the CRC runs over the type byte and the payload where they
 * are, and the COBS encoding is written straight into `out` (a writer's batch buffer).
 */
export function encodeSerialFrameInto(
  type: SerialFrameType,
  payload: Uint8Array,
  out: Uint8Array,
  offset: number,
): number {
  if (out.length - offset < encodedFrameBytes(payload.length)) {
    throw new RangeError(`no room for a frame of ${payload.length} bytes at ${offset}`);
  }
  const crc = crc32(payload, TYPE_CRC[type]);
  out[offset] = DELIMITER;
  const state: CobsState = { at: offset + 3, codeAt: offset + 1, code: 2 };
  out[offset + 2] = type; // never zero: the first code block holds it
  cobsAppend(payload, out, state);
  const tail = crcBytes;
  tail[0] = crc & 0xff;
  tail[1] = (crc >>> 8) & 0xff;
  tail[2] = (crc >>> 16) & 0xff;
  tail[3] = crc >>> 24;
  cobsAppend(tail, out, state);
  out[state.codeAt] = state.code;
  out[state.at] = DELIMITER;
  return state.at + 1;
}

/** Scratch for the four CRC bytes of the frame being encoded (encoding is synchronous). */
const crcBytes = new Uint8Array(CRC_BYTES);

/** Encodes one frame for the line, delimiters included. */
export function encodeSerialFrame(type: SerialFrameType, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(encodedFrameBytes(payload.length));
  return out.subarray(0, encodeSerialFrameInto(type, payload, out, 0));
}

/**
 * Decodes the bytes between two delimiters.
 * @throws UsbError USB_FRAME_TOO_LARGE (over `maxPayloadBytes`), USB_FRAME_CORRUPT (bad COBS,
 *   bad CRC, too short, unknown type).
 */
export function decodeSerialFrame(encoded: Uint8Array, maxPayloadBytes: number): SerialFrame {
  if (encoded.indexOf(DELIMITER) !== -1) {
    throw usbError('USB_FRAME_CORRUPT', 'zero byte inside a COBS frame');
  }
  return decodeBody(encoded, 0, encoded.length, maxPayloadBytes);
}

/** {@link decodeSerialFrame} of `encoded[from, to)`, bytes known to hold no delimiter. */
function decodeBody(
  encoded: Uint8Array,
  from: number,
  to: number,
  maxPayloadBytes: number,
): SerialFrame {
  const n = to - from;
  if (n > maxEncodedBytes(maxPayloadBytes)) {
    throw usbError('USB_FRAME_TOO_LARGE', `frame of ${n} encoded bytes`, { bytes: String(n) });
  }
  const body = new Uint8Array(n);
  const length = cobsDecodeInto(encoded, from, to, body);
  if (length < BODY_OVERHEAD) {
    throw usbError('USB_FRAME_CORRUPT', `frame of ${length} bytes is too short`);
  }
  const type = body[0] as number;
  if (type !== SerialFrameType.DATA && type !== SerialFrameType.KEEPALIVE) {
    throw usbError('USB_FRAME_CORRUPT', `unknown frame type ${String(type)}`);
  }
  const end = length - CRC_BYTES;
  const expected =
    ((body[end] as number) |
      ((body[end + 1] as number) << 8) |
      ((body[end + 2] as number) << 16) |
      ((body[end + 3] as number) << 24)) >>>
    0;
  // A view, not a copy: the body buffer was allocated for this frame alone. The CRC runs over
  // it continuing from the type byte's CRC (the same as a CRC of `type | payload`).
  const payload = body.subarray(TYPE_BYTES, end);
  if (crc32(payload, TYPE_CRC[type]) !== expected) {
    throw usbError('USB_FRAME_CORRUPT', 'CRC-32 mismatch');
  }
  if (payload.length > maxPayloadBytes) {
    throw usbError('USB_FRAME_TOO_LARGE', `payload of ${payload.length} bytes`);
  }
  return { type, payload };
}

/** What a {@link SerialFrameDecoder} counted. */
export interface SerialDecoderCounters {
  /** Frames delivered (data and keepalive). */
  frames: number;
  /** Frames dropped for a bad CRC, bad COBS or an unknown type. */
  corrupt: number;
  /** Frames dropped for being longer than the limit. */
  oversized: number;
  /** Bytes thrown away with dropped frames. */
  droppedBytes: number;
}

/**
 * Splits a byte stream into frames; see the module comment.
 *
 * @remarks `push` hands each good frame to `onFrame` and each dropped one to `onDrop`, and never
 * throws for what the line sends. Memory stays under `maxEncodedBytes(maxPayloadBytes)`.
 */
export class SerialFrameDecoder {
  readonly counters: SerialDecoderCounters = {
    frames: 0,
    corrupt: 0,
    oversized: 0,
    droppedBytes: 0,
  };
  readonly #maxPayloadBytes: number;
  readonly #maxEncoded: number;
  readonly #buffer: Uint8Array;
  readonly #onFrame: (frame: SerialFrame) => void;
  readonly #onDrop: (error: UsbError) => void;
  #length = 0;
  /** Bytes of an oversized frame skipped so far (discarding until the next delimiter). */
  #skipping = 0;

  constructor(options: {
    readonly maxPayloadBytes: number;
    readonly onFrame: (frame: SerialFrame) => void;
    readonly onDrop?: (error: UsbError) => void;
  }) {
    if (!Number.isInteger(options.maxPayloadBytes) || options.maxPayloadBytes < 0) {
      throw new RangeError(
        `maxPayloadBytes must be a whole number, got ${options.maxPayloadBytes}`,
      );
    }
    this.#maxPayloadBytes = options.maxPayloadBytes;
    this.#maxEncoded = maxEncodedBytes(options.maxPayloadBytes);
    this.#buffer = new Uint8Array(this.#maxEncoded);
    this.#onFrame = options.onFrame;
    this.#onDrop = options.onDrop ?? (() => undefined);
  }

  /** Bytes held of a frame in progress. */
  get pendingBytes(): number {
    return this.#length;
  }

  /** Feeds bytes read from the line. */
  push(chunk: Uint8Array): void {
    let start = 0;
    while (start < chunk.length) {
      const at = chunk.indexOf(DELIMITER, start);
      if (at === -1) {
        this.#append(chunk, start, chunk.length);
        return;
      }
      if (this.#length === 0 && this.#skipping === 0) {
        // The whole frame is in this chunk: decode it where it lies, without a copy.
        this.#endFrame(chunk, start, at);
      } else {
        this.#append(chunk, start, at);
        this.#endFrame(this.#buffer, 0, this.#length);
      }
      start = at + 1;
    }
  }

  /** Drops a frame in progress (the line was reopened: its tail will never come). */
  reset(): void {
    if (this.#length > 0 || this.#skipping > 0) {
      this.#drop(usbError('USB_FRAME_CORRUPT', 'frame torn by a line reset'), this.#length);
    }
    this.#length = 0;
    this.#skipping = 0;
  }

  #append(bytes: Uint8Array, from: number, to: number): void {
    const n = to - from;
    if (n === 0) return;
    if (this.#skipping > 0) {
      this.#skipping += n;
      return;
    }
    if (this.#length + n > this.#maxEncoded) {
      this.#skipping = this.#length + n;
      this.#length = 0;
      return;
    }
    this.#buffer.set(bytes.subarray(from, to), this.#length);
    this.#length += n;
  }

  /** A delimiter ended the frame in progress, `bytes[from, to)`. */
  #endFrame(bytes: Uint8Array, from: number, to: number): void {
    if (this.#skipping > 0) {
      const skipped = this.#skipping;
      this.#skipping = 0;
      this.#drop(
        usbError('USB_FRAME_TOO_LARGE', `${skipped} bytes without a delimiter`, {
          bytes: String(skipped),
        }),
        skipped,
      );
      return;
    }
    this.#length = 0;
    if (to === from) return; // between two delimiters: not a frame
    let frame: SerialFrame;
    try {
      frame = decodeBody(bytes, from, to, this.#maxPayloadBytes);
    } catch (error) {
      // Only typed codec errors come from decodeBody; anything else is a bug to surface.
      if (!isUsbCodecError(error)) throw error;
      this.#drop(error, to - from);
      return;
    }
    this.counters.frames++;
    this.#onFrame(frame);
  }

  #drop(error: UsbError, bytes: number): void {
    if (error.code === 'USB_FRAME_TOO_LARGE') this.counters.oversized++;
    else this.counters.corrupt++;
    this.counters.droppedBytes += bytes;
    this.#onDrop(error);
  }
}

function isUsbCodecError(error: unknown): error is UsbError {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'USB_FRAME_CORRUPT' || code === 'USB_FRAME_TOO_LARGE';
}
