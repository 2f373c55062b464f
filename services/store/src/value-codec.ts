/**
 * The Lattice value encoding: how materialized documents, query arguments and query results are
 * stored and carried as bytes.
 *
 * @remarks
 * MessagePack (through `msgpackr`, records off): JSON values plus binary, maps with string keys.
 * It is compact, fast in JavaScript, and keeps `Uint8Array` values that JSON cannot. `-0` comes
 * back as `0` (MessagePack integers have no negative zero): DQL compares them equal and JSON
 * cannot tell them apart either. Decoding
 * checks what a document may contain (depth, key types, no `undefined`) so bytes from the bus
 * cannot smuggle in anything a document cannot hold.
 */
import { Packr } from 'msgpackr';
import { storeError } from './errors.js';

/** Deepest nesting accepted in a decoded value (documents are limited to 32 by the CRDT). */
export const MAX_VALUE_DEPTH = 64;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** Encodes a value. */
export function encodeValue(value: unknown): Uint8Array {
  try {
    return packr.pack(value);
  } catch (err) {
    throw storeError('STORE_INVALID_ARGUMENT', `value cannot be encoded: ${String(err)}`, {}, err);
  }
}

/** Decodes and checks a value; throws `STORE_INVALID_ARGUMENT` on malformed bytes. */
export function decodeValue(bytes: Uint8Array): unknown {
  let v: unknown;
  try {
    v = packr.unpack(bytes);
  } catch (err) {
    throw storeError('STORE_INVALID_ARGUMENT', 'malformed value bytes', {}, err);
  }
  checkValue(v, 0);
  return v;
}

/** Decodes a value the store wrote itself (skips the checks). */
export function decodeTrustedValue(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

function checkValue(v: unknown, depth: number): void {
  if (depth > MAX_VALUE_DEPTH)
    throw storeError('STORE_INVALID_ARGUMENT', 'value nested too deeply');
  if (v === null) return;
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return;
    case 'number':
      if (!Number.isFinite(v))
        throw storeError('STORE_INVALID_ARGUMENT', 'non-finite number in value');
      return;
    case 'object':
      if (v instanceof Uint8Array) return;
      if (Array.isArray(v)) {
        for (const item of v) checkValue(item, depth + 1);
        return;
      }
      if (Object.getPrototypeOf(v) !== Object.prototype)
        throw storeError('STORE_INVALID_ARGUMENT', 'value holds a non-plain object');
      for (const item of Object.values(v)) checkValue(item, depth + 1);
      return;
    default:
      throw storeError('STORE_INVALID_ARGUMENT', `value holds a ${typeof v}`);
  }
}

/** What {@link readEncodedPath} returns where the path leads nowhere (DQL's MISSING). */
export const NOT_FOUND: unique symbol = Symbol('not found');

const utf8 = new TextEncoder();

/**
 * The value at `path` (object fields only, as DQL's `valueAtPath`) inside encoded value bytes
 * the store wrote itself, decoding only that value: what index maintenance needs of a document.
 * @remarks Skips over everything else without decoding it (a 1 KB document's other fields are
 * never turned into strings). Where the bytes hold anything unusual on the way (a non-string
 * map key, a `__proto__` step, which msgpackr renames) it decodes the whole value instead, so the answer is always the
 * same as `valueAtPath(decodeTrustedValue(bytes), path)`.
 */
export function readEncodedPath(bytes: Uint8Array, path: readonly string[]): unknown {
  let at = 0;
  for (const name of path) {
    if (name === '__proto__' || name === '__proto_') return slowPath(bytes, path);
    const head = bytes[at] as number;
    let count: number;
    let p = at + 1;
    if (head >= 0x80 && head <= 0x8f) count = head & 0x0f;
    else if (head === 0xde) {
      count = (bytes[p] as number) * 0x100 + (bytes[p + 1] as number);
      p += 2;
    } else if (head === 0xdf) {
      count = readU32(bytes, p);
      p += 4;
    } else return NOT_FOUND; // not an object: no field
    const want = fieldName(name);
    let found = -1;
    for (let i = 0; i < count; i++) {
      const key = strAt(bytes, p);
      if (key === undefined) return slowPath(bytes, path);
      const valueAt = key.end;
      // The last occurrence wins, as when decoding.
      if (sameBytes(bytes, key.start, key.end, want)) found = valueAt;
      p = skip(bytes, valueAt);
    }
    if (found < 0) return NOT_FOUND;
    at = found;
  }
  return packr.unpack(bytes.subarray(at, skip(bytes, at)));
}

