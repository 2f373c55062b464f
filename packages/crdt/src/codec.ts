/**
 * Compact, canonical encoding of documents and deltas (a full state is the delta against the
 * empty version vector), and of version vectors (the sync handshake).
 *
 * Wire format of a delta (building blocks — varint, svarint, RLE column — in `bytes.ts`):
 *
 * ```
 * delta   = 0x01                      format version 1, body as below
 *         | 0x81 varint(n) deflate    the same body, raw-deflated (node:zlib), n = body length;
 *                                     used exactly when the body is ≥ 4 KiB (canonical rule)
 * body    = varint(len) docId          canonical `_id` bytes (doc-id.ts)
 *           varint(P) (varint(len) utf8)×P   peer ids, sorted, unique, each one referenced
 *           column×9                   each: varint(byte length) + bytes
 * columns = kids   RLE   per slot: number of children
 *           shape  RLE   per slot: Σ min(count_k, 3) << 2k over k = reg, mapdot, ctr, restart,
 *                        clear (a 3 means "count − 3 follows in misc")
 *           key    RLE   per child slot: prefix << 4 | min(suffixBytes, 15) (front coding: the
 *                        key shares `prefix` UTF-16 units with its previous sibling — the longest
 *                        common prefix, one shorter if it would split a surrogate pair; the first
 *                        child has prefix 0; suffixBytes ≥ 15: suffixBytes − 15 follows in misc)
 *           peer   RLE   peer index of every dot, context entry and version vector entry
 *           time   RLE of svarint   every time, as the difference to the previous time (from 0)
 *           misc   RLE   counts and flags (below)
 *           tag    RLE   value tags (below)
 *           keys   raw   the key suffixes, UTF-8
 *           data   raw   value payloads: varints, UTF-8, float64 little-endian
 * ```
 *
 * Order of the logical stream: `misc: |since|`, then `since` as (peer, time) pairs, `misc: |vv|`,
 * the version vector, then the slot tree in pre-order from the root (which has no key). Per slot:
 * `kids`, `shape`, overflow counts, then its entries kind by kind: register (peer, time, value),
 * map dot (peer, time), counter (peer, time, number, `misc: 0 | epochPeer + 1`, epoch time if
 * any), restart (peer, time, number), clear (peer, time, `misc: |context|`, context pairs); then
 * its children (key, subtree). Values: tag 0 null, 1 false, 2 true, 3 uint (data varint), 4
 * negative int (data varint of −v − 1), 5 float64 (non-integers and −0 only), 6 string (data:
 * length + UTF-8), 7 bytes (length + bytes), 8 array (data: count; items follow), 9 object (data:
 * count; per field: length + UTF-8 key in data, value follows), 10 attachment (a register's token;
 * the token value follows). Numbers of counters and restarts are values restricted to tags 3–5.
 *
 * Canonical: children and object keys are sorted (JS string order, strictly: no duplicates),
 * entries sorted by peer
 * (counters by peer, epoch peer, epoch time; clears by peer, time), version vectors by peer, every
 * integer minimal, every RLE segment maximal. So equal states encode to equal bytes, and the
 * decoder rejects anything else: any deviation, a reference out of range, a column with bytes
 * left, more than {@link CODEC_LIMITS}. Every failure is `CRDT_DECODE`; work and memory are
 * bounded by the input size and the limits. The deflated form is the one exception to "bytes are
 * a function of the state": its bytes are those of the platform's zlib (see the README).
 *
 * Encoding is synchronous and reuses module-level scratch buffers (no allocation per column);
 * decoding reuses its column readers, interns peer ids so entries of one peer share one string,
 * and reuses the last message's peer table when the next one repeats it byte for byte (deltas
 * from one sender), so a one-field delta allocates little more than the entries it carries.
 * `mergeEncoded` decodes the same format into a document one top-level field at a time, without
 * building the decoded state as a whole.
 *
 * Version vector (`encodeVersionVector`): `varint(P)`, then per peer in sorted order
 * `varint(len) utf8`, then per peer `svarint(time − previous time)` (from 0).
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { Clear, CtrEntry, DotEntry, RegEntry, RestartEntry, VersionVector } from './state.js';
import { clearBytes, DOT_BYTES, isRegList, regBytes, Slot } from './state.js';
import type { DocId } from './doc-id.js';
import { decodeDocId, encodeDocId } from './doc-id.js';
import { CrdtDocument, DocDelta, DOC_MAX_BYTES, MAX_FIELD_DEPTH } from './document.js';
import type { FieldSource, MergeResult } from './document.js';
import type { HybridClock } from './hlc.js';
import { bad, ByteReader, ByteWriter, RleReader, RleWriter } from './bytes.js';
import { crdtError } from './errors.js';
import type { PeerId } from './ids.js';
import { MAX_PEER_ID_LENGTH } from './ids.js';
import type { Value } from './value.js';
import { MAX_VALUE_DEPTH } from './value.js';

/** Decoder limits. */
export const CODEC_LIMITS = {
  /** Largest accepted message (and inflated body), in bytes. */
  maxBytes: 2 * DOC_MAX_BYTES,
  /** Deepest field nesting (see `MAX_FIELD_DEPTH`). */
  maxDepth: MAX_FIELD_DEPTH,
  /** Most peers per message. */
  maxPeers: 65_536,
  /** Most entries (slots, dots, context entries, value nodes) per message. */
  maxEntries: 2_000_000,
} as const;

