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
