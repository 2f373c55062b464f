/**
 * DQL values: JSON-like values plus binary and the MISSING sentinel, their types, the total
 * collation order used for sorting and indexes, and the comparison rules of expressions.
 *
 * @remarks
 * Collation (sorting, index order): `false < true < numbers < binary < strings < arrays <
 * objects < null < missing`. Within a type: numbers numerically, binary and strings
 * lexicographically by byte / UTF-16 unit, arrays element-wise then by length, objects by their
 * sorted key lists, then by values in key order. Comparison operators are stricter: comparing
 * values of different types yields MISSING (see {@link compareForOperator}).
 */

/** The value of an absent field; distinct from `null`. */
export const MISSING: unique symbol = Symbol.for('lattice.dql.MISSING');

/** The type of {@link MISSING}. */
export type Missing = typeof MISSING;

/** A stored value: JSON plus binary. Numbers are finite IEEE doubles. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** A JSON-like object (the shape of a document and of a nested map). */
export type JsonObject = { readonly [key: string]: JsonValue };

/** What an expression evaluates to: a stored value or MISSING. */
export type Value = JsonValue | Missing;

/** A document: an object with an `_id` (string, number or object). */
export type Document = JsonObject;

/** The type names that `type()` returns, in collation order. */
export const ValueType = {
  BOOLEAN: 'boolean',
  NUMBER: 'number',
  BINARY: 'binary',
  STRING: 'string',
  ARRAY: 'array',
  OBJECT: 'object',
  NULL: 'null',
  MISSING: 'missing',
} as const;

/** One of the value type names. */
export type ValueType = (typeof ValueType)[keyof typeof ValueType];

const TYPE_RANK: Readonly<Record<ValueType, number>> = {
  boolean: 0,
  number: 1,
  binary: 2,
  string: 3,
  array: 4,
  object: 5,
  null: 6,
  missing: 7,
};

/** Whether `v` is a JSON object (not null, not an array, not binary). */
export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** The type of a value. `undefined` counts as MISSING. */
export function typeOf(v: Value | undefined): ValueType {
  if (v === MISSING || v === undefined) return 'missing';
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return 'boolean';
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    default:
      if (Array.isArray(v)) return 'array';
      if (v instanceof Uint8Array) return 'binary';
      return 'object';
  }
}

/** The field `name` of `v`, or MISSING when `v` is not an object or has no such own field. */
export function getField(v: Value, name: string): Value {
  if (typeof v !== 'object' || v === null) return MISSING;
  const r = (v as JsonObject)[name];
  if (r === undefined || Array.isArray(v) || v instanceof Uint8Array) return MISSING;
  // Inherited members of Object.prototype are functions, or `__proto__`: never stored fields.
  if (typeof r === 'function' || (name === '__proto__' && !Object.hasOwn(v, name))) return MISSING;
  return r;
}

/** Element `i` of an array (negative counts from the end), or MISSING. */
export function getElement(v: Value, i: number): Value {
  if (!Array.isArray(v) || !Number.isInteger(i)) return MISSING;
  const arr = v as readonly JsonValue[];
  const k = i < 0 ? arr.length + i : i;
  const r = arr[k];
  return r === undefined ? MISSING : r;
}

/**
 * Field names a lookup `v[name]` can only find as an own field of a plain object: not a member
 * of `Object.prototype`, `Array.prototype` or the typed-array prototypes (`length`, `buffer`,
 * `toString`, `__proto__`, …) and not a canonical numeric string (an array or binary index).
 */
const UNSAFE_FIELD_NAMES: ReadonlySet<string> = (() => {
  const names = new Set<string>(['__proto__']);
  for (const sample of [{}, [], new Uint8Array(0)]) {
    for (let o: object | null = sample; o !== null; o = Object.getPrototypeOf(o) as object | null)
      for (const k of Object.getOwnPropertyNames(o)) names.add(k);
  }
  return names;
})();