/** Bodies at least this long are deflated (a fixed rule, so the encoding stays canonical). */
export const DEFLATE_FROM_BYTES = 4096;

const VERSION = 0x01;
const DEFLATED = 0x80;
const MAX_TIME = 2 ** 53 - 1;

const T_NULL = 0;
const T_FALSE = 1;
const T_TRUE = 2;
const T_UINT = 3;
const T_NINT = 4;
const T_FLOAT = 5;
const T_STRING = 6;
const T_BYTES = 7;
const T_ARRAY = 8;
const T_OBJECT = 9;
const T_ATTACHMENT = 10;

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

// ---------------------------------------------------------------- encoding

class Columns {
  readonly kids = new RleWriter();
  readonly shape = new RleWriter();
  readonly key = new RleWriter();
  readonly peer = new RleWriter();
  readonly time = new RleWriter(true);
  readonly misc = new RleWriter();
  readonly tag = new RleWriter();
  readonly keys = new ByteWriter(64);
  readonly data = new ByteWriter(64);
  readonly scratch = new ByteWriter(256);
  lastTime = 0;

  reset(): void {
    for (const c of [this.kids, this.shape, this.key, this.peer, this.time, this.misc, this.tag])
      c.reset();
    this.keys.reset();
    this.data.reset();
    this.lastTime = 0;
  }

  writeTo(out: ByteWriter): void {
    for (const c of [this.kids, this.shape, this.key, this.peer, this.time, this.misc, this.tag])
      c.writeTo(out, this.scratch);
    out.varint(this.keys.pos);
    out.bytes(this.keys.finish());
    out.varint(this.data.pos);
    out.bytes(this.data.finish());
  }
}

class Encoder {
  readonly c = new Columns();
  #peerIndex = new Map<string, number>();

  /** Starts a message (encoders are reused: encoding is synchronous and not re-entrant). */
  reset(peerIndex: Map<string, number>): void {
    this.c.reset();
    this.#peerIndex = peerIndex;
  }

  dot(peer: string, time: number): void {
    this.c.peer.push(this.#peerIndex.get(peer) as number);
    this.c.time.push(time - this.c.lastTime);
    this.c.lastTime = time;
  }

  vv(m: VersionVector): void {
    const ps = m.size < 2 ? [...m.keys()] : [...m.keys()].sort();
    this.c.misc.push(ps.length);
    for (const p of ps) this.dot(p, m.get(p) as number);
  }

  number(v: number): void {
    const c = this.c;
    if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
      if (v >= 0) {
        c.tag.push(T_UINT);
        c.data.varint(v);
      } else {
        c.tag.push(T_NINT);
        c.data.varint(-v - 1);
      }
      return;
    }
    c.tag.push(T_FLOAT);
    f64[0] = v;
    c.data.bytes(f64Bytes);
  }

  value(v: Value): void {
    const c = this.c;
    if (v === null) return c.tag.push(T_NULL);
    switch (typeof v) {
      case 'boolean':
        return c.tag.push(v ? T_TRUE : T_FALSE);
      case 'number':
        return this.number(v);
      case 'string':
        c.tag.push(T_STRING);
        return c.data.string(v);
    }
    if (v instanceof Uint8Array) {
      c.tag.push(T_BYTES);
      c.data.varint(v.length);
      return c.data.bytes(v);
    }
    if (Array.isArray(v)) {
      c.tag.push(T_ARRAY);
      c.data.varint(v.length);
      for (const item of v as readonly Value[]) this.value(item);
      return;
    }
    const obj = v as Readonly<Record<string, Value>>;
    const keys = Object.keys(obj).sort();
    c.tag.push(T_OBJECT);
    c.data.varint(keys.length);
    for (const k of keys) {
      c.data.string(k);
      this.value(obj[k] as Value);
    }
  }

  regEntry(e: RegEntry): void {
    this.dot(e.peer, e.time);
    if (e.attachment) this.c.tag.push(T_ATTACHMENT);
    this.value(e.value);
  }