function slowPath(bytes: Uint8Array, path: readonly string[]): unknown {
  let v: unknown = packr.unpack(bytes);
  for (const name of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array)
      return NOT_FOUND;
    if (!Object.hasOwn(v, name)) return NOT_FOUND;
    v = (v as Record<string, unknown>)[name];
    if (v === undefined) return NOT_FOUND;
  }
  return v;
}

const fieldNames = new Map<string, Uint8Array>();

function fieldName(name: string): Uint8Array {
  let b = fieldNames.get(name);
  if (!b) {
    b = utf8.encode(name);
    if (fieldNames.size < 10_000) fieldNames.set(name, b);
  }
  return b;
}

function sameBytes(bytes: Uint8Array, start: number, end: number, want: Uint8Array): boolean {
  if (end - start !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (bytes[start + i] !== want[i]) return false;
  return true;
}

function readU32(b: Uint8Array, at: number): number {
  return (
    (b[at] as number) * 0x1000000 +
    (b[at + 1] as number) * 0x10000 +
    (b[at + 2] as number) * 0x100 +
    (b[at + 3] as number)
  );
}

/** A string's bytes at `at` (start and end), or undefined when no string starts there. */
function strAt(b: Uint8Array, at: number): { start: number; end: number } | undefined {
  const h = b[at] as number;
  if (h >= 0xa0 && h <= 0xbf) return { start: at + 1, end: at + 1 + (h & 0x1f) };
  if (h === 0xd9) return { start: at + 2, end: at + 2 + (b[at + 1] as number) };
  if (h === 0xda) {
    const n = (b[at + 1] as number) * 0x100 + (b[at + 2] as number);
    return { start: at + 3, end: at + 3 + n };
  }
  if (h === 0xdb) return { start: at + 5, end: at + 5 + readU32(b, at + 1) };
  return undefined;
}

/** The offset just past the MessagePack item at `at`. */
function skip(b: Uint8Array, at: number): number {
  const h = b[at] as number;
  if (h <= 0x7f || h >= 0xe0) return at + 1; // fixint
  if (h <= 0x8f) return skipItems(b, at + 1, 2 * (h & 0x0f)); // fixmap
  if (h <= 0x9f) return skipItems(b, at + 1, h & 0x0f); // fixarray
  if (h <= 0xbf) return at + 1 + (h & 0x1f); // fixstr
  switch (h) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return at + 1;
    case 0xc4: // bin 8
    case 0xd9: // str 8
      return at + 2 + (b[at + 1] as number);
    case 0xc5: // bin 16
    case 0xda: // str 16
      return at + 3 + (b[at + 1] as number) * 0x100 + (b[at + 2] as number);
    case 0xc6: // bin 32
    case 0xdb: // str 32
      return at + 5 + readU32(b, at + 1);
    case 0xc7: // ext 8
      return at + 3 + (b[at + 1] as number);
    case 0xc8: // ext 16
      return at + 4 + (b[at + 1] as number) * 0x100 + (b[at + 2] as number);
    case 0xc9: // ext 32
      return at + 6 + readU32(b, at + 1);
    case 0xca: // float 32
    case 0xce: // uint 32
    case 0xd2: // int 32
      return at + 5;
    case 0xcb: // float 64
    case 0xcf: // uint 64
    case 0xd3: // int 64
      return at + 9;
    case 0xcc: // uint 8
    case 0xd0: // int 8
      return at + 2;
    case 0xcd: // uint 16
    case 0xd1: // int 16
      return at + 3;
    case 0xd4: // fixext 1
      return at + 3;
    case 0xd5: // fixext 2
      return at + 4;
    case 0xd6: // fixext 4
      return at + 6;
    case 0xd7: // fixext 8
      return at + 10;
    case 0xd8: // fixext 16
      return at + 18;
    case 0xdc: // array 16
      return skipItems(b, at + 3, (b[at + 1] as number) * 0x100 + (b[at + 2] as number));
    case 0xdd: // array 32
      return skipItems(b, at + 5, readU32(b, at + 1));
    case 0xde: // map 16
      return skipItems(b, at + 3, 2 * ((b[at + 1] as number) * 0x100 + (b[at + 2] as number)));
    case 0xdf: // map 32
      return skipItems(b, at + 5, 2 * readU32(b, at + 1));
    default:
      throw storeError('STORE_IO', `corrupt value bytes (type byte 0x${h.toString(16)})`);
  }
}

function skipItems(b: Uint8Array, at: number, n: number): number {
  let p = at;
  for (let i = 0; i < n; i++) p = skip(b, p);
  return p;
}
