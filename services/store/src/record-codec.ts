/**
 * The document record (`DocRecord`, the value under a document's `D` key), encoded and decoded
 * by hand as the protobuf message of `proto/lattice/v1/store.proto`:
 *
 * ```
 * 0x08 seq(varint)                          field 1, seq (uint64)
 * 0x12 len state                            field 2, the CRDT state (bytes)
 * 0x1a len VersionEntry                     field 3, once per peer, by peer:
 *          0x0a len peer(UTF-8)               field 1, peer (string; omitted when empty)
 *          0x10 counter(varint)               field 2, counter (uint64; omitted when 0)
 * 0x20 deletedAtMs(varint)                  field 4 (omitted when 0)
 * 0x28 0x01                                 field 5, tombstone (omitted when false)
 * ```
 *
 * @remarks
 * Both directions run once per document: the encoder per written document (protobufjs' writer
 * allocated a tree of operations for these few bytes), the decoder per document read (protobufjs
 * allocated a message, its version entries and a reader). Bytes the decoder does not expect (an
 * unknown field, another wire type, a number past 2^53, a truncated field, a peer that is not
 * ASCII) go to protobufjs, so both decoders accept and reject the same records.
 */
import type { PeerId, VersionVector } from '@lattice/crdt';
import { v1 } from '@lattice/proto';

