/**
 * The store's key layout: every key the store writes, in one ordered keyspace.
 *
 * ```
 * 'M' name                              → system metadata (peer id, HLC high-water mark, …)
 * 'M' 0x00 'format'                     → u32 big-endian: the on-disk format ({@link STORE_FORMAT})
 * 'C' coll                              → (empty) the collection exists
 * 'D' coll docId                        → DocRecord: commit seq, CRDT state, version vector,
 *                                         tombstone flag and deletion time
 * 'V' coll docId                        → materialized value (value encoding); live docs only
 * 'X' coll name                         → IndexDef (path, ready)
 * 'I' coll name indexValue              → posting: the documents holding that value (below)
 * 'I' coll name indexValue docId        → (empty) one document of an overflowed posting
 * 'T' coll docId                        → deletedAt(u64): a tombstone, for reaping after the TTL
 *                                         (exists exactly while the record is a tombstone)
 * 'L' seq(u64)                          → Committed: what commit `seq` touched (the change log)
 * 'P' peer                              → Checkpoint data of a remote peer's sync session
 * ```
 *
 * - `coll` and index `name` are a length byte then UTF-8 (at most 255 bytes), so all keys of one
 *   collection are contiguous and a collection's prefix never prefixes another's.
 * - `docId` is the canonical `_id` encoding of `@lattice/crdt` (self-delimiting, sorts by value),
 *   so a `D`/`V` range scan yields documents in `_id` order and `_id` ranges are key ranges.
 * - `indexValue` is the order-preserving encoding below, self-delimiting, so a value's posting
 *   key is followed directly by its overflow entries, an index equality is one point read of the
 *   posting (or, overflowed, a prefix scan) and an index range is a key range.
 * - `u64` is 8 bytes big-endian, so the change log iterates in numeric order and
 *   "changes since commit N" is a range scan from `L (N+1)`.
 *
 * Posting (the value of `'I' coll name indexValue`), format 2:
 * - `0x00` then each `docId` as a varint length and its bytes, ascending bytewise (the order of
 *   the `_id`s), at most {@link POSTING_MAX_IDS} of them: an inline posting. An empty posting is
 *   deleted, not stored.
 * - `0x01`: overflowed. The documents are the keys `'I' coll name indexValue docId` that follow
 *   it. A posting overflows when it would exceed the inline limit and stays overflowed until the
 *   index is rebuilt.
 * Format 1 (before the `'M' \0format` key existed) had no postings, only one
 * `'I' coll name indexValue docId` entry per document; a store opens a format-1 database by
 * rebuilding its indexes (see `DocumentStore.open`).
 *
 * Index value encoding (self-delimiting; bytewise order = DQL collation order, strings by code
 * point):
 * - `0x01` false, `0x02` true
 * - `0x10` number: 8 bytes IEEE-754 big-endian, sign bit flipped (all bits for negatives), -0 as 0
 * - `0x18` binary and `0x20` string: bytes (UTF-8 for strings) with `0x00` escaped as `0x00 0xFF`,
 *   terminated by `0x00 0x01`
 * - `0x28` array: each item as `0x01` + item, then `0x00`
 * - `0x30` object: keys sorted, each as `0x01` + key string; `0x00`; then each value in key order
 * - `0x40` null
 */
import { compareStrings } from '@lattice/dql';
import { storeError } from './errors.js';

const utf8 = new TextEncoder();

/** Key tags. */
export const Tag = {
  META: 0x4d, // 'M'
  COLLECTION: 0x43, // 'C'
  DOC: 0x44, // 'D'
  VALUE: 0x56, // 'V'
  INDEX_DEF: 0x58, // 'X'
  INDEX: 0x49, // 'I'
  TOMBSTONE: 0x54, // 'T'
  LOG: 0x4c, // 'L'
  PEER: 0x50, // 'P'
} as const;
type TagByte = (typeof Tag)[keyof typeof Tag];

/** The on-disk format this code writes and reads (stored under {@link FORMAT_META}). */
export const STORE_FORMAT = 2;
/** The metadata name of the format version (`'M' \0format` → u32 big-endian). */
export const FORMAT_META = '\u0000format';

/** Most documents in an inline posting (see the module comment). */
export const POSTING_MAX_IDS = 32;
/** First byte of a posting. */
export const POSTING_INLINE = 0x00;
export const POSTING_OVERFLOW = 0x01;
const OVERFLOWED = Uint8Array.of(POSTING_OVERFLOW);

