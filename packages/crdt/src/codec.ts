/**
 * Encoding of documents and deltas as `lattice.v1.CrdtDocState` (proto/lattice/v1/crdt.proto).
 *
 * Wire format: protobuf. Peer ids are interned per message (`peers`, referenced by index); every
 * time is an offset from `base_time`, the smallest time in the message; safe integers travel as
 * zigzag varints. Fields are sorted by key and entries by (peer, time, …), so equal states encode
 * to equal bytes. The decoder bounds input size, nesting depth, and counts, validates every index
 * and time, and throws `CRDT_DECODE` for anything else.
 */
import { v1 } from '@lattice/proto';
import type { DocId } from './doc-id.js';
import { decodeDocId, encodeDocId } from './doc-id.js';
import { DocDelta, DOC_MAX_BYTES, MAX_FIELD_DEPTH } from './document.js';
import { crdtError } from './errors.js';
import type { PeerId } from './ids.js';
import { MAX_PEER_ID_LENGTH } from './ids.js';
import type { Clear, CtrEntry, DotEntry, RegEntry, RestartEntry, VersionVector } from './state.js';
import { Slot } from './state.js';
import type { Value } from './value.js';
import { MAX_VALUE_DEPTH } from './value.js';

/** Decoder limits. */
export const CODEC_LIMITS = {
  /** Largest accepted message, in bytes. */
  maxBytes: 2 * DOC_MAX_BYTES,
  /** Deepest field nesting (see `MAX_FIELD_DEPTH`). */
  maxDepth: MAX_FIELD_DEPTH,
  /** Most peers per message. */
  maxPeers: 65_536,
  /** Most entries (of all kinds) per message. */
  maxEntries: 2_000_000,
} as const;

const MAX_TIME = 2 ** 53 - 1;

class Interner {
  readonly ids: string[] = [];
  readonly #index = new Map<string, number>();
  of(p: string): number {
    let i = this.#index.get(p);
    if (i === undefined) {
      i = this.ids.length;
      this.ids.push(p);
      this.#index.set(p, i);
    }
    return i;
  }
}

const byDot = (a: { peer: string; time: number }, b: { peer: string; time: number }): number =>
  a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : a.time - b.time;

