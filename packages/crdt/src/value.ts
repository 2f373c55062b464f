/**
 * Plain values stored in documents.
 */
import { crdtError } from './errors.js';

/** A document value: JSON plus binary. `undefined` (MISSING) is never a value. */
export type Value = null | boolean | number | string | Uint8Array | readonly Value[] | ValueObject;

/** An object value. */
export interface ValueObject {
  readonly [key: string]: Value;
}

/** Deepest nesting accepted in a value. */
export const MAX_VALUE_DEPTH = 32;

/** Whether `v` is a plain object value (not an array, binary or null). */
export function isValueObject(v: unknown): v is ValueObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Structural equality of two values. */
export function valuesEqual(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length)
      return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!(Array.isArray(a) && Array.isArray(b)) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!valuesEqual(a[i] as Value, b[i] as Value)) return false;
    return true;
  }
  const ao = a as ValueObject;
  const bo = b as ValueObject;
  const ak = Object.keys(ao);
  if (ak.length !== Object.keys(bo).length) return false;
  for (const k of ak) {
    if (!Object.hasOwn(bo, k) || !valuesEqual(ao[k] as Value, bo[k] as Value)) return false;
  }
  return true;
}

/**
 * Checks that `v` is a storable value and returns its approximate encoded size in bytes.
 * @throws `CRDT_INVALID_VALUE` for undefined, functions, non-finite numbers or too deep nesting.
 */
export function checkValue(v: unknown, depth = 0): number {
  if (depth > MAX_VALUE_DEPTH)
    throw crdtError('CRDT_INVALID_VALUE', `value nested deeper than ${MAX_VALUE_DEPTH}`);
  if (v === null || typeof v === 'boolean') return 1;
  if (typeof v === 'number') {
    if (!Number.isFinite(v))
      throw crdtError('CRDT_INVALID_VALUE', `numbers must be finite, got ${v}`);
    return 9;
  }
  if (typeof v === 'string') return v.length + 2;
  if (v instanceof Uint8Array) return v.length + 2;
  if (Array.isArray(v)) {
    let n = 2;
    for (const item of v as unknown[]) n += checkValue(item, depth + 1);
    return n;
  }
  if (isValueObject(v)) {
    let n = 2;
    for (const [k, item] of Object.entries(v)) n += k.length + 1 + checkValue(item, depth + 1);
    return n;
  }
  throw crdtError('CRDT_INVALID_VALUE', `unsupported value of type ${typeof v}`);
}
