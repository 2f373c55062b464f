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
  cobsOpen(1, 0, 1);
  cobsAppend(body, out);
  return out.subarray(0, cobsClose(out));
}

// Where the COBS encoding in progress stands: the next byte, the open code byte and its count.
// Module state rather than an object per frame: encoding is synchronous and never re-entered.
let encAt = 0;
let encCodeAt = 0;
let encCode = 1;

function cobsOpen(at: number, codeAt: number, code: number): void {
  encAt = at;
  encCodeAt = codeAt;
  encCode = code;
}

/** Writes the open code byte; returns the offset after the encoding. */
function cobsClose(out: Uint8Array): number {
  out[encCodeAt] = encCode;
  return encAt;
}

/** Runs shorter than this are copied byte by byte (a native `set` costs more for them). */
const SHORT_RUN = 16;

/**
 * Payloads at least this long that are not `Buffer`s are scanned for zeros through a `Buffer`
 * view: `Buffer#indexOf` is a native memchr, `Uint8Array#indexOf` a loop about five times
 * slower per byte; below this length making the view costs more than it saves.
 */
const SCAN_VIEW_MIN = 256;

/**
 * Appends `bytes` to the COBS encoding in progress in `out`.
 * @remarks Runs of non-zero bytes are found with `indexOf` and copied with `set`: for typical
 * payloads (few zeros) that is a handful of native calls per frame instead of a loop per byte.
 */