function valueToProto(v: Value): v1.CrdtValue.$Properties {
  if (v === null) return { nullValue: true };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number')
    return Number.isSafeInteger(v) && !Object.is(v, -0) ? { intValue: v } : { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (v instanceof Uint8Array) return { bytesValue: v };
  if (Array.isArray(v)) return { arrayValue: { items: (v as readonly Value[]).map(valueToProto) } };
  const obj = v as Readonly<Record<string, Value>>;
  return {
    objectValue: {
      fields: Object.keys(obj)
        .sort()
        .map((key) => ({ key, value: valueToProto(obj[key] as Value) })),
    },
  };
}

/** Encodes a delta (or a full state: `doc.snapshot()`). */
export function encodeDelta(delta: DocDelta): Uint8Array {
  const peers = new Interner();
  let base = Infinity;
  const seeTime = (t: number): void => {
    if (t < base) base = t;
  };
  const walk = (s: Slot): void => {
    for (const l of [s.reg, s.mdots, s.ctr, s.rst, s.clr])
      if (l) for (const e of l) seeTime(e.time);
    if (s.ctr) for (const e of s.ctr) if (e.epochTime >= 0) seeTime(e.epochTime);
    if (s.clr) for (const c of s.clr) for (const t of c.ctx.values()) seeTime(t);
    if (s.kids) for (const k of s.kids.values()) walk(k);
  };
  walk(delta.root);
  for (const t of delta.versionVector.values()) seeTime(t);
  for (const t of delta.since.values()) seeTime(t);
  if (base === Infinity) base = 0;
  // Intern in sorted order so equal states give equal bytes.
  const all = new Set<string>();
  const collect = (s: Slot): void => {
    for (const l of [s.reg, s.mdots, s.ctr, s.rst, s.clr])
      if (l) for (const e of l) all.add(e.peer);
    if (s.ctr) for (const e of s.ctr) if (e.epochPeer !== '') all.add(e.epochPeer);
    if (s.clr) for (const c of s.clr) for (const p of c.ctx.keys()) all.add(p);
    if (s.kids) for (const k of s.kids.values()) collect(k);
  };
  collect(delta.root);
  for (const p of delta.versionVector.keys()) all.add(p);
  for (const p of delta.since.keys()) all.add(p);
  for (const p of [...all].sort()) peers.of(p);

  const vv = (m: VersionVector): v1.CrdtClockEntry.$Properties[] =>
    [...m]
      .sort((a, b) => (a[0] < b[0] ? -1 : 1))
      .map(([p, t]) => ({ peer: peers.of(p), time: t - base }));
  const clear = (c: Clear): v1.CrdtClear.$Properties => ({
    peer: peers.of(c.peer),
    time: c.time - base,
    context: vv(c.ctx),
  });
  const slot = (key: string, s: Slot): v1.CrdtSlot.$Properties => ({
    key,
    registers: [...(s.reg ?? [])].sort(byDot).map((e) => ({
      peer: peers.of(e.peer),
      time: e.time - base,
      value: valueToProto(e.value),
      attachment: e.attachment,
    })),
    mapDots: [...(s.mdots ?? [])]
      .sort(byDot)
      .map((e) => ({ peer: peers.of(e.peer), time: e.time - base })),
    children:
      s.kids === undefined
        ? []
        : [...s.kids.keys()].sort().map((k) => slot(k, s.kids?.get(k) as Slot)),
    counterEntries: [...(s.ctr ?? [])]
      .sort(
        (a, b) =>
          byDot(a, b) ||
          (a.epochPeer < b.epochPeer
            ? -1
            : a.epochPeer > b.epochPeer
              ? 1
              : a.epochTime - b.epochTime),
      )
      .map((e) => ({
        peer: peers.of(e.peer),
        time: e.time - base,
        sum: e.sum,
        hasEpoch: e.epochTime >= 0,
        epochPeer: e.epochTime >= 0 ? peers.of(e.epochPeer) : 0,
        epochTime: e.epochTime >= 0 ? e.epochTime - base : 0,
      })),
    restarts: [...(s.rst ?? [])]
      .sort(byDot)
      .map((e) => ({ peer: peers.of(e.peer), time: e.time - base, value: e.value })),
    clears: [...(s.clr ?? [])].sort(byDot).map(clear),
  });
  const root = delta.root;
  return v1.CrdtDocState.encode({
    docId: encodeDocId(delta.id),
    peers: peers.ids,
    baseTime: base,
    versionVector: vv(delta.versionVector),
    since: vv(delta.since),
    fields:
      root.kids === undefined
        ? []
        : [...root.kids.keys()].sort().map((k) => slot(k, root.kids?.get(k) as Slot)),
    rootClears: [...(root.clr ?? [])].sort(byDot).map(clear),
  }).finish();
}

/**
 * Decodes a delta or full state.
 * @throws `CRDT_DECODE` for bytes that are not a valid message or break a limit in {@link CODEC_LIMITS}.
 */
export function decodeDelta(bytes: Uint8Array): DocDelta {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decodeDelta takes a Uint8Array');
  if (bytes.length > CODEC_LIMITS.maxBytes)
    throw crdtError(
      'CRDT_DECODE',
      `message of ${bytes.length} bytes exceeds ${CODEC_LIMITS.maxBytes}`,
    );
  let msg: v1.CrdtDocState;
  try {
    msg = v1.CrdtDocState.decode(bytes);
  } catch (cause) {
    throw crdtError(
      'CRDT_DECODE',
      `not a CrdtDocState: ${cause instanceof Error ? cause.message : String(cause)}`,
      undefined,
      cause,
    );
  }
  const bad = (what: string): never => {
    throw crdtError('CRDT_DECODE', `invalid CrdtDocState: ${what}`);
  };
  const id: DocId = decodeDocId(msg.docId ?? new Uint8Array());
  const peers = msg.peers ?? [];
  if (peers.length > CODEC_LIMITS.maxPeers) bad('too many peers');
  for (const p of peers)
    if (typeof p !== 'string' || p.length === 0 || p.length > MAX_PEER_ID_LENGTH)
      bad('bad peer id');
  if (new Set(peers).size !== peers.length) bad('duplicate peer id');
  const base = num(msg.baseTime);
  let entries = 0;
  const count = (): void => {
    if (++entries > CODEC_LIMITS.maxEntries) bad('too many entries');
  };
  const peer = (i: unknown): PeerId => {
    const p =
      typeof i === 'number' || i == null ? peers[(i as number | null | undefined) ?? 0] : undefined;
    if (p === undefined) return bad('peer index out of range');
    return p as PeerId;
  };
  const time = (t: unknown): number => {
    const v = base + num(t);
    if (!Number.isSafeInteger(v) || v < 0 || v > MAX_TIME) bad('time out of range');
    return v;
  };
  const vv = (
    list: readonly v1.CrdtClockEntry.$Properties[] | null | undefined,
  ): Map<PeerId, number> => {
    const m = new Map<PeerId, number>();
    for (const e of list ?? []) {
      count();
      const p = peer(e.peer);
      if (m.has(p)) bad('duplicate version vector entry');
      m.set(p, time(e.time));
    }
    return m;
  };
  const clear = (c: v1.CrdtClear.$Properties): Clear => {
    count();
    return { peer: peer(c.peer), time: time(c.time), ctx: vv(c.context) };
  };
  const value = (v: v1.CrdtValue.$Properties | null | undefined, depth: number): Value => {
    if (depth > MAX_VALUE_DEPTH) bad('value too deep');
    if (v == null) return bad('missing value');
    count();
    if (v.nullValue != null) return null;
    if (v.boolValue != null) return v.boolValue;
    if (v.numberValue != null) {
      if (!Number.isFinite(v.numberValue)) bad('non-finite number');
      return v.numberValue;
    }
    if (v.intValue != null) {
      const n = toNumber(v.intValue);
      if (!Number.isSafeInteger(n)) bad('integer out of range');
      return n;
    }
    if (v.stringValue != null) return v.stringValue;
    if (v.bytesValue != null) return Uint8Array.from(v.bytesValue);
    if (v.arrayValue != null) return (v.arrayValue.items ?? []).map((x) => value(x, depth + 1));
    if (v.objectValue != null) {
      const o: Record<string, Value> = {};
      for (const f of v.objectValue.fields ?? []) {
        const k = f.key ?? '';
        if (Object.hasOwn(o, k)) bad('duplicate object key');
        Object.defineProperty(o, k, {
          value: value(f.value, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return o;
    }
    return bad('empty value');
  };
  const perPeer = <T extends { peer: PeerId }>(
    list: T[],
    key: (e: T) => string,
  ): T[] | undefined => {
    if (list.length === 0) return undefined;
    const seen = new Set<string>();
    for (const e of list) {
      const k = key(e);
      if (seen.has(k)) bad('two entries for one peer');
      seen.add(k);
    }
    return list;
  };
  const slot = (s: v1.CrdtSlot.$Properties, depth: number): Slot => {
    if (depth > CODEC_LIMITS.maxDepth) bad('fields nested too deep');
    const out = new Slot();
    out.reg = perPeer(
      (s.registers ?? []).map((e): RegEntry => {
        count();
        return {
          peer: peer(e.peer),
          time: time(e.time),
          value: value(e.value, 0),
          attachment: e.attachment === true,
        };
      }),
      (e) => e.peer,
    );
    out.mdots = perPeer(
      (s.mapDots ?? []).map((e): DotEntry => {
        count();
        return { peer: peer(e.peer), time: time(e.time) };
      }),
      (e) => e.peer,
    );
    out.ctr = perPeer(
      (s.counterEntries ?? []).map((e): CtrEntry => {
        count();
        const sum = e.sum ?? 0;
        if (!Number.isFinite(sum)) bad('non-finite counter');
        const has = e.hasEpoch === true;
        return {
          peer: peer(e.peer),
          time: time(e.time),
          sum,
          epochPeer: has ? peer(e.epochPeer) : '',
          epochTime: has ? time(e.epochTime) : -1,
        };
      }),
      (e) => `${e.peer}\u0000${e.epochPeer}\u0000${e.epochTime}`,
    );
    out.rst = perPeer(
      (s.restarts ?? []).map((e): RestartEntry => {
        count();
        const v = e.value ?? 0;
        if (!Number.isFinite(v)) bad('non-finite restart');
        return { peer: peer(e.peer), time: time(e.time), value: v };
      }),
      (e) => e.peer,
    );
    const clears = (s.clears ?? []).map(clear);
    out.clr = clears.length === 0 ? undefined : clears;
    for (const c of s.children ?? []) {
      out.kids ??= new Map();
      const k = c.key ?? '';
      if (out.kids.has(k)) bad('duplicate field');
      out.kids.set(k, slot(c, depth + 1));
    }
    return out;
  };
  const root = slot({ children: msg.fields ?? [], clears: msg.rootClears ?? [] }, 0);
  return new DocDelta(id, vv(msg.since), vv(msg.versionVector), root);
}

/** A 64-bit integer field as a number; protobufjs may hand back a `Long` for defaults and large values. */
function toNumber(v: unknown): number {
  if (v == null) return 0;
  if (typeof v === 'number') return v;
  if (
    typeof v === 'object' &&
    typeof (v as { low?: unknown }).low === 'number' &&
    typeof (v as { high?: unknown }).high === 'number'
  ) {
    const { low, high, unsigned } = v as { low: number; high: number; unsigned?: boolean };
    return (unsigned === true ? high >>> 0 : high) * 2 ** 32 + (low >>> 0);
  }
  return Number.NaN;
}

function num(raw: unknown): number {
  const v = toNumber(raw);
  if (!Number.isSafeInteger(v) || v < 0) {
    throw crdtError('CRDT_DECODE', 'invalid CrdtDocState: integer out of range');
  }
  return v;
}
