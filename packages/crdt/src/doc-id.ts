/**
 * Canonical `_id` encoding: bytes that sort and compare by value.
 *
 * Wire format (order-preserving; compare encodings bytewise):
 * - `0x01` false, `0x02` true
 * - `0x10` number: 8 bytes big-endian IEEE-754 with the sign bit flipped (all bits flipped for
 *   negatives), `-0` stored as `0`
 * - `0x20` string: UTF-8 with each `0x00` escaped as `0x00 0xFF`, terminated by `0x00 0x01`
 * - `0x28` array: each item as `0x01` + item, then `0x00`
 * - `0x30` object: keys sorted by their encoding; each as `0x01` + key string + value, then `0x00`
 * - `0x40` null
 *
 * So numbers < strings < arrays < objects, as in DQL's sort order; strings sort by code point; two
 * objects with the same keys and values in any order encode identically.
 */
import { crdtError } from './errors.js';

/** A document `_id`: string, number or object (compared by value). */
export type DocId = string | number | DocIdObject;
/** A value inside an object `_id`. */
export type DocIdPart = null | boolean | number | string | readonly DocIdPart[] | DocIdObject;
/** An object `_id`. */
export interface DocIdObject {
  readonly [key: string]: DocIdPart;
}

/** Longest accepted canonical `_id` encoding, in bytes. */
export const MAX_DOC_ID_BYTES = 4096;
const MAX_ID_DEPTH = 16;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

class ByteSink {
  bytes: number[] = [];
  push(b: number): void {
    this.bytes.push(b);
    if (this.bytes.length > MAX_DOC_ID_BYTES)
      throw crdtError('CRDT_INVALID_ID', `_id longer than ${MAX_DOC_ID_BYTES} bytes`);
  }
}

function writeString(out: ByteSink, s: string): void {
  for (const b of utf8.encode(s)) {
    out.push(b);
    if (b === 0) out.push(0xff);
  }
  out.push(0);
  out.push(1);
}

function writePart(out: ByteSink, v: unknown, depth: number): void {
  if (depth > MAX_ID_DEPTH)
    throw crdtError('CRDT_INVALID_ID', `_id nested deeper than ${MAX_ID_DEPTH}`);
  if (v === null) return out.push(0x40);
  if (v === false) return out.push(0x01);
  if (v === true) return out.push(0x02);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw crdtError('CRDT_INVALID_ID', '_id numbers must be finite');
    out.push(0x10);
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, v === 0 ? 0 : v);
    const neg = (view.getUint8(0) & 0x80) !== 0;
    for (let i = 0; i < 8; i++) {
      const b = view.getUint8(i);
      out.push(neg ? ~b & 0xff : i === 0 ? b ^ 0x80 : b);
    }
    return;
  }
  if (typeof v === 'string') {
    out.push(0x20);
    return writeString(out, v);
  }
  if (Array.isArray(v)) {
    out.push(0x28);
    for (const item of v as unknown[]) {
      out.push(1);
      writePart(out, item, depth + 1);
    }
    return out.push(0);
  }
  if (typeof v === 'object' && !(v instanceof Uint8Array)) {
    out.push(0x30);
    const keys = Object.keys(v).sort(compareUtf8);
    for (const k of keys) {
      out.push(1);
      writeString(out, k);
      writePart(out, (v as Record<string, unknown>)[k], depth + 1);
    }
    return out.push(0);
  }
  throw crdtError('CRDT_INVALID_ID', `unsupported _id part of type ${typeof v}`);
}

function compareUtf8(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  return x.length - y.length;
}

/**
 * The canonical bytes of an `_id`.
 * @throws `CRDT_INVALID_ID` if `id` is not a string, finite number or object of such values.
 */
