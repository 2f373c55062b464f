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
  let codeAt = 0;
  let o = 1;
  let code = 1;
  for (const byte of body) {
    if (byte === 0) {
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
    } else {
      out[o++] = byte;
      code++;
      if (code === 0xff) {
        out[codeAt] = code;
        codeAt = o++;
        code = 1;
      }
    }
  }
  out[codeAt] = code;
  return out.subarray(0, o);
}

/**
 * Decodes COBS bytes (no delimiter).
 * @throws UsbError USB_FRAME_CORRUPT when the codes do not describe `encoded`.
 */
export function cobsDecode(encoded: Uint8Array): Uint8Array {
  const out = new Uint8Array(encoded.length);
  let i = 0;
  let o = 0;
  while (i < encoded.length) {
    const code = encoded[i++] as number;
    if (code === 0) throw usbError('USB_FRAME_CORRUPT', 'zero byte inside a COBS frame');
    const end = i + code - 1;
    if (end > encoded.length) {
      throw usbError('USB_FRAME_CORRUPT', 'COBS code runs past the end of the frame', {
        code: String(code),
      });
    }
    for (; i < end; i++) {
      const byte = encoded[i] as number;
      if (byte === 0) throw usbError('USB_FRAME_CORRUPT', 'zero byte inside a COBS frame');
      out[o++] = byte;
    }
    if (code !== 0xff && i < encoded.length) out[o++] = 0;
  }
  return out.subarray(0, o);
}

/** Encodes one frame for the line, delimiters included. */
export function encodeSerialFrame(type: SerialFrameType, payload: Uint8Array): Uint8Array {
  const body = new Uint8Array(payload.length + BODY_OVERHEAD);
  body[0] = type;
  body.set(payload, TYPE_BYTES);
  const crc = crc32(body.subarray(0, TYPE_BYTES + payload.length));
  new DataView(body.buffer).setUint32(TYPE_BYTES + payload.length, crc, true);
  const encoded = cobsEncode(body);
  const out = new Uint8Array(encoded.length + 2);
  out[0] = DELIMITER;
  out.set(encoded, 1);
  out[out.length - 1] = DELIMITER;
  return out;
}

/**
 * Decodes the bytes between two delimiters.
 * @throws UsbError USB_FRAME_TOO_LARGE (over `maxPayloadBytes`), USB_FRAME_CORRUPT (bad COBS,
 *   bad CRC, too short, unknown type).
 */
export function decodeSerialFrame(encoded: Uint8Array, maxPayloadBytes: number): SerialFrame {
  if (encoded.length > maxEncodedBytes(maxPayloadBytes)) {
    throw usbError('USB_FRAME_TOO_LARGE', `frame of ${encoded.length} encoded bytes`, {
      bytes: String(encoded.length),
    });
  }
  const body = cobsDecode(encoded);
  if (body.length < BODY_OVERHEAD) {
    throw usbError('USB_FRAME_CORRUPT', `frame of ${body.length} bytes is too short`);
  }
  const end = body.length - CRC_BYTES;
  const expected = new DataView(body.buffer, body.byteOffset).getUint32(end, true);
  if (crc32(body.subarray(0, end)) !== expected) {
    throw usbError('USB_FRAME_CORRUPT', 'CRC-32 mismatch');
  }
  const type = body[0];
  if (type !== SerialFrameType.DATA && type !== SerialFrameType.KEEPALIVE) {
    throw usbError('USB_FRAME_CORRUPT', `unknown frame type ${String(type)}`);
  }
  if (end - TYPE_BYTES > maxPayloadBytes) {
    throw usbError('USB_FRAME_TOO_LARGE', `payload of ${end - TYPE_BYTES} bytes`);
  }
  return { type, payload: body.slice(TYPE_BYTES, end) };
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
      const end = at === -1 ? chunk.length : at;
      this.#append(chunk.subarray(start, end));
      if (at === -1) return;
      this.#endFrame();
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

  #append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#skipping > 0) {
      this.#skipping += bytes.length;
      return;
    }
    if (this.#length + bytes.length > this.#maxEncoded) {
      this.#skipping = this.#length + bytes.length;
      this.#length = 0;
      return;
    }
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

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
    const length = this.#length;
    if (length === 0) return; // between two delimiters: not a frame
    this.#length = 0;
    let frame: SerialFrame;
    try {
      frame = decodeSerialFrame(this.#buffer.subarray(0, length), this.#maxPayloadBytes);
    } catch (error) {
      // Only typed codec errors come from decodeSerialFrame; anything else is a bug to surface.
      if (!isUsbCodecError(error)) throw error;
      this.#drop(error, length);
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