/** A decoded {@link v1.DocRecord}. */
export interface DecodedRecord {
  readonly seq: number;
  /** A view into the record bytes. */
  readonly state: Uint8Array;
  readonly versionVector: VersionVector;
  readonly deletedAtMs: number;
  readonly tombstone: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * The `DocRecord` fields after `state` (fields 3, 4 and 5, the last two only when set).
 * @remarks Written once per document per commit, before its seq is known; see
 * {@link encodeRecord}.
 */
export function encodeRecordTail(
  vv: VersionVector,
  deletedAt: number,
  tombstone: boolean,
): Uint8Array {
  const peers = vv.size === 1 ? [...vv.keys()] : [...vv.keys()].sort(comparePeers);
  let len = 0;
  const sizes: number[] = [];
  for (const peer of peers) {
    const counter = vv.get(peer) ?? 0;
    if (!Number.isSafeInteger(counter) || counter < 0) {
      // Not a counter this encoder writes: leave it to protobufjs, as before.
      return v1.DocRecord.encode({
        versionVector: peers.map((p) => ({ peer: p, counter: vv.get(p) ?? 0 })),
        deletedAtMs: deletedAt,
        tombstone,
      }).finish();
    }
    const p = Buffer.byteLength(peer, 'utf8');
    const entry =
      (p > 0 ? 1 + varintLength(p) + p : 0) + (counter > 0 ? 1 + varintLength(counter) : 0);
    sizes.push(p, entry);
    len += 1 + varintLength(entry) + entry;
  }
  if (deletedAt > 0) len += 1 + varintLength(deletedAt);
  if (tombstone) len += 2;
  const out = Buffer.allocUnsafe(len);
  let at = 0;
  peers.forEach((peer, i) => {
    const p = sizes[2 * i] as number;
    const counter = vv.get(peer) ?? 0;
    out[at++] = 0x1a;
    at = writeVarint(out, at, sizes[2 * i + 1] as number);
    if (p > 0) {
      out[at++] = 0x0a;
      at = writeVarint(out, at, p);
      at += out.write(peer, at, 'utf8');
    }
    if (counter > 0) {
      out[at++] = 0x10;
      at = writeVarint(out, at, counter);
    }
  });
  if (deletedAt > 0) {
    out[at++] = 0x20;
    at = writeVarint(out, at, deletedAt);
  }
  if (tombstone) {
    out[at++] = 0x28;
    out[at++] = 1;
  }
  return out;
}

function comparePeers(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A whole record in one allocation: `seq`, `state`, then `tail` (from {@link encodeRecordTail}).
 * @remarks Commits know a document's seq only when their group is staged, long after the record
 * was sized; this writes the 1 KB-and-up state once instead of encoding it and copying it again.
 */
export function encodeRecord(seq: number, state: Uint8Array, tail: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + varintLength(seq) + recordLength(state.length, tail.length));
  let at = 0;
  out[at++] = 0x08;
  at = writeVarint(out, at, seq);
  out[at++] = 0x12;
  at = writeVarint(out, at, state.length);
  out.set(state, at);
  out.set(tail, at + state.length);
  return out;
}

/** The bytes of a record's state field plus its tail (everything but `seq`). */
export function recordLength(stateLength: number, tailLength: number): number {
  return 1 + varintLength(stateLength) + stateLength + tailLength;
}

/**
 * Decodes a record (see the module comment).
 * @throws protobufjs' errors on bytes that are not a `DocRecord`.
 */
export function decodeRecord(b: Uint8Array): DecodedRecord {
  return decodeRecordFast(b) ?? fromMessage(v1.DocRecord.decode(b));
}

// The decoder's position in the bytes it reads (one decode at a time: it never yields).
let pos = 0;

/** The record, or undefined where the bytes need protobufjs (see the module comment). */
function decodeRecordFast(b: Uint8Array): DecodedRecord | undefined {
  let seq = 0;
  let state: Uint8Array = EMPTY;
  let deletedAtMs = 0;
  let tombstone = false;
  const vv = new Map<PeerId, number>();
  const end = b.length;
  pos = 0;
  while (pos < end) {
    const tag = b[pos++];
    if (tag === 0x12 || tag === 0x1a) {
      const len = readVarint(b);
      const next = pos + len;
      if (len < 0 || next > end) return undefined;
      if (tag === 0x12) state = b.subarray(pos, next);
      else if (!readVersionEntry(b, next, vv)) return undefined;
      pos = next;
    } else if (tag === 0x08 || tag === 0x20 || tag === 0x28) {
      const n = readVarint(b);
      if (n < 0) return undefined;
      if (tag === 0x08) seq = n;
      else if (tag === 0x20) deletedAtMs = n;
      else tombstone = n !== 0;
    } else {
      return undefined;
    }
  }
  return { seq, state, versionVector: vv as VersionVector, deletedAtMs, tombstone };
}

/** One `VersionEntry` ending at `end` into `vv`; false where protobufjs must decode it. */
function readVersionEntry(b: Uint8Array, end: number, vv: Map<PeerId, number>): boolean {
  let peer = '';
  let counter = 0;
  while (pos < end) {
    const tag = b[pos++];
    if (tag === 0x0a) {
      const len = readVarint(b);
      if (len < 0 || pos + len > end) return false;
      const ascii = readAscii(b, pos, pos + len);
      if (ascii === undefined) return false;
      peer = ascii;
      pos += len;
    } else if (tag === 0x10) {
      counter = readVarint(b);
      if (counter < 0 || pos > end) return false;
    } else {
      return false;
    }
  }
  // Later entries of the same peer win, as they did through `new Map(entries)`.
  vv.set(peer as PeerId, counter);
  return true;
}

/**
 * A varint at `pos` (advancing it), or -1 where it is truncated or exceeds 2^53 - 1 (protobufjs
 * decides those).
 */
function readVarint(b: Uint8Array): number {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    const x = b[pos++];
    if (x === undefined) return -1;
    n += (x & 0x7f) * scale;
    if (x < 0x80) return n <= Number.MAX_SAFE_INTEGER ? n : -1;
    scale *= 0x80;
  }
  return -1;
}

/**
 * An ASCII string, or undefined for any other byte (protobufjs then decodes the record: its UTF-8
 * handling, errors included, stays the rule; peer ids are ASCII in practice).
 */
function readAscii(b: Uint8Array, start: number, end: number): string | undefined {
  let s = '';
  for (let i = start; i < end; i++) {
    const c = b[i] as number;
    if (c >= 0x80) return undefined;
    s += String.fromCharCode(c);
  }
  return s;
}

function fromMessage(rec: v1.DocRecord): DecodedRecord {
  return {
    seq: Number(rec.seq),
    state: rec.state,
    versionVector: new Map(
      rec.versionVector.map((e) => [e.peer ?? '', Number(e.counter ?? 0)]),
    ) as unknown as VersionVector,
    deletedAtMs: Number(rec.deletedAtMs),
    tombstone: rec.tombstone,
  };
}

/** Bytes of `n` as a varint. */
export function varintLength(n: number): number {
  let len = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) len++;
  return len;
}

/** Writes `n` as a varint at `at`; returns the position after it. */
export function writeVarint(out: Uint8Array, at: number, n: number): number {
  let v = n;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}