/**
 * Whether `obj[name]` on any value can only read an own field of a plain object.
 * @remarks Internal to the package (not exported from the index).
 */
export function isPlainFieldName(name: string): boolean {
  return !UNSAFE_FIELD_NAMES.has(name) && name !== '-0' && String(Number(name)) !== name;
}

/**
 * A reader for a path of field names below `holder.doc`: `valueAtPath(holder.doc, path)`,
 * specialised.
 * @remarks The evaluator's hot path (a compiled row is such a holder, so no wrapper call is
 * needed). For names that {@link isPlainFieldName} accepts one property load per step is enough
 * — arrays, binary and prototype members cannot answer — so the reader skips the checks
 * {@link getField} makes; a defined non-function result is the field. Other paths fall back to
 * {@link valueAtPath}. Results always equal {@link valueAtPath}.
 */
export function docPathReader(path: readonly string[]): (holder: { readonly doc: Value }) => Value {
  if (!path.every(isPlainFieldName)) return (h) => valueAtPath(h.doc, path);
  type Obj = Record<string, unknown>;
  const step = (v: unknown, name: string): Value => {
    if (typeof v !== 'object' || v === null) return MISSING;
    const r = (v as Obj)[name];
    return r === undefined || typeof r === 'function' ? MISSING : (r as Value);
  };
  switch (path.length) {
    case 0:
      return (h) => h.doc;
    case 1: {
      const a = path[0] as string;
      return (h) => {
        const root = h.doc;
        if (typeof root !== 'object' || root === null) return MISSING;
        const r = (root as Obj)[a];
        return r === undefined || typeof r === 'function' ? MISSING : (r as Value);
      };
    }
    case 2: {
      const a = path[0] as string;
      const b = path[1] as string;
      return (h) => {
        const root = h.doc;
        if (typeof root !== 'object' || root === null) return MISSING;
        const x = (root as Obj)[a];
        if (typeof x !== 'object' || x === null) return MISSING;
        const r = (x as Obj)[b];
        return r === undefined || typeof r === 'function' ? MISSING : (r as Value);
      };
    }
    case 3: {
      const a = path[0] as string;
      const b = path[1] as string;
      const c = path[2] as string;
      return (h) => {
        const root = h.doc;
        if (typeof root !== 'object' || root === null) return MISSING;
        const x = (root as Obj)[a];
        if (typeof x !== 'object' || x === null) return MISSING;
        const y = (x as Obj)[b];
        if (typeof y !== 'object' || y === null) return MISSING;
        const r = (y as Obj)[c];
        return r === undefined || typeof r === 'function' ? MISSING : (r as Value);
      };
    }
    default:
      return (h) => {
        let v: Value = h.doc;
        for (let i = 0; i < path.length && v !== MISSING; i++) v = step(v, path[i] as string);
        return v;
      };
  }
}

/** The value at a path of field names from `root`, or MISSING. */
export function valueAtPath(root: Value, path: readonly string[]): Value {
  let v = root;
  for (const name of path) {
    v = getField(v, name);
    if (v === MISSING) return MISSING;
  }
  return v;
}

const HIGH_UNITS = /[\uD800-\uFFFF]/;

/**
 * Whether JavaScript's own string order (UTF-16 code units) may differ from code-point order for
 * `s` against some other string: only when `s` holds a unit at or above U+D800.
 */
export function hasHighUnits(s: string): boolean {
  return HIGH_UNITS.test(s);
}

/**
 * Compares two strings by Unicode code point, the order of their UTF-8 bytes (and of the store's
 * keys and canonical `_id`s).
 * @remarks It differs from JavaScript's `<` only where one string has a surrogate (an astral
 * code point) and the other a unit in U+E000…U+FFFF at the first difference, which needs both
 * strings to hold units at or above U+D800; otherwise the native comparison is exact.
 */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  if (!HIGH_UNITS.test(a) || !HIGH_UNITS.test(b)) return a < b ? -1 : 1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : 1;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/**
 * The collation order of two values: negative, zero or positive.
 * @remarks A total order over all values; zero exactly when {@link valuesEqual}.
 */