  slot(s: Slot): void {
    const c = this.c;
    // An inline register entry is a sorted list of one: only a real list is sorted (copied).
    const reg = s.reg === undefined || isRegList(s.reg) ? sorted(s.reg, byPeer) : s.reg;
    const mdots = sorted(s.mdots, byPeer);
    const ctr = sorted(s.ctr, byCounter);
    const rst = sorted(s.rst, byPeer);
    const clr = sorted(s.clr, byDot);
    // The default sort orders strings by UTF-16 code units, like `<`.
    const keys = s.kids === undefined || s.kids.size === 0 ? undefined : [...s.kids.keys()].sort();
    c.kids.push(keys === undefined ? 0 : keys.length);
    const counts = [
      reg === undefined ? 0 : isRegList(reg) ? reg.length : 1,
      mdots?.length ?? 0,
      ctr?.length ?? 0,
      rst?.length ?? 0,
      clr?.length ?? 0,
    ];
    let shape = 0;
    for (let k = 0; k < 5; k++) shape += Math.min(counts[k] as number, 3) << (2 * k);
    c.shape.push(shape);
    for (const n of counts) if (n >= 3) c.misc.push(n - 3);
    if (reg !== undefined) {
      if (isRegList(reg)) for (const e of reg) this.regEntry(e);
      else this.regEntry(reg);
    }
    if (mdots !== undefined) for (const e of mdots) this.dot(e.peer, e.time);
    if (ctr !== undefined)
      for (const e of ctr) {
        this.dot(e.peer, e.time);
        this.number(e.sum);
        if (e.epochTime < 0) c.misc.push(0);
        else {
          c.misc.push((this.#peerIndex.get(e.epochPeer) as number) + 1);
          c.time.push(e.epochTime - c.lastTime);
          c.lastTime = e.epochTime;
        }
      }
    if (rst !== undefined)
      for (const e of rst) {
        this.dot(e.peer, e.time);
        this.number(e.value);
      }
    if (clr !== undefined)
      for (const e of clr) {
        this.dot(e.peer, e.time);
        this.vv(e.ctx);
      }
    if (keys === undefined) return;
    let prev = '';
    for (const k of keys) {
      const p = sharedPrefix(prev, k);
      const n = c.keys.utf8(p === 0 ? k : k.slice(p));
      c.key.push(p * 16 + Math.min(n, 15));
      if (n >= 15) c.misc.push(n - 15);
      this.slot(s.kids?.get(k) as Slot);
      prev = k;
    }
  }
}

/**
 * The front-coding prefix of `k` after `prev`: their longest common prefix, shortened by one
 * when it would split a surrogate pair (the suffix is encoded as UTF-8 on its own).
 */
function sharedPrefix(prev: string, k: string): number {
  let p = 0;
  const max = Math.min(prev.length, k.length);
  while (p < max && prev.charCodeAt(p) === k.charCodeAt(p)) p++;
  if (p > 0 && p < k.length) {
    const c = k.charCodeAt(p - 1);
    if (c >= 0xd800 && c < 0xdc00) p--;
  }
  return p;
}

/** `list` sorted (a copy; a list of one is returned as is). */
function sorted<T>(
  list: readonly T[] | undefined,
  by: (a: T, b: T) => number,
): readonly T[] | undefined {
  if (list === undefined || list.length < 2) return list;
  return [...list].sort(by);
}

const byPeer = (a: { peer: string }, b: { peer: string }): number => compareStrings(a.peer, b.peer);
const byDot = (a: { peer: string; time: number }, b: { peer: string; time: number }): number =>
  compareStrings(a.peer, b.peer) || a.time - b.time;
const byCounter = (a: CtrEntry, b: CtrEntry): number =>
  compareStrings(a.peer, b.peer) ||
  compareStrings(a.epochPeer, b.epochPeer) ||
  a.epochTime - b.epochTime;

function collectPeers(s: Slot, out: Set<string>): void {
  const reg = s.reg;
  if (reg !== undefined) {
    if (isRegList(reg)) for (const e of reg) out.add(e.peer);
    else out.add(reg.peer);
  }
  if (s.mdots !== undefined) for (const e of s.mdots) out.add(e.peer);
  if (s.ctr !== undefined)
    for (const e of s.ctr) {
      out.add(e.peer);
      if (e.epochTime >= 0) out.add(e.epochPeer);
    }
  if (s.rst !== undefined) for (const e of s.rst) out.add(e.peer);
  if (s.clr !== undefined)
    for (const e of s.clr) {
      out.add(e.peer);
      for (const p of e.ctx.keys()) out.add(p);
    }
  if (s.kids !== undefined) for (const kid of s.kids.values()) collectPeers(kid, out);
}

const encoder = new Encoder();
const bodyWriter = new ByteWriter(1024);

/** Encodes a delta (or a full state: `doc.snapshot()`); see the module docs for the format. */
export function encodeDelta(delta: DocDelta): Uint8Array {
  const all = new Set<string>();
  for (const p of delta.since.keys()) all.add(p);
  for (const p of delta.versionVector.keys()) all.add(p);
  collectPeers(delta.root, all);
  const peers = [...all].sort();
  const index = new Map<string, number>();
  peers.forEach((p, i) => index.set(p, i));

  const enc = encoder;
  enc.reset(index);
  enc.vv(delta.since);
  enc.vv(delta.versionVector);
  enc.slot(delta.root);

  const body = bodyWriter;
  body.reset();
  const id = encodeDocId(delta.id);
  body.varint(id.length);
  body.bytes(id);
  body.varint(peers.length);
  for (const p of peers) body.string(p);
  enc.c.writeTo(body);
  const bytes = body.finish();
  if (bytes.length < DEFLATE_FROM_BYTES) {
    const out = new Uint8Array(bytes.length + 1);
    out[0] = VERSION;
    out.set(bytes, 1);
    return out;
  }
  const packed = deflateRawSync(bytes);
  const out = new ByteWriter(packed.length + 10);
  out.byte(VERSION | DEFLATED);
  out.varint(bytes.length);
  out.bytes(packed);
  return out.finish().slice();
}

// ---------------------------------------------------------------- decoding

const EMPTY = new Uint8Array(0);
const NO_PEERS: readonly PeerId[] = [];

/** Moves `r` past the next column (a varint length, then the bytes); returns where it starts. */
function skipColumn(r: ByteReader): number {
  const n = r.varint();
  if (n > r.end - r.pos) bad('column longer than the message');
  r.pos += n;
  return r.pos - n;
}

/**
 * Reads the columns of one message. One instance is reused by every decode (decoding is
 * synchronous and not re-entrant), so a small message allocates only what it decodes: no column
 * readers, no flag arrays.
 */
class Decoder {
  readonly kids = new RleReader(EMPTY, 0, 0);
  readonly shape = new RleReader(EMPTY, 0, 0);
  readonly key = new RleReader(EMPTY, 0, 0);
  readonly peer = new RleReader(EMPTY, 0, 0);
  readonly time = new RleReader(EMPTY, 0, 0, true);
  readonly misc = new RleReader(EMPTY, 0, 0);
  readonly tag = new RleReader(EMPTY, 0, 0);
  readonly keys = new ByteReader(EMPTY, 0, 0);
  readonly data = new ByteReader(EMPTY, 0, 0);
  peers: readonly PeerId[] = NO_PEERS;
  /** Per peer index, whether it was referenced (only the first `peers.length` count). */
  used = new Uint8Array(64);
  /** How many distinct peers were referenced (every one must be). */
  usedCount = 0;
  lastTime = 0;
  entries = 0;
  /**
   * The size estimate of what was decoded (`slotBytes` of the tree), summed while each entry is
   * at hand: a merge needs it, and a walk of a large decoded tree afterwards is a cache miss per
   * slot and entry.
   */
  bytes = 0;
  /** Whether the tree has no clear and no empty slot (see `adoptableBytes`). */
  adoptable = true;
  readonly #columns = [
    this.kids,
    this.shape,
    this.key,
    this.peer,
    this.time,
    this.misc,
    this.tag,
    this.keys,
    this.data,
  ];

  /** Drops the references to the last message (the readers are kept for the next one). */
  release(): void {
    for (const col of this.#columns) col.reset(EMPTY, 0, 0);
    this.peers = NO_PEERS;
  }

  /** Throws unless `n` more entries stay within the limit (checked before allocating for them). */
  room(n: number): void {
    if (n > CODEC_LIMITS.maxEntries - this.entries) bad('too many entries');
  }

  /** Starts a message: `r` is at the first column. */
  begin(r: ByteReader, peers: readonly PeerId[]): void {
    this.peers = peers;
    if (this.used.length < peers.length) this.used = new Uint8Array(peers.length);
    else this.used.fill(0, 0, peers.length);
    this.usedCount = 0;
    this.lastTime = 0;
    this.entries = 0;
    this.bytes = 0;
    this.adoptable = true;
    for (const col of this.#columns) {
      const start = skipColumn(r);
      col.reset(r.buf, start, r.pos);
    }
    if (!r.done) bad('bytes after the last column');
  }

  count(): void {
    if (++this.entries > CODEC_LIMITS.maxEntries) bad('too many entries');
  }

  peerIndex(): number {
    const i = this.peer.next();
    if (i >= this.peers.length) bad('peer index out of range');
    this.markUsed(i);
    return i;
  }

  markUsed(i: number): void {
    if (this.used[i] === 0) {
      this.used[i] = 1;
      this.usedCount++;
    }
  }

  nextTime(): number {
    const t = this.lastTime + this.time.next();
    if (t < 0 || t > MAX_TIME) bad('time out of range');
    this.lastTime = t;
    return t;
  }

  vv(): Map<PeerId, number> {
    const n = this.misc.next();
    const m = new Map<PeerId, number>();
    let last = -1;
    for (let i = 0; i < n; i++) {
      this.count();
      const p = this.peerIndex();
      if (p <= last) bad('version vector not sorted by peer');
      last = p;
      m.set(this.peers[p] as PeerId, this.nextTime());
    }
    return m;
  }

  number(t: number = this.tag.next()): number {
    const d = this.data;
    if (t === T_UINT) return d.varint();
    if (t === T_NINT) {
      const m = d.varint();
      if (m >= Number.MAX_SAFE_INTEGER) bad('integer out of range');
      return -m - 1;
    }
    if (t === T_FLOAT) {
      if (d.end - d.pos < 8) bad('truncated float');
      for (let i = 0; i < 8; i++) f64Bytes[i] = d.buf[d.pos + i] as number;
      d.pos += 8;
      const v = f64[0] as number;
      if (!Number.isFinite(v)) bad('non-finite number');
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) bad('integer stored as float');
      return v;
    }
    return bad('expected a number');
  }

  value(depth: number, t: number = this.tag.next()): Value {
    if (depth > MAX_VALUE_DEPTH) bad('value too deep');
    this.count();
    const d = this.data;
    switch (t) {
      case T_NULL:
        return null;
      case T_FALSE:
        return false;
      case T_TRUE:
        return true;
      case T_UINT:
      case T_NINT:
      case T_FLOAT:
        return this.number(t);
      case T_STRING:
        return d.string();
      case T_BYTES:
        return Uint8Array.from(d.bytes(d.varint()));
      case T_ARRAY: {
        const n = d.varint();
        if (n > CODEC_LIMITS.maxEntries - this.entries) bad('too many entries');
        const out: Value[] = [];
        for (let i = 0; i < n; i++) out.push(this.value(depth + 1));
        return out;
      }
      case T_OBJECT: {
        const n = d.varint();
        if (n > CODEC_LIMITS.maxEntries - this.entries) bad('too many entries');
        const o: Record<string, Value> = {};
        let prev: string | undefined;
        for (let i = 0; i < n; i++) {
          const k = d.string();
          if (prev !== undefined && !(prev < k)) bad('object keys not sorted');
          prev = k;
          Object.defineProperty(o, k, {
            value: this.value(depth + 1),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        return o;
      }
      default:
        return bad('unknown value tag');
    }
  }

  slot(depth: number): Slot {
    const s = new Slot();
    const kidCount = this.entriesOf(s, depth);
    if (kidCount > 0) this.kidsOf(s, kidCount, depth);
    return s;
  }

  /** Reads the `n` children of `s` (at field depth `depth`), which follow its entries. */
  kidsOf(s: Slot, n: number, depth: number): void {
    const kids = new Map<string, Slot>();
    let prev = '';
    for (let i = 0; i < n; i++) {
      const k = this.childKey(i, prev);
      kids.set(k, this.slot(depth + 1));
      this.bytes += k.length + 2;
      prev = k;
    }
    s.kids = kids;
  }

  /**
   * Reads a slot's entries into `s` (at field depth `depth`); returns its number of children,
   * which follow (each a {@link Decoder.childKey} and a {@link Decoder.slot}).
   */
  entriesOf(s: Slot, depth: number): number {
    if (depth > CODEC_LIMITS.maxDepth) bad('fields nested too deep');
    this.count();
    const kidCount = this.kids.next();
    const shape = this.shape.next();
    if (shape >= 1024) bad('bad slot shape');
    let nReg = shape & 3;
    let nDot = (shape >> 2) & 3;
    let nCtr = (shape >> 4) & 3;
    let nRst = (shape >> 6) & 3;
    let nClr = shape >> 8;
    if (nReg === 3) nReg += this.misc.next();
    if (nDot === 3) nDot += this.misc.next();
    if (nCtr === 3) nCtr += this.misc.next();
    if (nRst === 3) nRst += this.misc.next();
    if (nClr === 3) nClr += this.misc.next();
    if (nClr > 0 || (nReg === 0 && nDot === 0 && nCtr === 0 && nRst === 0 && kidCount === 0))
      this.adoptable = false;
    const peers = this.peers;
    if (nReg > 0) {
      this.room(nReg);
      // One entry (nearly every field) is stored inline, without a list.
      const list = nReg > 1 ? new Array<RegEntry>(nReg) : undefined;
      let last = -1;
      for (let i = 0; i < nReg; i++) {
        this.count();
        const p = this.peerIndex();
        if (p <= last) bad('register entries not sorted by peer');
        last = p;
        const time = this.nextTime();
        const t = this.tag.next();
        const attachment = t === T_ATTACHMENT;
        const value = attachment ? this.value(0) : this.value(0, t);
        const e: RegEntry = { peer: peers[p] as PeerId, time, value, attachment };
        this.bytes += regBytes(e);
        if (list === undefined) s.reg = e;
        else list[i] = e;
      }
      if (list !== undefined) s.reg = list;
    }
    if (nDot > 0) {
      this.room(nDot);
      const list = new Array<DotEntry>(nDot);
      let last = -1;
      for (let i = 0; i < nDot; i++) {
        this.count();
        const p = this.peerIndex();
        if (p <= last) bad('map dots not sorted by peer');
        last = p;
        list[i] = { peer: peers[p] as PeerId, time: this.nextTime() };
      }
      s.mdots = list;
      this.bytes += nDot * DOT_BYTES;
    }
    if (nCtr > 0) {
      this.room(nCtr);
      const list = new Array<CtrEntry>(nCtr);
      let lastP = -1;
      let lastE = -1;
      let lastET = -1;
      for (let i = 0; i < nCtr; i++) {
        this.count();
        const p = this.peerIndex();
        const time = this.nextTime();
        const sum = this.number();
        const e = this.misc.next();
        let epochTime = -1;
        if (e > 0) {
          if (e - 1 >= peers.length) bad('peer index out of range');
          this.markUsed(e - 1);
          epochTime = this.nextTime();
        }
        if (!(p > lastP || (p === lastP && (e > lastE || (e === lastE && epochTime > lastET)))))
          bad('counter entries not sorted');
        lastP = p;
        lastE = e;
        lastET = epochTime;
        list[i] = {
          peer: peers[p] as PeerId,
          time,
          sum,
          epochPeer: e === 0 ? '' : (peers[e - 1] as PeerId),
          epochTime,
        };
      }
      s.ctr = list;
      this.bytes += nCtr * 3 * DOT_BYTES;
    }
    if (nRst > 0) {
      this.room(nRst);
      const list = new Array<RestartEntry>(nRst);
      let last = -1;
      for (let i = 0; i < nRst; i++) {
        this.count();
        const p = this.peerIndex();
        if (p <= last) bad('restarts not sorted by peer');
        last = p;
        const time = this.nextTime();
        list[i] = { peer: peers[p] as PeerId, time, value: this.number() };
      }
      s.rst = list;
      this.bytes += nRst * 2 * DOT_BYTES;
    }
    if (nClr > 0) {
      this.room(nClr);
      const list = new Array<Clear>(nClr);
      let lastP = -1;
      let lastT = -1;
      for (let i = 0; i < nClr; i++) {
        this.count();
        const p = this.peerIndex();
        const time = this.nextTime();
        if (!(p > lastP || (p === lastP && time > lastT))) bad('clears not sorted');
        lastP = p;
        lastT = time;
        const c: Clear = { peer: peers[p] as PeerId, time, ctx: this.vv() };
        this.bytes += clearBytes(c);
        list[i] = c;
      }
      s.clr = list;
    }
    return kidCount;
  }

  /** The key of child `i` of a slot; `prev` is the key of child `i − 1` (ignored for the first). */
  childKey(i: number, prev: string): string {
    const packed = this.key.next();
    const prefix = Math.floor(packed / 16);
    let n = packed % 16;
    if (n === 15) n += this.misc.next();
    if (prefix > prev.length || (i === 0 && prefix !== 0)) bad('key prefix out of range');
    const k = prefix === 0 ? this.keys.utf8(n) : this.keys.utf8After(prev, prefix, n);
    if (i > 0) {
      if (!(prev < k)) bad('fields not sorted');
      if (sharedPrefix(prev, k) !== prefix) bad('key prefix not canonical');
    }
    return k;
  }

  /** Checks that every column was consumed and every peer referenced. */
  end(): void {
    this.kids.finish();
    this.shape.finish();
    this.key.finish();
    this.peer.finish();
    this.time.finish();
    this.misc.finish();
    this.tag.finish();
    if (!this.keys.done || !this.data.done) bad('column has unread bytes');
    if (this.usedCount !== this.peers.length) bad('unreferenced peer id');
  }
}

const decoder = new Decoder();

/**
 * Decoded peer ids, interned: the same peer decoded from many messages is one string, so the
 * document compares entries' peers by reference and version-vector lookups reuse its hash.
 * Bounded; dropped when full.
 */
const peerIds = new Map<string, PeerId>();
const MAX_INTERNED_PEERS = 4096;

function internPeer(p: string): PeerId {
  const known = peerIds.get(p);
  if (known !== undefined) return known;
  if (peerIds.size >= MAX_INTERNED_PEERS) peerIds.clear();
  peerIds.set(p, p as PeerId);
  return p as PeerId;
}

/** The last decoded string or number `_id` (deltas of one document tend to arrive in a row). */
let lastId: { bytes: Uint8Array; id: string | number } | undefined;

function docIdOf(buf: Uint8Array, start: number, length: number): DocId {
  const last = lastId;
  if (last !== undefined && last.bytes.length === length) {
    let i = 0;
    while (i < length && last.bytes[i] === buf[start + i]) i++;
    if (i === length) return last.id;
  }
  const bytes = buf.subarray(start, start + length);
  const id = decodeDocId(bytes);
  // Object ids are not cached: each delta gets its own (mutable) object.
  if (typeof id !== 'object') lastId = { bytes: bytes.slice(), id };
  return id;
}

/**
 * Decodes a delta or full state.
 * @throws `CRDT_DECODE` for bytes that are not a canonical encoding or break a limit in
 * {@link CODEC_LIMITS}.
 */
export function decodeDelta(bytes: Uint8Array): DocDelta {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decodeDelta takes a Uint8Array');
  const r = openBody(bytes);
  const id = readId(r);
  const peers = readPeers(r);
  const d = decoder;
  try {
    d.begin(r, peers);
    const since = d.vv();
    const vv = d.vv();
    const root = d.slot(0);
    d.end();
    return DocDelta._decoded(id, since, vv, root, d.bytes, d.adoptable);
  } finally {
    d.release();
  }
}

/** Checks a message's size and format version and inflates its body: a reader at the `_id`. */
function openBody(bytes: Uint8Array): ByteReader {
  if (bytes.length > CODEC_LIMITS.maxBytes)
    throw crdtError(
      'CRDT_DECODE',
      `message of ${bytes.length} bytes exceeds ${CODEC_LIMITS.maxBytes}`,
    );
  const head = new ByteReader(bytes);
  const version = head.byte();
  let r: ByteReader;
  if (version === VERSION) {
    r = new ByteReader(bytes, 1);
  } else if (version === (VERSION | DEFLATED)) {
    const n = head.varint();
    if (n < DEFLATE_FROM_BYTES) bad('small body must not be deflated');
    if (n > CODEC_LIMITS.maxBytes) bad('inflated body too large');
    let body: Uint8Array;
    try {
      body = inflateRawSync(bytes.subarray(head.pos), { maxOutputLength: n + 1 });
    } catch (cause) {
      throw crdtError('CRDT_DECODE', 'invalid encoding: bad deflate stream', undefined, cause);
    }
    if (body.length !== n) bad('inflated length mismatch');
    r = new ByteReader(body);
  } else {
    return bad(`unknown format ${version}`);
  }
  return r;
}

/** Reads the `_id` of a message. */
function readId(r: ByteReader): DocId {
  const idLength = r.varint();
  if (idLength > r.end - r.pos) bad('truncated _id');
  const id = docIdOf(r.buf, r.pos, idLength);
  r.pos += idLength;
  return id;
}

/**
 * The top-level fields of the message being decoded, one at a time: what {@link mergeEncoded}
 * gives `CrdtDocument._mergeFields`. One instance (the decoder is one too).
 */
class FieldReader implements FieldSource {
  key = '';
  slot: Slot = NO_SLOT;
  #n = 0;
  #i = 0;

  get count(): number {
    // Each field after the first adds at least one byte of key suffix (keys are distinct), so a
    // message cannot claim more fields than that without failing: a bound on what is allocated
    // ahead for them, whatever the claimed count.
    const keyBytes = decoder.keys.end - decoder.keys.pos;
    return Math.min(this.#n - this.#i, keyBytes + 1);
  }

  reset(n: number): void {
    this.#n = n;
    this.#i = 0;
    this.key = '';
    this.slot = NO_SLOT;
  }

  next(): boolean {
    if (this.#i >= this.#n) {
      // Holds no field after the last one (this reader outlives the message).
      this.key = '';
      this.slot = NO_SLOT;
      return false;
    }
    const k = decoder.childKey(this.#i, this.key);
    this.slot = decoder.slot(1);
    this.key = k;
    this.#i++;
    return true;
  }

  end(): void {
    decoder.end();
  }
}

const NO_SLOT = new Slot();
const fieldReader = new FieldReader();

/**
 * Merges an encoded delta or full state into `doc`: the same result, errors and clock effect as
 * `doc.merge(decodeDelta(bytes), options)`, decoding and merging one top-level field at a time.
 * @remarks The decoded state is never built as a whole: each incoming field is merged as soon as
 * it is read, and what the document does not keep of it (its slot, its key string) is garbage at
 * once. A large message decoded first keeps every decoded field alive until the merge ends, so
 * young-generation collections during the decode and the merge copy all of it (most of the cost
 * of merging a 100k-field state); streamed, they copy only what the document keeps. The merge
 * records what it changes as it goes and puts it back when the message turns out to be invalid
 * (`CRDT_DECODE`), the clock refuses its times (`CRDT_CLOCK_DRIFT`) or the result is too large
 * (`CRDT_DOC_TOO_LARGE`), so a failed merge changes nothing. A message that clears the root (a
 * delete), one into a document without fields (a load) and one for another document take
 * `merge` of the decoded message instead (decoded once).
 * @throws as `decodeDelta` and {@link CrdtDocument.merge}.
 */
export function mergeEncoded(
  doc: CrdtDocument,
  bytes: Uint8Array,
  options: { readonly clock?: HybridClock } = {},
): MergeResult {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('mergeEncoded takes a Uint8Array');
  const r = openBody(bytes);
  const id = readId(r);
  const peers = readPeers(r);
  const d = decoder;
  try {
    d.begin(r, peers);
    const since = d.vv();
    const vv = d.vv();
    const root = new Slot();
    const n = d.entriesOf(root, 0);
    if (!doc._canMergeFields(id, root)) {
      if (n > 0) d.kidsOf(root, n, 0);
      d.end();
      const delta = DocDelta._decoded(id, since, vv, root, d.bytes, d.adoptable);
      d.release();
      return doc.merge(delta, options);
    }
    fieldReader.reset(n);
    return doc._mergeFields(since, vv, root, fieldReader, options.clock);
  } finally {
    fieldReader.reset(0);
    d.release();
  }
}

/** The peer table of the last message and its bytes: deltas from one sender repeat it. */
let lastPeers: { bytes: Uint8Array; peers: readonly PeerId[] } | undefined;

/** Reads the peer table (interned ids); a table equal byte for byte to the last one is reused. */
function readPeers(r: ByteReader): readonly PeerId[] {
  const start = r.pos;
  const last = lastPeers;
  if (last !== undefined && last.bytes.length <= r.end - start) {
    // The table is self-delimiting (a count, then length-prefixed ids), so equal leading bytes
    // are an equal table.
    let i = 0;
    while (i < last.bytes.length && last.bytes[i] === r.buf[start + i]) i++;
    if (i === last.bytes.length) {
      r.pos += i;
      return last.peers;
    }
  }
  const n = r.varint();
  if (n > CODEC_LIMITS.maxPeers) bad('too many peers');
  const peers: PeerId[] = [];
  for (let i = 0; i < n; i++) {
    const p = r.string();
    if (p.length === 0 || p.length > MAX_PEER_ID_LENGTH) bad('bad peer id');
    if (i > 0 && !((peers[i - 1] as string) < p)) bad('peer ids not sorted');
    peers.push(internPeer(p));
  }
  if (r.pos - start <= 1024) lastPeers = { bytes: r.buf.slice(start, r.pos), peers };
  return peers;
}

// ---------------------------------------------------------------- documents

/** Encodes a document's full state: `encodeDelta(doc.snapshot())`. */
export function encodeDocument(doc: CrdtDocument): Uint8Array {
  return encodeDelta(doc.snapshot());
}

/**
 * Decodes a full state (or any delta) into a new document: the same document as
 * `CrdtDocument.fromDelta(decodeDelta(bytes))`, without building the state twice.
 * @throws `CRDT_DECODE` as {@link decodeDelta}; `CRDT_DOC_TOO_LARGE` above the size limit.
 */
export function decodeDocument(bytes: Uint8Array): CrdtDocument {
  return CrdtDocument._adopt(decodeDelta(bytes));
}

// ---------------------------------------------------------------- version vectors

/** Encodes a version vector (what a peer sends to ask for a delta); see the module docs. */
export function encodeVersionVector(vv: VersionVector): Uint8Array {
  const ps = [...vv.keys()].sort(compareStrings);
  const w = new ByteWriter(16 + ps.length * 16);
  w.varint(ps.length);
  for (const p of ps) w.string(p);
  let last = 0;
  for (const p of ps) {
    const t = vv.get(p) as number;
    w.svarint(t - last);
    last = t;
  }
  return w.finish().slice();
}

/**
 * Decodes a version vector.
 * @throws `CRDT_DECODE` for bytes that are not a canonical encoding.
 */
export function decodeVersionVector(bytes: Uint8Array): VersionVector {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decodeVersionVector takes a Uint8Array');
  if (bytes.length > CODEC_LIMITS.maxBytes) bad('version vector too large');
  const r = new ByteReader(bytes);
  const n = r.varint();
  if (n > CODEC_LIMITS.maxPeers) bad('too many peers');
  const peers: PeerId[] = [];
  for (let i = 0; i < n; i++) {
    const p = r.string();
    if (p.length === 0 || p.length > MAX_PEER_ID_LENGTH) bad('bad peer id');
    if (i > 0 && !((peers[i - 1] as string) < p)) bad('peer ids not sorted');
    peers.push(p as PeerId);
  }
  const out = new Map<PeerId, number>();
  let last = 0;
  for (const p of peers) {
    const t = last + r.svarint();
    if (t < 0 || t > MAX_TIME) bad('time out of range');
    out.set(p, t);
    last = t;
  }
  if (!r.done) bad('bytes after the version vector');
  return out;
}
