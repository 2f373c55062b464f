/**
 * The state tree of a document and its merge (a join: commutative, associative, idempotent).
 *
 * @remarks
 * Every path holds a {@link Slot}: the CRDTs written at that path (register, map, counter) side
 * by side, plus the UNSETs (clears) of that path. The visible CRDT is the one written last (the
 * greatest dot); the others stay, shadowed, which is why a scalar written over a map and later an
 * object brings the old keys back. Each CRDT keeps at most one entry per peer (per peer and epoch
 * for counters): keeping the latest write of every peer, not only the global winner, is what lets
 * an UNSET remove exactly the writes its remover had seen. A clear carries the remover's version
 * vector (its context) and removes every entry under its path whose dot the context covers;
 * merging filters incoming entries through the clears of the slot and its ancestors.
 * Entries with the same dot are the same write, so merge is idempotent.
 */
import type { PeerId } from './ids.js';
import type { Value } from './value.js';
import { checkValue } from './value.js';

/** A version vector: per peer, the latest time seen (absent: nothing seen). */
export type VersionVector = ReadonlyMap<PeerId, number>;

/** A register write. */
export interface RegEntry {
  readonly peer: PeerId;
  readonly time: number;
  readonly value: Value;
  readonly attachment: boolean;
}
/** A map-typing write. */
export interface DotEntry {
  readonly peer: PeerId;
  readonly time: number;
}
/** One peer's running increment sum within one restart epoch (epochTime -1: no restart). */
export interface CtrEntry {
  readonly peer: PeerId;
  readonly time: number;
  readonly sum: number;
  readonly epochPeer: PeerId | '';
  readonly epochTime: number;
}
/** A counter restart. */
export interface RestartEntry {
  readonly peer: PeerId;
  readonly time: number;
  readonly value: number;
}
/** An UNSET or delete, with the remover's version vector. */
export interface Clear {
  readonly peer: PeerId;
  readonly time: number;
  readonly ctx: VersionVector;
}

/** The CRDTs and clears at one path. */
export class Slot {
  reg: RegEntry[] | undefined = undefined;
  mdots: DotEntry[] | undefined = undefined;
  kids: Map<string, Slot> | undefined = undefined;
  ctr: CtrEntry[] | undefined = undefined;
  rst: RestartEntry[] | undefined = undefined;
  clr: Clear[] | undefined = undefined;

  child(key: string): Slot | undefined {
    return this.kids?.get(key);
  }

  ensureChild(key: string, meter: Meter): Slot {
    this.kids ??= new Map();
    let s = this.kids.get(key);
    if (s === undefined) {
      s = new Slot();
      this.kids.set(key, s);
      meter.bytes += key.length + 2;
    }
    return s;
  }
}

/** Running size estimate of a state, in bytes (close to the encoded size). */
export interface Meter {
  bytes: number;
  changed: boolean;
}

const DOT_BYTES = 6;

/** Whether a clear's context covers the dot. */
function covers(c: Clear, peer: PeerId, time: number): boolean {
  const t = c.ctx.get(peer);
  return t !== undefined && time <= t;
}

/** Whether any clear in the list covers the dot. */
export function coveredBy(clears: readonly Clear[], peer: PeerId, time: number): boolean {
  for (const c of clears) if (covers(c, peer, time)) return true;
  return false;
}

function dominates(a: VersionVector, b: VersionVector): boolean {
  for (const [p, t] of b) {
    const u = a.get(p);
    if (u === undefined || u < t) return false;
  }
  return true;
}

/** Size estimate of a clear. */
export function clearBytes(c: Clear): number {
  return DOT_BYTES + c.ctx.size * DOT_BYTES;
}
/** Size estimate of a register entry. */
export function regBytes(e: RegEntry): number {
  return DOT_BYTES + checkValue(e.value);
}

/** Upserts a per-peer entry (latest time wins); returns the size delta or undefined if ignored. */
function upsert<T extends { readonly peer: PeerId; readonly time: number }>(
  list: T[],
  e: T,
  same: (a: T, b: T) => boolean,
): { replaced: T | undefined } | undefined {
  for (let i = 0; i < list.length; i++) {
    const x = list[i] as T;
    if (same(x, e)) {
      if (e.time <= x.time) return undefined;
      list[i] = e;
      return { replaced: x };
    }
  }
  list.push(e);
  return { replaced: undefined };
}