export function encodeDocId(id: DocId): Uint8Array {
  if (
    typeof id !== 'string' &&
    typeof id !== 'number' &&
    (typeof id !== 'object' || id === null || Array.isArray(id))
  ) {
    throw crdtError('CRDT_INVALID_ID', '_id must be a string, number or object');
  }
  const out = new ByteSink();
  writePart(out, id, 0);
  return Uint8Array.from(out.bytes);
}

/**
 * The canonical `_id` as a string (one char per byte), for `Map` keys: sorts and compares like
 * the bytes.
 */
export function docIdKey(id: DocId): string {
  const bytes = encodeDocId(id);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** Orders two `_id`s by value (by their canonical encodings). */
export function compareDocIds(a: DocId, b: DocId): number {
  const x = docIdKey(a);
  const y = docIdKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

class ByteSource {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}
  next(): number {
    const b = this.bytes[this.pos++];
    if (b === undefined) throw crdtError('CRDT_DECODE', '_id encoding ends early');
    return b;
  }
}

function readString(src: ByteSource): string {
  const out: number[] = [];
  for (;;) {
    const b = src.next();
    if (b !== 0) {
      out.push(b);
      continue;
    }
    const e = src.next();
    if (e === 1) break;
    if (e !== 0xff) throw crdtError('CRDT_DECODE', 'bad escape in _id string');
    out.push(0);
  }
  try {
    return utf8Decoder.decode(Uint8Array.from(out));
  } catch (cause) {
    throw crdtError('CRDT_DECODE', 'invalid UTF-8 in _id string', undefined, cause);
  }
}

function readPart(src: ByteSource, depth: number): DocIdPart {
  if (depth > MAX_ID_DEPTH)
    throw crdtError('CRDT_DECODE', `_id nested deeper than ${MAX_ID_DEPTH}`);
  const tag = src.next();
  switch (tag) {
    case 0x40:
      return null;
    case 0x01:
      return false;
    case 0x02:
      return true;
    case 0x10: {
      const view = new DataView(new ArrayBuffer(8));
      const first = src.next();
      const neg = (first & 0x80) === 0;
      view.setUint8(0, neg ? ~first & 0xff : first ^ 0x80);
      for (let i = 1; i < 8; i++) {
        const b = src.next();
        view.setUint8(i, neg ? ~b & 0xff : b);
      }
      return view.getFloat64(0);
    }
    case 0x20:
      return readString(src);
    case 0x28: {
      const items: DocIdPart[] = [];
      while (src.next() === 1) items.push(readPart(src, depth + 1));
      return items;
    }
    case 0x30: {
      const obj: Record<string, DocIdPart> = {};
      for (;;) {
        const m = src.next();
        if (m === 0) break;
        if (m !== 1) throw crdtError('CRDT_DECODE', 'bad _id object marker');
        const k = readString(src);
        Object.defineProperty(obj, k, {
          value: readPart(src, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return obj;
    }
    default:
      throw crdtError('CRDT_DECODE', `unknown _id tag ${tag}`);
  }
}

/**
 * Decodes canonical `_id` bytes.
 * @throws `CRDT_DECODE` if the bytes are not a canonical `_id`.
 */
export function decodeDocId(bytes: Uint8Array): DocId {
  if (bytes.length > MAX_DOC_ID_BYTES)
    throw crdtError('CRDT_DECODE', `_id longer than ${MAX_DOC_ID_BYTES} bytes`);
  const src = new ByteSource(bytes);
  const v = readPart(src, 0);
  if (src.pos !== bytes.length) throw crdtError('CRDT_DECODE', 'trailing bytes after _id');
  if (
    typeof v !== 'string' &&
    typeof v !== 'number' &&
    (typeof v !== 'object' || v === null || Array.isArray(v))
  ) {
    throw crdtError('CRDT_DECODE', '_id must be a string, number or object');
  }
  // Round-trip check: rejects non-canonical encodings (unsorted keys, duplicates).
  const again = encodeDocId(v as DocId);
  if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) {
    throw crdtError('CRDT_DECODE', '_id encoding is not canonical');
  }
  return v as DocId;
}