export function compareValues(a: Value | undefined, b: Value | undefined): number {
  const ta = typeOf(a);
  const tb = typeOf(b);
  if (ta !== tb) return TYPE_RANK[ta] < TYPE_RANK[tb] ? -1 : 1;
  switch (ta) {
    case 'boolean':
      return a === b ? 0 : a === false ? -1 : 1;
    case 'number': {
      const x = a as number;
      const y = b as number;
      return x < y ? -1 : x > y ? 1 : 0;
    }
    case 'string':
      return compareStrings(a as string, b as string);
    case 'binary':
      return compareBytes(a as Uint8Array, b as Uint8Array);
    case 'array': {
      const x = a as readonly JsonValue[];
      const y = b as readonly JsonValue[];
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const c = compareValues(x[i], y[i]);
        if (c !== 0) return c;
      }
      return x.length === y.length ? 0 : x.length < y.length ? -1 : 1;
    }
    case 'object': {
      const x = a as JsonObject;
      const y = b as JsonObject;
      const kx = Object.keys(x).sort(compareStrings);
      const ky = Object.keys(y).sort(compareStrings);
      const n = Math.min(kx.length, ky.length);
      for (let i = 0; i < n; i++) {
        const c = compareStrings(kx[i] ?? '', ky[i] ?? '');
        if (c !== 0) return c;
      }
      if (kx.length !== ky.length) return kx.length < ky.length ? -1 : 1;
      for (const k of kx) {
        const c = compareValues(x[k], y[k]);
        if (c !== 0) return c;
      }
      return 0;
    }
    default:
      return 0;
  }
}

/** Whether two values are equal by value (objects and arrays deeply, binary by bytes). */
export function valuesEqual(a: Value | undefined, b: Value | undefined): boolean {
  if (a === b) return true;
  return compareValues(a, b) === 0;
}

/**
 * The result of a comparison operator between two values.
 * @remarks MISSING if either side is MISSING, NULL if either is NULL, MISSING if the types
 * differ; otherwise the collation comparison (negative, zero, positive).
 */
export function compareForOperator(a: Value, b: Value): number | Missing | null {
  if (a === MISSING || b === MISSING) return MISSING;
  if (a === null || b === null) return null;
  const ta = typeOf(a);
  if (ta !== typeOf(b)) return MISSING;
  if (ta === 'number') {
    const x = a as number;
    const y = b as number;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (ta === 'string') return compareStrings(a as string, b as string);
  return compareValues(a, b);
}

/**
 * A string that is equal for two values exactly when they are {@link valuesEqual}.
 * @remarks Used to group, deduplicate and look up by value in hash maps.
 */
export function valueKey(v: Value | undefined): string {
  switch (typeOf(v)) {
    case 'missing':
      return 'm';
    case 'null':
      return 'n';
    case 'boolean':
      return v === true ? 't' : 'f';
    case 'number':
      return 'd' + String((v as number) === 0 ? 0 : v);
    case 'string':
      return 's' + JSON.stringify(v);
    case 'binary':
      return 'b' + Array.from(v as Uint8Array, (x) => x.toString(16).padStart(2, '0')).join('');
    case 'array':
      return '[' + (v as readonly JsonValue[]).map(valueKey).join(',') + ']';
    case 'object': {
      const o = v as JsonObject;
      return (
        '{' +
        Object.keys(o)
          .sort(compareStrings)
          .map((k) => JSON.stringify(k) + ':' + valueKey(o[k]))
          .join(',') +
        '}'
      );
    }
  }
}

/** Whether a value is usable as a document `_id`: a string, a number or an object. */
export function isValidId(v: Value | undefined): v is string | number | JsonObject {
  return typeof v === 'string' || typeof v === 'number' || isObject(v);
}