const samePeer = (a: { peer: PeerId }, b: { peer: PeerId }): boolean => a.peer === b.peer;
const sameCtr = (a: CtrEntry, b: CtrEntry): boolean =>
  a.peer === b.peer && a.epochPeer === b.epochPeer && a.epochTime === b.epochTime;

/** Adds a register entry. */
export function addReg(s: Slot, e: RegEntry, m: Meter): void {
  s.reg ??= [];
  const r = upsert(s.reg, e, samePeer);
  if (r === undefined) return;
  m.changed = true;
  m.bytes += regBytes(e) - (r.replaced === undefined ? 0 : regBytes(r.replaced));
}
/** Adds a map-typing dot. */
export function addMapDot(s: Slot, e: DotEntry, m: Meter): void {
  s.mdots ??= [];
  const r = upsert(s.mdots, e, samePeer);
  if (r === undefined) return;
  m.changed = true;
  if (r.replaced === undefined) m.bytes += DOT_BYTES;
}
/** Adds a counter entry. */
export function addCtr(s: Slot, e: CtrEntry, m: Meter): void {
  s.ctr ??= [];
  const r = upsert(s.ctr, e, sameCtr);
  if (r === undefined) return;
  m.changed = true;
  if (r.replaced === undefined) m.bytes += 3 * DOT_BYTES;
}
/** Adds a counter restart. */
export function addRestart(s: Slot, e: RestartEntry, m: Meter): void {
  s.rst ??= [];
  const r = upsert(s.rst, e, samePeer);
  if (r === undefined) return;
  m.changed = true;
  if (r.replaced === undefined) m.bytes += 2 * DOT_BYTES;
}

/**
 * Adds a clear to a slot, keeping only clears whose context no other clear's context dominates.
 * Returns whether the clear is new to the slot (and must be applied to its subtree).
 */
export function addClear(s: Slot, c: Clear, m: Meter): boolean {
  const list = (s.clr ??= []);
  for (const x of list) {
    if (x.peer === c.peer && x.time === c.time) return false;
    if (dominates(x.ctx, c.ctx)) {
      // Equal contexts: keep the greater dot so every replica keeps the same one.
      if (!dominates(c.ctx, x.ctx) || x.time > c.time || (x.time === c.time && x.peer > c.peer))
        return false;
    }
  }
  const kept: Clear[] = [];
  for (const x of list) {
    if (dominates(c.ctx, x.ctx)) m.bytes -= clearBytes(x);
    else kept.push(x);
  }
  kept.push(c);
  s.clr = kept;
  m.bytes += clearBytes(c);
  m.changed = true;
  return true;
}

/** Removes every entry under `s` that `c` covers; prunes emptied children. */
export function applyClear(s: Slot, c: Clear, m: Meter): void {
  if (s.reg !== undefined) {
    const kept = s.reg.filter((e) => !covers(c, e.peer, e.time));
    if (kept.length !== s.reg.length) {
      for (const e of s.reg) if (covers(c, e.peer, e.time)) m.bytes -= regBytes(e);
      m.changed = true;
    }
    s.reg = kept.length === 0 ? undefined : kept;
  }
  if (s.mdots !== undefined) {
    const kept = s.mdots.filter((e) => !covers(c, e.peer, e.time));
    if (kept.length !== s.mdots.length) m.changed = true;
    m.bytes -= (s.mdots.length - kept.length) * DOT_BYTES;
    s.mdots = kept.length === 0 ? undefined : kept;
  }
  if (s.ctr !== undefined) {
    const kept = s.ctr.filter((e) => !covers(c, e.peer, e.time));
    if (kept.length !== s.ctr.length) m.changed = true;
    m.bytes -= (s.ctr.length - kept.length) * 3 * DOT_BYTES;
    s.ctr = kept.length === 0 ? undefined : kept;
  }
  if (s.rst !== undefined) {
    const kept = s.rst.filter((e) => !covers(c, e.peer, e.time));
    if (kept.length !== s.rst.length) m.changed = true;
    m.bytes -= (s.rst.length - kept.length) * 2 * DOT_BYTES;
    s.rst = kept.length === 0 ? undefined : kept;
  }
  if (s.kids !== undefined) {
    for (const [k, kid] of s.kids) {
      applyClear(kid, c, m);
      if (isEmpty(kid)) {
        s.kids.delete(k);
        m.bytes -= k.length + 2;
      }
    }
    if (s.kids.size === 0) s.kids = undefined;
  }
}

