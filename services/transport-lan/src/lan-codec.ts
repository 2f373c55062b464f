/**
 * The LAN transport's link-level framing over a TCP (or TLS) byte stream: records, encoded and
 * decoded as pairs, with a streaming decoder that never buffers more than one record.
 *
 * Wire format (integers big-endian):
 *
 * ```
 * record   [type: 1 byte][length: 4 bytes][payload: length bytes]
 *
 * type 1 HELLO  first record each side sends, exactly 25 bytes of payload:
 *               [magic "LATN": 4][version: 1][max frame bytes: 4][instance id: 16]
 *               The instance id (random per driver start) lets both ends of two connections
 *               between the same pair of drivers keep the same one (see `lan-link-driver.ts`),
 *               and a driver recognise a connection to itself.
 * type 2 DATA   one multiplexer frame, 1..max frame bytes (65 536 by default)
 * type 3 PING   empty; sent when nothing else was sent for the keepalive interval. Any record
 *               received resets the idle timer, so PING needs no answer.
 * type 4 BYE    why the sender closes: [code length: 1][code: UTF-8][reason: UTF-8], at most
 *               512 bytes. A listener over its connection cap answers a HELLO with a BYE whose
 *               code is LAN_CONNECTION_LIMIT; `closeLink` sends the caller's code.
 * ```
 *
 * Limits: the decoder checks the type and the length prefix against that type's limit as soon
 * as the 5 header bytes are in, before buffering any payload, and throws `LAN_FRAME_TOO_LARGE`
 * (length over the limit) or `LAN_FRAME_MALFORMED` (unknown type, bad HELLO); the connection is
 * then dropped. At most one record (≤ max frame bytes + 5) is ever held.
 */
import { lanError } from './errors.js';

/** Record types. */
export const RecordType = {
  HELLO: 1,
  DATA: 2,
  PING: 3,
  BYE: 4,
} as const;

/** One record type. */
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** Bytes of a record header. */
export const RECORD_HEADER_BYTES = 5;
/** The link-protocol version in HELLO. */
export const LAN_PROTOCOL_VERSION = 1;
/** Bytes of a HELLO payload. */
export const HELLO_BYTES = 25;
/** Bytes of an instance id. */
export const INSTANCE_ID_BYTES = 16;
/** Largest BYE payload. */
export const MAX_BYE_BYTES = 512;
/** Default (and advertised) largest DATA payload: one 64 KiB multiplexer frame. */
export const DEFAULT_MAX_FRAME_BYTES = 65_536;

const MAGIC = Buffer.from('LATN', 'latin1');

/** The HELLO payload. */
export interface Hello {
  readonly version: number;
  readonly maxFrameBytes: number;
  /** 32 hex digits. */
  readonly instanceId: string;
}

/** The BYE payload. */
export interface Bye {
  readonly code: string;
  readonly reason: string;
}

/** Encodes one record (header and a copy of the payload in one buffer). */
export function encodeRecord(type: RecordType, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out[0] = type;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, RECORD_HEADER_BYTES);
  return out;
}

/** Encodes a HELLO payload. */
export function encodeHello(hello: Hello): Buffer {
  if (!/^[0-9a-f]{32}$/.test(hello.instanceId))
    throw new RangeError(`instance id must be 32 lowercase hex digits: ${hello.instanceId}`);
  const out = Buffer.alloc(HELLO_BYTES);
  MAGIC.copy(out, 0);
  out[4] = hello.version;
  out.writeUInt32BE(hello.maxFrameBytes, 5);
  out.write(hello.instanceId, 9, 'hex');
  return out;
}

/**
 * Decodes a HELLO payload.
 * @throws LanError LAN_FRAME_MALFORMED when the size or magic is wrong.
 */
export function decodeHello(payload: Uint8Array): Hello {
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (b.length !== HELLO_BYTES || !b.subarray(0, 4).equals(MAGIC)) {
    throw lanError('LAN_FRAME_MALFORMED', 'not a Lattice LAN HELLO', {
      bytes: String(b.length),
    });
  }
  return {
    version: b[4] ?? 0,
    maxFrameBytes: b.readUInt32BE(5),
    instanceId: b.toString('hex', 9, 9 + INSTANCE_ID_BYTES),
  };
}

/** Encodes a BYE payload (code and reason are cut to fit {@link MAX_BYE_BYTES}). */
export function encodeBye(bye: Bye): Buffer {
  const code = Buffer.from(bye.code, 'utf8').subarray(0, 255);
  const reason = Buffer.from(bye.reason, 'utf8').subarray(0, MAX_BYE_BYTES - 1 - code.length);
  return Buffer.concat([Buffer.of(code.length), code, reason]);
}

/**
 * Decodes a BYE payload.
 * @throws LanError LAN_FRAME_MALFORMED when the code length runs past the payload.
 */
export function decodeBye(payload: Uint8Array): Bye {
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const n = b[0];
  if (n === undefined || 1 + n > b.length) throw lanError('LAN_FRAME_MALFORMED', 'malformed BYE');
  return { code: b.toString('utf8', 1, 1 + n), reason: b.toString('utf8', 1 + n) };
}

/** Receives each decoded record; `payload` is only valid during the call unless copied. */
export type RecordHandler = (type: RecordType, payload: Uint8Array) => void;