function cobsAppend(bytes: Uint8Array, out: Uint8Array): void {
  let at = encAt;
  let codeAt = encCodeAt;
  let code = encCode;
  const n = bytes.length;
  const scan =
    n >= SCAN_VIEW_MIN && !Buffer.isBuffer(bytes)
      ? Buffer.from(bytes.buffer, bytes.byteOffset, n)
      : bytes;
  let i = 0;
  while (i < n) {
    let zero = scan.indexOf(0, i);
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
  encAt = at;
  encCodeAt = codeAt;
  encCode = code;
}

/** Appends one byte to the COBS encoding in progress in `out`. */
function cobsAppendByte(byte: number, out: Uint8Array): void {
  if (byte === 0) {
    out[encCodeAt] = encCode;
    encCodeAt = encAt++;
    encCode = 1;
    return;
  }
  out[encAt++] = byte;
  if (++encCode === 0xff) {
    out[encCodeAt] = encCode;
    encCodeAt = encAt++;
    encCode = 1;
  }
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
 * are, and the COBS encoding is written straight into `out` (a writer's batch buffer), so the
 * frames of a batch are encoded one after the other into one buffer and written together.
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
  // The type byte is never zero: it opens the first code block.
  cobsOpen(offset + 3, offset + 1, 2);
  out[offset + 2] = type;
  cobsAppend(payload, out);
  cobsAppendByte(crc & 0xff, out);
  cobsAppendByte((crc >>> 8) & 0xff, out);
  cobsAppendByte((crc >>> 16) & 0xff, out);
  cobsAppendByte(crc >>> 24, out);
  const end = cobsClose(out);
  out[end] = DELIMITER;
  return end + 1;
}

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
  const n = encoded.length;
  if (n > maxEncodedBytes(maxPayloadBytes)) {
    throw usbError('USB_FRAME_TOO_LARGE', `frame of ${n} encoded bytes`, { bytes: String(n) });
  }
  const body = new Uint8Array(n);
  const length = cobsDecodeInto(encoded, 0, n, body);
  // A view, not a copy: the body buffer was allocated for this frame alone.
  const payload = payloadOf(body, length);
  const fault = bodyFault(body, length, maxPayloadBytes, payload);
  if (fault !== undefined) throw fault;
  return { type: body[0] as SerialFrameType, payload };
}

/** The payload of a decoded body of `length` bytes, a view (empty when the body is too short). */
function payloadOf(body: Uint8Array, length: number): Uint8Array {
  return body.subarray(TYPE_BYTES, length - CRC_BYTES);
}

/**
 * Checks a decoded body `type | payload | crc32le` (`body[0, length)`).
 * @param payload `payloadOf(body, length)`: the caller makes the view it hands on.
 * @returns why it is dropped, or undefined when it is a good frame.
 */
function bodyFault(
  body: Uint8Array,
  length: number,
  maxPayloadBytes: number,
  payload: Uint8Array,
): UsbError | undefined {
  if (length < BODY_OVERHEAD) {
    return usbError('USB_FRAME_CORRUPT', `frame of ${length} bytes is too short`);
  }
  const type = body[0] as number;
  if (type !== SerialFrameType.DATA && type !== SerialFrameType.KEEPALIVE) {
    return usbError('USB_FRAME_CORRUPT', `unknown frame type ${String(type)}`);
  }
  const end = length - CRC_BYTES;
  const expected =
    ((body[end] as number) |
      ((body[end + 1] as number) << 8) |
      ((body[end + 2] as number) << 16) |
      ((body[end + 3] as number) << 24)) >>>
    0;
  // Continued from the type byte's CRC: the same as a CRC of `type | payload`.
  if (crc32(payload, TYPE_CRC[type]) !== expected) {
    return usbError('USB_FRAME_CORRUPT', 'CRC-32 mismatch');
  }
  if (end - TYPE_BYTES > maxPayloadBytes) {
    return usbError('USB_FRAME_TOO_LARGE', `payload of ${end - TYPE_BYTES} bytes`);
  }
  return undefined;
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
 * throws for what the line sends. The COBS decoding is streamed: each byte read is copied once,
 * from the chunk into one body buffer that every frame reuses (whether or not a frame was split
 * across reads), so a frame costs no allocation but the payload's view. `onFrame`'s `payload`
 * is therefore valid only during the call — the link contract's rule for a received frame.
 * Memory stays under `maxEncodedBytes(maxPayloadBytes)`.
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
  /** The frame in progress, decoded (`type | payload | crc32le`); reused by every frame. */
  readonly #body: Uint8Array;
  readonly #onFrame: (type: SerialFrameType, payload: Uint8Array) => void;
  readonly #onDrop: (error: UsbError) => void;
  /** Encoded bytes of the frame in progress seen so far. */
  #encoded = 0;
  /** Decoded bytes of it in `#body`. */
  #length = 0;
  /** Bytes left in the current COBS block; 0: the next byte is a code byte. */
  #left = 0;
  /** The current block ends in an implied zero (its code was not 0xFF), written if one follows. */
  #zeroAfter = false;
  /** Bytes of an oversized frame skipped so far (discarding until the next delimiter). */
  #skipping = 0;

  constructor(options: {
    readonly maxPayloadBytes: number;
    /** A good frame; `payload` is valid only during the call (its memory is reused). */
    readonly onFrame: (type: SerialFrameType, payload: Uint8Array) => void;
    readonly onDrop?: (error: UsbError) => void;
  }) {
    if (!Number.isInteger(options.maxPayloadBytes) || options.maxPayloadBytes < 0) {
      throw new RangeError(
        `maxPayloadBytes must be a whole number, got ${options.maxPayloadBytes}`,
      );
    }
    this.#maxPayloadBytes = options.maxPayloadBytes;
    this.#maxEncoded = maxEncodedBytes(options.maxPayloadBytes);
    // Decoding never makes bytes: the decoded body is shorter than the encoded frame.
    this.#body = new Uint8Array(this.#maxEncoded);
    this.#onFrame = options.onFrame;
    this.#onDrop = options.onDrop ?? (() => undefined);
  }

  /** Encoded bytes held of a frame in progress (its decoded part is at most this long). */
  get pendingBytes(): number {
    return this.#encoded;
  }

  /** Feeds bytes read from the line. */
  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let start = 0;
    while (start < n) {
      const at = chunk.indexOf(DELIMITER, start);
      if (at === -1) {
        this.#take(chunk, start, n);
        return;
      }
      if (at > start) this.#take(chunk, start, at);
      this.#endFrame();
      start = at + 1;
    }
  }

  /** Drops a frame in progress (the line was reopened: its tail will never come). */
  reset(): void {
    if (this.#encoded > 0 || this.#skipping > 0) {
      this.#drop(
        usbError('USB_FRAME_CORRUPT', 'frame torn by a line reset'),
        this.#encoded + this.#skipping,
      );
    }
    this.#clear();
    this.#skipping = 0;
  }

  #clear(): void {
    this.#encoded = 0;
    this.#length = 0;
    this.#left = 0;
    this.#zeroAfter = false;
  }

  /** Decodes `bytes[from, to)`, delimiter-free bytes of the frame in progress, into `#body`. */
  #take(bytes: Uint8Array, from: number, to: number): void {
    if (this.#skipping > 0) {
      this.#skipping += to - from;
      return;
    }
    const encoded = this.#encoded + to - from;
    if (encoded > this.#maxEncoded) {
      this.#skipping = encoded;
      this.#clear();
      return;
    }
    this.#encoded = encoded;
    const body = this.#body;
    let i = from;
    let o = this.#length;
    let left = this.#left;
    while (i < to) {
      if (left === 0) {
        // A code byte: the previous block's implied zero, then a block of `code - 1` bytes.
        if (this.#zeroAfter) body[o++] = 0;
        const code = bytes[i++] as number;
        left = code - 1;
        this.#zeroAfter = code !== 0xff;
        continue;
      }
      const run = left < to - i ? left : to - i;
      if (run < SHORT_RUN) {
        for (let k = 0; k < run; k++) body[o + k] = bytes[i + k] as number;
      } else {
        body.set(bytes.subarray(i, i + run), o);
      }
      i += run;
      o += run;
      left -= run;
    }
    this.#length = o;
    this.#left = left;
  }

  /** A delimiter ended the frame in progress. */
  #endFrame(): void {
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
    const encoded = this.#encoded;
    if (encoded === 0) return; // between two delimiters: not a frame
    const length = this.#length;
    const torn = this.#left > 0;
    this.#clear();
    const body = this.#body;
    // One view serves the CRC check and the listener.
    const payload = payloadOf(body, length);
    const fault = torn
      ? usbError('USB_FRAME_CORRUPT', 'COBS code runs past the end of the frame')
      : bodyFault(body, length, this.#maxPayloadBytes, payload);
    if (fault !== undefined) {
      this.#drop(fault, encoded);
      return;
    }
    this.counters.frames++;
    this.#onFrame(body[0] as SerialFrameType, payload);
  }

  #drop(error: UsbError, bytes: number): void {
    if (error.code === 'USB_FRAME_TOO_LARGE') this.counters.oversized++;
    else this.counters.corrupt++;
    this.counters.droppedBytes += bytes;
    this.#onDrop(error);
  }
}