/** Encodes an inline posting of `ids` (sorted, distinct). */
export function encodePosting(ids: readonly Uint8Array[]): Uint8Array {
  let len = 1;
  for (const id of ids) len += varintLength(id.length) + id.length;
  const out = allocKey(len); // a value, but as short as a key and written right away
  out[0] = POSTING_INLINE;
  let at = 1;
  for (const id of ids) {
    let n = id.length;
    while (n >= 0x80) {
      out[at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    out[at++] = n;
    copyInto(out, id, at);
    at += id.length;
  }
  return out;
}

/** The bytes of an overflowed posting. */
export function overflowedPosting(): Uint8Array {
  return OVERFLOWED;
}

/**
 * The `_id`s of an inline posting (views into `b`), or undefined for an overflowed one.
 * @throws `STORE_IO` on bytes that are not a posting.
 */
export function decodePosting(b: Uint8Array): Uint8Array[] | undefined {
  if (b[0] === POSTING_OVERFLOW && b.length === 1) return undefined;
  if (b[0] !== POSTING_INLINE) throw storeError('STORE_IO', 'corrupt index posting');
  const ids: Uint8Array[] = [];
  let at = 1;
  while (at < b.length) {
    let n = 0;
    let shift = 0;
    for (;;) {
      const x = b[at++];
      if (x === undefined || shift > 28) throw storeError('STORE_IO', 'corrupt index posting');
      n |= (x & 0x7f) << shift;
      if (x < 0x80) break;
      shift += 7;
    }
    if (at + n > b.length) throw storeError('STORE_IO', 'corrupt index posting');
    ids.push(b.subarray(at, at + n));
    at += n;
  }
  return ids;
}

function varintLength(n: number): number {
  let len = 1;
  for (let v = n; v >= 0x80; v >>>= 7) len++;
  return len;
}

/** Longest collection or index name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;

/** Type tags of the index value encoding, by DQL type name. */
export const INDEX_TYPE_TAG: Readonly<Record<string, number>> = {
  boolean: 0x01,
  number: 0x10,
  binary: 0x18,
  string: 0x20,
  array: 0x28,
  object: 0x30,
  null: 0x40,
};
/** One past the last byte a type's encodings start with (the exclusive end of its key range). */
export const INDEX_TYPE_END: Readonly<Record<string, number>> = {
  boolean: 0x03,
  number: 0x11,
  binary: 0x19,
  string: 0x21,
  array: 0x29,
  object: 0x31,
  null: 0x41,
};

/** A growable byte buffer for building keys. */
export class KeyWriter {
  #buf = new Uint8Array(64);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  byte(b: number): this {
    this.#room(1);
    this.#buf[this.#len++] = b;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#room(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  /** A length-prefixed name (collection or index). */
  name(s: string): this {
    const b = nameBytes(s);
    return this.byte(b.length).bytes(b);
  }

  u64(n: number): this {
    this.#room(8);
    const hi = Math.floor(n / 0x1_0000_0000);
    const lo = n >>> 0;
    const v = new DataView(this.#buf.buffer, this.#buf.byteOffset + this.#len, 8);
    v.setUint32(0, hi);
    v.setUint32(4, lo);
    this.#len += 8;
    return this;
  }

  /** Escaped bytes terminated by `0x00 0x01`. */
  escaped(b: Uint8Array): this {
    this.#room(b.length * 2 + 2);
    for (const x of b) {
      this.#buf[this.#len++] = x;
      if (x === 0) this.#buf[this.#len++] = 0xff;
    }
    this.#buf[this.#len++] = 0;
    this.#buf[this.#len++] = 1;
    return this;
  }

  /** The key written so far, in a new (pooled, see {@link allocKey}) array. */
  finish(): Uint8Array {
    const out = allocKey(this.#len);
    // A loop, not a subarray: a view would move the writer's in-heap buffer (see allocKey).
    const buf = this.#buf;
    for (let i = 0; i < this.#len; i++) out[i] = buf[i] as number;
    return out;
  }
}

const nameCache = new Map<string, Uint8Array>();

/** The UTF-8 bytes of a collection or index name, checked for length. */
export function nameBytes(s: string): Uint8Array {
  let b = nameCache.get(s);
  if (b) return b;
  b = utf8.encode(s);
  if (b.length === 0 || b.length > MAX_NAME_BYTES) {
    throw storeError(
      'STORE_INVALID_ARGUMENT',
      `name must be 1 to ${MAX_NAME_BYTES} UTF-8 bytes: ${JSON.stringify(s.slice(0, 40))}`,
      { name: s.slice(0, 64) },
    );
  }
  if (nameCache.size < 10_000) nameCache.set(s, b);
  return b;
}

function prefix(tag: TagByte, collection: string): KeyWriter {
  return new KeyWriter().byte(tag).name(collection);
}

const prefixCache = new Map<string, Uint8Array>();

/** `tag coll`, cached: the hot paths (documents, values, tombstones) build keys from it. */
function cachedPrefix(tag: TagByte, collection: string): Uint8Array {
  const k = String.fromCharCode(tag) + collection;
  let p = prefixCache.get(k);
  if (!p) {
    p = Uint8Array.from(prefix(tag, collection).finish()); // owned: kept (see allocKey)
    if (prefixCache.size < 10_000) prefixCache.set(k, p);
  }
  return p;
}

/** `a` followed by `b`, in a new (pooled, see {@link allocKey}) array. */
export function join2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = allocKey(a.length + b.length);
  copyInto(out, a, 0);
  copyInto(out, b, a.length);
  return out;
}

/**
 * `n` uninitialized bytes for a key the caller fills and hands to the engine right away.
 * @remarks A `Buffer` from Node's pool, not a `new Uint8Array(n)`: V8 keeps typed arrays of up
 * to 64 bytes (most keys) inside its heap, and the RocksDB binding reads an array's bytes through
 * its `ArrayBuffer`, which V8 must first move out of the heap, about 1 µs per key (a two-key read
 * of a cached document took ~10 µs with such keys, ~8 µs with pooled ones). Not for keys kept
 * long-term (caches): a pooled key holds on to its pool's 8 KiB slab.
 */
export function allocKey(n: number): Uint8Array {
  return Buffer.allocUnsafe(n);
}

/** Copies `src` into `out` at `at` (a loop: keys are short, and `set` costs more for those). */
export function copyInto(out: Uint8Array, src: Uint8Array, at: number): void {
  for (let i = 0; i < src.length; i++) out[at + i] = src[i] as number;
}

/** `'D' coll docId`. */
export function docKey(collection: string, docId: Uint8Array): Uint8Array {
  return join2(cachedPrefix(Tag.DOC, collection), docId);
}

/** `'V' coll docId`. */
export function valueKey(collection: string, docId: Uint8Array): Uint8Array {
  return join2(cachedPrefix(Tag.VALUE, collection), docId);
}

/** `'C' coll`. */
export function collectionKey(collection: string): Uint8Array {
  return prefix(Tag.COLLECTION, collection).finish();
}

/** `'X' coll name`. */
export function indexDefKey(collection: string, name: string): Uint8Array {
  return prefix(Tag.INDEX_DEF, collection).name(name).finish();
}

/**
 * `'I' coll name` + the encoded value: the value's posting key, and the prefix of its overflow
 * entries.
 */
export function indexValuePrefix(collection: string, name: string, value: unknown): Uint8Array {
  const w = new KeyWriter().bytes(indexPrefixCached(collection, name));
  encodeIndexValue(w, value, 0);
  return w.finish();
}

const indexPrefixCache = new Map<string, Uint8Array>();

/** `'I' coll name`, cached. */
function indexPrefixCached(collection: string, name: string): Uint8Array {
  const k = `${collection}\u0000${name}`;
  let p = indexPrefixCache.get(k);
  if (!p) {
    p = Uint8Array.from(prefix(Tag.INDEX, collection).name(name).finish()); // owned: kept
    if (indexPrefixCache.size < 10_000) indexPrefixCache.set(k, p);
  }
  return p;
}

/** The length of `'I' coll name`, the part of an index entry key before the value. */
export function indexPrefixLength(collection: string, name: string): number {
  return 3 + nameBytes(collection).length + nameBytes(name).length;
}

/** `'I' coll name` followed by `tail` (a type tag range bound). */
export function indexPrefix(collection: string, name: string, tail?: number): Uint8Array {
  const p = indexPrefixCached(collection, name);
  if (tail === undefined) return p;
  return join2(p, Uint8Array.of(tail));
}

/**
 * `'T' coll docId`.
 * @remarks Keyed by `_id` alone so a commit that revives or rewrites a document deletes it
 * blindly, without reading the old record first.
 */
export function tombstoneKey(collection: string, docId: Uint8Array): Uint8Array {
  return join2(cachedPrefix(Tag.TOMBSTONE, collection), docId);
}

/** `'L' seq`. */
export function logKey(seq: number): Uint8Array {
  const k = allocKey(9);
  k[0] = Tag.LOG;
  const hi = Math.floor(seq / 0x1_0000_0000);
  const lo = seq >>> 0;
  k[1] = hi >>> 24;
  k[2] = (hi >>> 16) & 0xff;
  k[3] = (hi >>> 8) & 0xff;
  k[4] = hi & 0xff;
  k[5] = lo >>> 24;
  k[6] = (lo >>> 16) & 0xff;
  k[7] = (lo >>> 8) & 0xff;
  k[8] = lo & 0xff;
  return k;
}

/** `'P' peer`. */
export function peerKey(peer: string): Uint8Array {
  return new KeyWriter().byte(Tag.PEER).bytes(utf8.encode(peer)).finish();
}

/** `'M' name`. */
export function metaKey(name: string): Uint8Array {
  return new KeyWriter().byte(Tag.META).bytes(utf8.encode(name)).finish();
}

/** The prefix `tag coll` (every key of that kind in one collection). */
export function collectionPrefix(tag: TagByte, collection: string): Uint8Array {
  return cachedPrefix(tag, collection);
}

/** The prefix `tag` alone. */
export function tagPrefix(tag: TagByte): Uint8Array {
  return Uint8Array.of(tag);
}

/** The smallest key greater than every key starting with `p` (the exclusive end of a prefix). */
export function prefixEnd(p: Uint8Array): Uint8Array {
  for (let i = p.length - 1; i >= 0; i--) {
    const last = p[i] as number;
    if (last < 0xff) {
      const out = allocKey(i + 1);
      for (let j = 0; j < i; j++) out[j] = p[j] as number;
      out[i] = last + 1;
      return out;
    }
  }
  // All 0xff: no finite end; callers never build such prefixes (tags are ASCII).
  throw new RangeError('prefix has no end');
}

/** Reads a u64 written by {@link KeyWriter.u64} at `offset`. */
export function readU64(b: Uint8Array, offset: number): number {
  const v = new DataView(b.buffer, b.byteOffset + offset, 8);
  return v.getUint32(0) * 0x1_0000_0000 + v.getUint32(4);
}

/** The length of a collection prefix `tag coll` in a key. */
export function collectionPrefixLength(key: Uint8Array): number {
  return 2 + (key[1] as number);
}

/** The collection name in a key that starts with `tag coll`. */
export function collectionOf(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset + 2, key[1] as number).toString('utf8');
}

const f64 = new DataView(new ArrayBuffer(8));
const f64Bytes = new Uint8Array(f64.buffer);

/**
 * Appends the order-preserving encoding of a DQL value.
 * @remarks Values come from materialized documents (already validated for depth); the depth
 * check guards the encoder itself.
 */
export function encodeIndexValue(w: KeyWriter, v: unknown, depth: number): void {
  if (depth > 64) throw storeError('STORE_INVALID_ARGUMENT', 'value nested too deeply to index');
  if (v === null) {
    w.byte(0x40);
    return;
  }
  switch (typeof v) {
    case 'boolean':
      w.byte(v ? 0x02 : 0x01);
      return;
    case 'number': {
      w.byte(0x10);
      f64.setFloat64(0, v === 0 ? 0 : v);
      if ((f64Bytes[0] as number) & 0x80)
        for (let i = 0; i < 8; i++) w.byte(~(f64Bytes[i] as number) & 0xff);
      else {
        w.byte((f64Bytes[0] as number) | 0x80);
        for (let i = 1; i < 8; i++) w.byte(f64Bytes[i] as number);
      }
      return;
    }
    case 'string':
      w.byte(0x20).escaped(utf8.encode(v));
      return;
    case 'object': {
      if (v instanceof Uint8Array) {
        w.byte(0x18).escaped(v);
        return;
      }
      if (Array.isArray(v)) {
        w.byte(0x28);
        for (const item of v) {
          w.byte(0x01);
          encodeIndexValue(w, item, depth + 1);
        }
        w.byte(0x00);
        return;
      }
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).sort(compareStrings);
      w.byte(0x30);
      for (const k of keys) w.byte(0x01).escaped(utf8.encode(k));
      w.byte(0x00);
      for (const k of keys) encodeIndexValue(w, obj[k], depth + 1);
      return;
    }
    default:
      throw storeError('STORE_INVALID_ARGUMENT', `cannot index a value of type ${typeof v}`);
  }
}