/** Whether a slot holds nothing at all (no entries, no clears, no children). */
export function isEmpty(s: Slot): boolean {
  return (
    s.reg === undefined &&
    s.mdots === undefined &&
    s.ctr === undefined &&
    s.rst === undefined &&
    s.clr === undefined &&
    (s.kids === undefined || s.kids.size === 0)
  );
}

/**
 * Merges `src` into `dst` (in place). `ancestors` are the clears of `dst`'s ancestors (after
 * merging theirs), which filter incoming entries.
 */
export function mergeSlot(dst: Slot, src: Slot, ancestors: readonly Clear[], m: Meter): void {
  if (src.clr !== undefined) {
    for (const c of src.clr) if (addClear(dst, c, m)) applyClear(dst, c, m);
  }
  const clears =
    dst.clr === undefined
      ? ancestors
      : ancestors.length === 0
        ? dst.clr
        : [...ancestors, ...dst.clr];
  if (src.reg !== undefined)
    for (const e of src.reg) if (!coveredBy(clears, e.peer, e.time)) addReg(dst, e, m);
  if (src.mdots !== undefined)
    for (const e of src.mdots) if (!coveredBy(clears, e.peer, e.time)) addMapDot(dst, e, m);
  if (src.ctr !== undefined)
    for (const e of src.ctr) if (!coveredBy(clears, e.peer, e.time)) addCtr(dst, e, m);
  if (src.rst !== undefined)
    for (const e of src.rst) if (!coveredBy(clears, e.peer, e.time)) addRestart(dst, e, m);
  if (src.kids !== undefined) {
    for (const [k, kid] of src.kids) {
      const existed = dst.kids?.has(k) === true;
      const d = dst.ensureChild(k, m);
      mergeSlot(d, kid, clears, m);
      if (!existed && isEmpty(d)) {
        dst.kids?.delete(k);
        m.bytes -= k.length + 2;
      }
    }
  }
}

/** Deep copy of a slot (entries are immutable and shared). */
export function cloneSlot(s: Slot): Slot {
  const c = new Slot();
  if (s.reg) c.reg = [...s.reg];
  if (s.mdots) c.mdots = [...s.mdots];
  if (s.ctr) c.ctr = [...s.ctr];
  if (s.rst) c.rst = [...s.rst];
  if (s.clr) c.clr = [...s.clr];
  if (s.kids) {
    c.kids = new Map();
    for (const [k, kid] of s.kids) c.kids.set(k, cloneSlot(kid));
  }
  return c;
}

/** The part of `s` whose dots `since` does not cover, or undefined if nothing. */
export function extractSince(s: Slot, since: VersionVector): Slot | undefined {
  const newer = (e: { peer: PeerId; time: number }): boolean => e.time > (since.get(e.peer) ?? -1);
  const out = new Slot();
  let any = false;
  const pick = <T extends { peer: PeerId; time: number }>(
    list: T[] | undefined,
  ): T[] | undefined => {
    if (list === undefined) return undefined;
    const kept = list.filter(newer);
    if (kept.length === 0) return undefined;
    any = true;
    return kept;
  };
  out.reg = pick(s.reg);
  out.mdots = pick(s.mdots);
  out.ctr = pick(s.ctr);
  out.rst = pick(s.rst);
  out.clr = pick(s.clr);
  if (s.kids !== undefined) {
    for (const [k, kid] of s.kids) {
      const x = extractSince(kid, since);
      if (x === undefined) continue;
      out.kids ??= new Map();
      out.kids.set(k, x);
      any = true;
    }
  }
  return any ? out : undefined;
}