/**
 * A streaming record decoder; see the module comment.
 *
 * @remarks A record contained in one chunk is handed out as a view of that chunk (no copy); one
 * split across chunks is assembled in a buffer the decoder allocates once its first such record's
 * length prefix passed the check, and reuses for every later one (a fresh 64 KiB buffer per record
 * cost five times the copy into it). Hence, as {@link RecordHandler} says, a payload is valid only
 * during the call.
 */
export class RecordDecoder {
  readonly #maxFrameBytes: number;
  readonly #header = Buffer.alloc(RECORD_HEADER_BYTES);
  #headerFill = 0;
  #type: RecordType = RecordType.DATA;
  #payload: Uint8Array | undefined;
  #payloadFill = 0;
  /** Where records split across chunks are assembled (see the class comment). */
  #assembly: ArrayBuffer | undefined;
  #failed = false;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for an unfinished record. */
  get bufferedBytes(): number {
    return this.#headerFill + this.#payloadFill;
  }

  /** Whether the decoder is inside a record (some of its bytes arrived, not all). */
  get midRecord(): boolean {
    return this.#headerFill > 0 || this.#payload !== undefined;
  }

  /**
   * Decodes what `chunk` completes, calling `onRecord` for each record in order.
   * @throws LanError LAN_FRAME_TOO_LARGE / LAN_FRAME_MALFORMED; the decoder is then unusable.
   */
  push(chunk: Uint8Array, onRecord: RecordHandler): void {
    if (this.#failed) throw lanError('LAN_FRAME_MALFORMED', 'decoder already failed');
    let at = 0;
    const end = chunk.length;
    if (this.#payload === undefined && this.#headerFill === 0) {
      // Fast path for the common case, DATA records wholly inside this chunk: no per-record state
      // is touched. Anything else (another type, a record running past the chunk) falls through
      // to the general loop below at the same position.
      const max = this.#maxFrameBytes;
      const buffer = chunk.buffer;
      const base = chunk.byteOffset;
      while (end - at >= RECORD_HEADER_BYTES && chunk[at] === RecordType.DATA) {
        const length = readU32(chunk, at + 1);
        if (length > max || end - at - RECORD_HEADER_BYTES < length) break;
        at += RECORD_HEADER_BYTES;
        onRecord(RecordType.DATA, new Uint8Array(buffer, base + at, length));
        at += length;
      }
    }
    while (at < end) {
      if (this.#payload !== undefined) {
        const take = Math.min(end - at, this.#payload.length - this.#payloadFill);
        // A plain view: `Buffer#subarray` builds a Buffer, which costs more than the copy of a
        // small piece.
        this.#payload.set(
          at === 0 && take === end
            ? chunk
            : new Uint8Array(chunk.buffer, chunk.byteOffset + at, take),
          this.#payloadFill,
        );
        this.#payloadFill += take;
        at += take;
        if (this.#payloadFill === this.#payload.length) {
          const p = this.#payload;
          this.#payload = undefined;
          this.#payloadFill = 0;
          onRecord(this.#type, p);
        }
        continue;
      }
      let length: number;
      if (this.#headerFill === 0 && end - at >= RECORD_HEADER_BYTES) {
        // Fast path: the whole header is in this chunk.
        length = this.#checkHeader(chunk[at] ?? 0, readU32(chunk, at + 1));
        at += RECORD_HEADER_BYTES;
      } else {
        const take = Math.min(end - at, RECORD_HEADER_BYTES - this.#headerFill);
        for (let i = 0; i < take; i++) this.#header[this.#headerFill + i] = chunk[at + i] ?? 0;
        this.#headerFill += take;
        at += take;
        if (this.#headerFill < RECORD_HEADER_BYTES) continue;
        this.#headerFill = 0;
        length = this.#checkHeader(this.#header[0] ?? 0, this.#header.readUInt32BE(1));
      }
      if (end - at >= length) {
        // A plain Uint8Array view (not a Buffer): one allocation, and what the link contract hands out.
        onRecord(this.#type, new Uint8Array(chunk.buffer, chunk.byteOffset + at, length));
        at += length;
      } else {
        if (this.#assembly === undefined || this.#assembly.byteLength < length) {
          this.#assembly = new ArrayBuffer(Math.max(length, this.#maxFrameBytes));
        }
        this.#payload = new Uint8Array(this.#assembly, 0, length);
        this.#payloadFill = 0;
      }
    }
  }

  #checkHeader(type: number, length: number): number {
    let limit: number;
    switch (type) {
      case RecordType.HELLO:
        limit = HELLO_BYTES;
        break;
      case RecordType.DATA:
        limit = this.#maxFrameBytes;
        break;
      case RecordType.PING:
        limit = 0;
        break;
      case RecordType.BYE:
        limit = MAX_BYE_BYTES;
        break;
      default:
        this.#failed = true;
        throw lanError('LAN_FRAME_MALFORMED', `unknown record type ${type}`, {
          type: String(type),
        });
    }
    if (length > limit) {
      this.#failed = true;
      throw lanError(
        'LAN_FRAME_TOO_LARGE',
        `record of type ${type} announces ${length} bytes; the limit is ${limit}`,
        { type: String(type), bytes: String(length), max: String(limit) },
      );
    }
    this.#type = type;
    return length;
  }
}

function readU32(b: Uint8Array, at: number): number {
  return (
    (((b[at] ?? 0) << 24) >>> 0) +
    ((b[at + 1] ?? 0) << 16) +
    ((b[at + 2] ?? 0) << 8) +
    (b[at + 3] ?? 0)
  );
}