/** Size estimate of a whole subtree. */
export function slotBytes(s: Slot): number {
  let n = 0;
  if (s.reg) for (const e of s.reg) n += regBytes(e);
  if (s.mdots) n += s.mdots.length * DOT_BYTES;
  if (s.ctr) n += s.ctr.length * 3 * DOT_BYTES;
  if (s.rst) n += s.rst.length * 2 * DOT_BYTES;
  if (s.clr) for (const c of s.clr) n += clearBytes(c);
  if (s.kids) for (const [k, kid] of s.kids) n += k.length + 2 + slotBytes(kid);
  return n;
}

/** The greatest time of any dot (and any context) in the subtree; -1 if none. */
export function maxTime(s: Slot): number {
  let t = -1;
  const see = (list: readonly { time: number }[] | undefined): void => {
    if (list) for (const e of list) if (e.time > t) t = e.time;
  };
  see(s.reg);
  see(s.mdots);
  see(s.ctr);
  see(s.rst);
  see(s.clr);
  if (s.kids) for (const kid of s.kids.values()) t = Math.max(t, maxTime(kid));
  return t;
}

// ---- reading ----

type Dotted = { readonly peer: PeerId; readonly time: number };
function best<T extends Dotted>(list: readonly T[] | undefined): T | undefined {
  if (list === undefined) return undefined;
  let b: T | undefined;
  for (const e of list)
    if (b === undefined || e.time > b.time || (e.time === b.time && e.peer > b.peer)) b = e;
  return b;
}
function after(a: Dotted | undefined, b: Dotted | undefined): boolean {
  if (a === undefined) return false;
  if (b === undefined) return true;
  return a.time > b.time || (a.time === b.time && a.peer > b.peer);
}

/** Which CRDT of a slot is visible. */
export type Visible =
  | { readonly kind: 'register'; readonly entry: RegEntry }
  | { readonly kind: 'counter' }
  | { readonly kind: 'map' }
  | { readonly kind: 'none' };

/** Whether the subtree holds any live entry. */
export function isLive(s: Slot): boolean {
  if (s.reg !== undefined || s.mdots !== undefined || s.ctr !== undefined || s.rst !== undefined)
    return true;
  if (s.kids !== undefined) for (const kid of s.kids.values()) if (isLive(kid)) return true;
  return false;
}

/** The visible CRDT of a slot: the one written last; a map with only live children ranks lowest. */
export function visible(s: Slot): Visible {
  const r = best(s.reg);
  const c = best<Dotted>([...(s.ctr ?? []), ...(s.rst ?? [])]);
  const md = best(s.mdots);
  if (r !== undefined && !after(c, r) && !after(md, r)) return { kind: 'register', entry: r };
  if (c !== undefined && !after(md, c)) return { kind: 'counter' };
  if (md !== undefined) return { kind: 'map' };
  if (s.kids !== undefined && isLive(s)) return { kind: 'map' };
  return { kind: 'none' };
}

/** The counter's current winning restart (the epoch new increments belong to). */
export function currentRestart(s: Slot): RestartEntry | undefined {
  return best(s.rst);
}

/** The value of a counter: the winning restart plus the increments made in its epoch. */
export function counterValue(s: Slot): number {
  const r = currentRestart(s);
  let v = r === undefined ? 0 : r.value;
  if (s.ctr !== undefined) {
    for (const e of s.ctr) {
      if (r === undefined ? e.epochTime === -1 : e.epochTime === r.time && e.epochPeer === r.peer)
        v += e.sum;
    }
  }
  return v;
}

/** The plain value of a slot, or undefined (MISSING). Map keys come out sorted. */
export function slotValue(s: Slot): Value | undefined {
  const v = visible(s);
  switch (v.kind) {
    case 'register':
      return v.entry.value;
    case 'counter':
      return counterValue(s);
    case 'map':
      return mapValue(s);
    case 'none':
      return undefined;
  }
}

/** The object of a map slot's visible children (keys sorted). */
export function mapValue(s: Slot): Record<string, Value> {
  const out: Record<string, Value> = {};
  if (s.kids === undefined) return out;
  const keys = [...s.kids.keys()].sort();
  for (const k of keys) {
    const val = slotValue(s.kids.get(k) as Slot);
    if (val !== undefined)
      Object.defineProperty(out, k, {
        value: val,
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return out;
}
