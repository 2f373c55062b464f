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

/**
 * A slot's register writes: the one entry itself when a single peer wrote the field (nearly
 * always), else a list of at least two (one per peer).
 * @remarks Inline because a document holds one of these per field: a one-entry list costs an
 * array (28 bytes and one more object for the garbage collector to copy) per field.
 */
export type RegEntries = RegEntry | readonly RegEntry[];

/** Whether register entries are a list (else one inline entry). */
export function isRegList(r: RegEntries): r is readonly RegEntry[] {
  return Array.isArray(r);
}

/** The register entries of a slot as a list (allocates for an inline entry: not for hot paths). */
export function regList(r: RegEntries | undefined): readonly RegEntry[] | undefined {
  return r === undefined || isRegList(r) ? r : [r];
}

/** Register entries from a list: undefined when empty, the entry itself when one. */
export function regEntries(list: readonly RegEntry[]): RegEntries | undefined {
  return list.length === 0 ? undefined : list.length === 1 ? list[0] : list;
}

/**
 * The parts of a slot that a plain field never has: children, map dots, counters, restarts and
 * clears (see {@link Slot}).
 */
class SlotExt {
  kids: Map<string, Slot> | undefined = undefined;
  mdots: readonly DotEntry[] | undefined = undefined;
  ctr: readonly CtrEntry[] | undefined = undefined;
  rst: readonly RestartEntry[] | undefined = undefined;
  clr: readonly Clear[] | undefined = undefined;
}

/**
 * The CRDTs and clears at one path.
 * @remarks Entry lists are never mutated in place (a change assigns a new array), so a list can
 * be shared between a document, its clones and the deltas taken from it. Whole subtrees are
 * shared the same way: a slot marked `shared` belongs to more than one tree (a document and a
 * delta it adopted or produced, or a document and its clone) and is never mutated; a document
 * that needs to change one first replaces it with a copy ({@link ownChild}).
 *
 * Lean on purpose: a document holds one slot per field, nearly all of them a register written by
 * one peer, and every decoded or written field is copied by the young-generation collector. So a
 * slot holds only `shared`, `reg` and, created on first use, a {@link SlotExt} with the rest
 * (48 bytes per field instead of 80); the accessors keep the rest of the code unaware of it.
 */
export class Slot {
  /**
   * Part of more than one tree: copy before mutating (see {@link ownChild}). While a local write
   * is being built, a top-level slot it placed in the document holds that write's token instead
   * (truthy, so it counts as shared; see `OpBuilder` in `document.ts`).
   */
  shared: boolean | object = false;
  reg: RegEntries | undefined = undefined;
  #x: SlotExt | undefined = undefined;

  get kids(): Map<string, Slot> | undefined {
    return this.#x?.kids;
  }
  set kids(v: Map<string, Slot> | undefined) {
    if (v !== undefined) (this.#x ??= new SlotExt()).kids = v;
    else if (this.#x !== undefined) this.#x.kids = undefined;
  }
  get mdots(): readonly DotEntry[] | undefined {
    return this.#x?.mdots;
  }
  set mdots(v: readonly DotEntry[] | undefined) {
    if (v !== undefined) (this.#x ??= new SlotExt()).mdots = v;
    else if (this.#x !== undefined) this.#x.mdots = undefined;
  }
  get ctr(): readonly CtrEntry[] | undefined {
    return this.#x?.ctr;
  }
  set ctr(v: readonly CtrEntry[] | undefined) {
    if (v !== undefined) (this.#x ??= new SlotExt()).ctr = v;
    else if (this.#x !== undefined) this.#x.ctr = undefined;
  }
  get rst(): readonly RestartEntry[] | undefined {
    return this.#x?.rst;
  }
  set rst(v: readonly RestartEntry[] | undefined) {
    if (v !== undefined) (this.#x ??= new SlotExt()).rst = v;
    else if (this.#x !== undefined) this.#x.rst = undefined;
  }
  get clr(): readonly Clear[] | undefined {
    return this.#x?.clr;
  }
  set clr(v: readonly Clear[] | undefined) {
    if (v !== undefined) (this.#x ??= new SlotExt()).clr = v;
    else if (this.#x !== undefined) this.#x.clr = undefined;
  }

  /** A slot with `s`'s entries (not its children) and not shared. */
  static entriesOf(s: Slot): Slot {
    const c = new Slot();
    c.reg = s.reg;
    const x = s.#x;
    if (x !== undefined && (x.mdots ?? x.ctr ?? x.rst ?? x.clr) !== undefined) {
      const y = new SlotExt();
      y.mdots = x.mdots;
      y.ctr = x.ctr;
      y.rst = x.rst;
      y.clr = x.clr;
      c.#x = y;
    }
    return c;
  }

  child(key: string): Slot | undefined {
    return this.#x?.kids?.get(key);
  }

  ensureChild(key: string, meter: Meter): Slot {
    const x = (this.#x ??= new SlotExt());
    x.kids ??= new Map();
    let s = x.kids.get(key);
    if (s === undefined) {
      s = new Slot();
      x.kids.set(key, s);
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

/** Size estimate of one dot (peer and time). */
export const DOT_BYTES = 6;

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

function regListBytes(r: RegEntries): number {
  if (!isRegList(r)) return regBytes(r);
  let n = 0;
  for (const e of r) n += regBytes(e);
  return n;
}

/** No clears (shared, never mutated). */
const NO_CLEARS: readonly Clear[] = [];

/** Marks "the incoming entry is older than the one it would replace". */
const IGNORED = null;

/**
 * Upserts a per-peer entry (latest time wins) into a list, copy-on-write. Returns the new list
 * and, through `out`, the replaced entry; `IGNORED` if the entry is not newer.
 */
function upsert<T extends { readonly peer: PeerId; readonly time: number }>(
  list: readonly T[] | undefined,
  e: T,
  same: (a: T, b: T) => boolean,
  out: { replaced: T | undefined },
): readonly T[] | typeof IGNORED {
  out.replaced = undefined;
  if (list === undefined) return [e];
  for (let i = 0; i < list.length; i++) {
    const x = list[i] as T;
    if (same(x, e)) {
      if (e.time <= x.time) return IGNORED;
      const next = list.slice();
      next[i] = e;
      out.replaced = x;
      return next;
    }
  }
  // `concat` allocates exactly `length + 1` slots; `slice()` + `push` would reserve 16 more per
  // list, and a document holds one list per field.
  return list.concat(e);
}

const samePeer = (a: { peer: PeerId }, b: { peer: PeerId }): boolean => a.peer === b.peer;
const sameCtr = (a: CtrEntry, b: CtrEntry): boolean =>
  a.peer === b.peer && a.epochPeer === b.epochPeer && a.epochTime === b.epochTime;

const regOut: { replaced: RegEntry | undefined } = { replaced: undefined };
const dotOut: { replaced: DotEntry | undefined } = { replaced: undefined };
const ctrOut: { replaced: CtrEntry | undefined } = { replaced: undefined };
const rstOut: { replaced: RestartEntry | undefined } = { replaced: undefined };

/** Adds a register entry. */
export function addReg(s: Slot, e: RegEntry, m: Meter): void {
  const cur = s.reg;
  let replaced: RegEntry | undefined;
  if (cur === undefined) s.reg = e;
  else if (!isRegList(cur)) {
    if (cur.peer !== e.peer) s.reg = [cur, e];
    else if (e.time <= cur.time) return;
    else {
      s.reg = e;
      replaced = cur;
    }
  } else {
    const next = upsert(cur, e, samePeer, regOut);
    if (next === IGNORED) return;
    s.reg = next;
    replaced = regOut.replaced;
  }
  m.changed = true;
  m.bytes += regBytes(e) - (replaced === undefined ? 0 : regBytes(replaced));
}
/** Adds a map-typing dot. */
export function addMapDot(s: Slot, e: DotEntry, m: Meter): void {
  const next = upsert(s.mdots, e, samePeer, dotOut);
  if (next === IGNORED) return;
  s.mdots = next;
  m.changed = true;
  if (dotOut.replaced === undefined) m.bytes += DOT_BYTES;
}
/** Adds a counter entry. */
export function addCtr(s: Slot, e: CtrEntry, m: Meter): void {
  const next = upsert(s.ctr, e, sameCtr, ctrOut);
  if (next === IGNORED) return;
  s.ctr = next;
  m.changed = true;
  if (ctrOut.replaced === undefined) m.bytes += 3 * DOT_BYTES;
}
/** Adds a counter restart. */
export function addRestart(s: Slot, e: RestartEntry, m: Meter): void {
  const next = upsert(s.rst, e, samePeer, rstOut);
  if (next === IGNORED) return;
  s.rst = next;
  m.changed = true;
  if (rstOut.replaced === undefined) m.bytes += 2 * DOT_BYTES;
}

/**
 * Adds a clear to a slot, keeping only clears whose context no other clear's context dominates.
 * Returns whether the clear is new to the slot (and must be applied to its subtree).
 */
export function addClear(s: Slot, c: Clear, m: Meter): boolean {
  const list = s.clr ?? [];
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
  const reg = regList(s.reg);
  if (reg !== undefined) {
    const kept = reg.filter((e) => !covers(c, e.peer, e.time));
    if (kept.length !== reg.length) {
      for (const e of reg) if (covers(c, e.peer, e.time)) m.bytes -= regBytes(e);
      m.changed = true;
      s.reg = regEntries(kept);
    }
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
      const own = ownChild(s, k, kid);
      applyClear(own, c, m);
      if (isEmpty(own)) {
        s.kids.delete(k);
        m.bytes -= k.length + 2;
      }
    }
    if (s.kids.size === 0) s.kids = undefined;
  }
}

/** Child `k` (`d`) of `parent`, made safe to mutate: a shared child is replaced by a copy. */
export function ownChild(parent: Slot, k: string, d: Slot): Slot {
  if (!d.shared) return d;
  const c = Slot.entriesOf(d);
  if (d.kids !== undefined) {
    c.kids = new Map(d.kids);
    for (const x of d.kids.values()) x.shared = true;
  }
  parent.kids?.set(k, c);
  return c;
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
 * What a merge that may have to be undone records (see `CrdtDocument`'s size guard): every child
 * of the merged slot that it visits, and what that child was before (undefined: absent).
 * @remarks A child with children of its own, or shared, is marked shared before the merge
 * touches it, so the merge copies it instead of changing it, and putting the recorded one back
 * (`keys`, `previous`) undoes it. A leaf the document owns alone (nearly every field) is merged
 * in place, and `leaves` records it and its entry lists, which a merge never mutates, only
 * replaces: restoring the five references undoes it without a copy of the slot or a second
 * probe of the map.
 */
export interface ChildUndo {
  readonly keys: string[];
  readonly previous: (Slot | undefined)[];
  /**
   * Per leaf merged in place: the slot, then its `reg`, `mdots`, `ctr`, `rst`, `clr` before (six
   * elements per leaf, the first `6 × leafCount` used; the list may be allocated ahead).
   */
  readonly leaves: unknown[];
  leafCount: number;
  /**
   * When defined, a held field with children that the document owns alone is not merged but
   * appended here (key, incoming slot) for the caller to merge later: recorded, it would be
   * copied on write, a copy of its whole map of children.
   */
  deferred: unknown[] | undefined;
}

/**
 * An empty {@link ChildUndo}; `leaves` leaves room for that many leaves (a merge that knows how
 * many fields it brings: no growing copies of a list of six elements per field).
 */
export function childUndo(leaves = 0, defer = false): ChildUndo {
  return {
    keys: [],
    previous: [],
    leaves: leaves > 0 ? new Array(6 * leaves) : [],
    leafCount: 0,
    deferred: defer ? [] : undefined,
  };
}

/** Undoes what a merge into `dst` that recorded `undo` did to `dst`'s children. */
export function undoChildren(dst: Slot, undo: ChildUndo): void {
  const f = undo.leaves;
  const end = 6 * undo.leafCount;
  for (let i = 0; i < end; i += 6) {
    const s = f[i] as Slot;
    s.reg = f[i + 1] as RegEntries | undefined;
    s.mdots = f[i + 2] as readonly DotEntry[] | undefined;
    s.ctr = f[i + 3] as readonly CtrEntry[] | undefined;
    s.rst = f[i + 4] as readonly RestartEntry[] | undefined;
    s.clr = f[i + 5] as readonly Clear[] | undefined;
    // A leaf had no children; any the merge gave it are dropped with it.
    s.kids = undefined;
  }
  const kids = (dst.kids ??= new Map<string, Slot>());
  for (let i = 0; i < undo.keys.length; i++) {
    const k = undo.keys[i] as string;
    const kid = undo.previous[i];
    if (kid === undefined) kids.delete(k);
    else kids.set(k, kid);
  }
  if (kids.size === 0) dst.kids = undefined;
}

/**
 * Merges `src` into `dst` (in place). `ancestors` are the clears of `dst`'s ancestors (after
 * merging theirs), which filter incoming entries. With `undo`, the children of `dst` it touches
 * are recorded there and copied on write (their own children are not recorded).
 */
export function mergeSlot(
  dst: Slot,
  src: Slot,
  ancestors: readonly Clear[],
  m: Meter,
  undo?: ChildUndo,
): void {
  if (src.clr !== undefined) {
    for (const c of src.clr) if (addClear(dst, c, m)) applyClear(dst, c, m);
  }
  const clears =
    dst.clr === undefined
      ? ancestors
      : ancestors.length === 0
        ? dst.clr
        : [...ancestors, ...dst.clr];
  const reg = src.reg;
  if (reg !== undefined) {
    if (!isRegList(reg)) {
      if (!coveredBy(clears, reg.peer, reg.time)) addReg(dst, reg, m);
    } else for (const e of reg) if (!coveredBy(clears, e.peer, e.time)) addReg(dst, e, m);
  }
  if (src.mdots !== undefined)
    for (const e of src.mdots) if (!coveredBy(clears, e.peer, e.time)) addMapDot(dst, e, m);
  if (src.ctr !== undefined)
    for (const e of src.ctr) if (!coveredBy(clears, e.peer, e.time)) addCtr(dst, e, m);
  if (src.rst !== undefined)
    for (const e of src.rst) if (!coveredBy(clears, e.peer, e.time)) addRestart(dst, e, m);
  if (src.kids !== undefined) mergeKids(dst, src.kids, clears, m, undo);
}

/**
 * The children part of {@link mergeSlot}.
 * @remarks A function of its own: a function whose closure captures its locals allocates their
 * context on every call, and `mergeSlot` runs once per merged field, nearly all of them leaves.
 * `forEach`, not `for…of` over the entries: V8 allocates a `[key, slot]` pair per entry there.
 */
function mergeKids(
  dst: Slot,
  srcKids: ReadonlyMap<string, Slot>,
  clears: readonly Clear[],
  m: Meter,
  undo: ChildUndo | undefined,
): void {
  const kids = (dst.kids ??= new Map());
  srcKids.forEach((kid, k) => mergeChild(dst, kids, k, kid, clears, m, undo));
  if (kids.size === 0) dst.kids = undefined;
}

/**
 * Merges `kid` into `dst`'s child `k`, as {@link mergeSlot} does for each child of a merged slot;
 * `dst` has no ancestors (a document root). With `undo`, the child is recorded there as
 * {@link mergeSlot} records it.
 */
export function mergeField(dst: Slot, k: string, kid: Slot, m: Meter, undo?: ChildUndo): void {
  const kids = (dst.kids ??= new Map());
  mergeChild(dst, kids, k, kid, dst.clr ?? NO_CLEARS, m, undo);
  if (kids.size === 0) dst.kids = undefined;
}

/**
 * {@link mergeField} for a child the caller looked up already: `d` is `dst`'s child `k`. Spares
 * a second probe of `dst`'s map (a cache miss in a large document).
 */
export function mergeHeldField(dst: Slot, k: string, d: Slot, kid: Slot, m: Meter): void {
  mergeSlot(ownChild(dst, k, d), kid, dst.clr ?? NO_CLEARS, m);
}

/** Merges `src`'s child `kid` (key `k`) into `dst`, whose children are `kids`. */
function mergeChild(
  dst: Slot,
  kids: Map<string, Slot>,
  k: string,
  kid: Slot,
  clears: readonly Clear[],
  m: Meter,
  undo: ChildUndo | undefined,
): void {
  const d = kids.get(k);
  if (undo !== undefined) {
    if (d !== undefined && d.shared === false && d.kids !== undefined && undo.deferred) {
      undo.deferred.push(k, kid);
      return;
    }
    if (d !== undefined && d.shared === false && d.kids === undefined) {
      const f = undo.leaves;
      const i = 6 * undo.leafCount++;
      f[i] = d;
      f[i + 1] = d.reg;
      f[i + 2] = d.mdots;
      f[i + 3] = d.ctr;
      f[i + 4] = d.rst;
      f[i + 5] = d.clr;
      mergeSlot(d, kid, clears, m);
      return;
    }
    if (d !== undefined) d.shared = true;
    undo.keys.push(k);
    undo.previous.push(d);
  }
  if (d !== undefined) {
    mergeSlot(ownChild(dst, k, d), kid, clears, m);
    return;
  }
  // A new field: with nothing to join and no clear to filter it, the merge would rebuild
  // `kid` as it is, so the document takes it by reference (shared from now on).
  if (clears.length === 0) {
    const bytes = adoptableBytes(kid);
    if (bytes >= 0) {
      kid.shared = true;
      kids.set(k, kid);
      m.bytes += bytes + k.length + 2;
      m.changed = true;
      return;
    }
  }
  const fresh = new Slot();
  mergeSlot(fresh, kid, clears, m);
  if (isEmpty(fresh)) return;
  kids.set(k, fresh);
  m.bytes += k.length + 2;
}

/**
 * The size of `s` if merging it into an empty slot would rebuild it exactly — no clear and no
 * empty slot anywhere in it (entry lists are unique per peer: decoded or built by a write) —
 * else -1.
 */
export function adoptableBytes(s: Slot): number {
  if (s.clr !== undefined) return -1;
  let n = 0;
  let entries = false;
  if (s.reg !== undefined) {
    n += regListBytes(s.reg);
    entries = true;
  }
  if (s.mdots !== undefined) {
    n += s.mdots.length * DOT_BYTES;
    entries = true;
  }
  if (s.ctr !== undefined) {
    n += s.ctr.length * 3 * DOT_BYTES;
    entries = true;
  }
  if (s.rst !== undefined) {
    n += s.rst.length * 2 * DOT_BYTES;
    entries = true;
  }
  const kids = s.kids;
  if (kids !== undefined && kids.size > 0) {
    const b = adoptableKidsBytes(kids);
    if (b < 0) return -1;
    n += b;
    entries = true;
  }
  return entries ? n : -1;
}

/** {@link adoptableBytes} of children (a function of its own: see {@link mergeKids}). */
function adoptableKidsBytes(kids: ReadonlyMap<string, Slot>): number {
  let n = 0;
  kids.forEach((kid, k) => {
    if (n < 0) return;
    const b = adoptableBytes(kid);
    n = b < 0 ? -1 : n + b + k.length + 2;
  });
  return n;
}

/** A copy of a slot that shares its children (marked shared, so either side copies on write). */
export function cloneSlot(s: Slot): Slot {
  const c = Slot.entriesOf(s);
  if (s.kids !== undefined) {
    c.kids = new Map(s.kids);
    for (const kid of s.kids.values()) kid.shared = true;
  }
  return c;
}

/** The part of `s` whose dots `since` does not cover, or undefined if nothing. */
export function extractSince(s: Slot, since: VersionVector): Slot | undefined {
  if (since.size === 0) {
    // Everything is newer than nothing: share the subtree itself.
    if (isEmpty(s)) return undefined;
    s.shared = true;
    return s;
  }
  const newer = (e: { peer: PeerId; time: number }): boolean => e.time > (since.get(e.peer) ?? -1);
  const out = new Slot();
  let any = false;
  const pick = <T extends { peer: PeerId; time: number }>(
    list: readonly T[] | undefined,
  ): readonly T[] | undefined => {
    if (list === undefined) return undefined;
    const kept = list.filter(newer);
    if (kept.length === 0) return undefined;
    any = true;
    return kept.length === list.length ? list : kept;
  };
  const reg = s.reg;
  if (reg !== undefined && !isRegList(reg)) {
    if (newer(reg)) {
      out.reg = reg;
      any = true;
    }
  } else {
    const kept = pick(reg);
    out.reg = kept === undefined ? undefined : regEntries(kept);
  }
  out.mdots = pick(s.mdots);
  out.ctr = pick(s.ctr);
  out.rst = pick(s.rst);
  out.clr = pick(s.clr);
  if (s.kids !== undefined && extractKidsSince(s.kids, since, out)) any = true;
  return any ? out : undefined;
}

/**
 * {@link extractSince} of children, into `out`'s; whether any (a function of its own: see
 * {@link mergeKids}).
 */
function extractKidsSince(
  kids: ReadonlyMap<string, Slot>,
  since: VersionVector,
  out: Slot,
): boolean {
  let any = false;
  kids.forEach((kid, k) => {
    const x = extractSince(kid, since);
    if (x === undefined) return;
    out.kids ??= new Map();
    out.kids.set(k, x);
    any = true;
  });
  return any;
}

/** Size estimate of a whole subtree. */
export function slotBytes(s: Slot): number {
  let n = 0;
  if (s.reg) n += regListBytes(s.reg);
  if (s.mdots) n += s.mdots.length * DOT_BYTES;
  if (s.ctr) n += s.ctr.length * 3 * DOT_BYTES;
  if (s.rst) n += s.rst.length * 2 * DOT_BYTES;
  if (s.clr) for (const c of s.clr) n += clearBytes(c);
  if (s.kids) n += kidsBytes(s.kids);
  return n;
}

/** {@link slotBytes} of children (a function of its own: see {@link mergeKids}). */
function kidsBytes(kids: ReadonlyMap<string, Slot>): number {
  let n = 0;
  kids.forEach((kid, k) => {
    n += k.length + 2 + slotBytes(kid);
  });
  return n;
}

/** The greatest time of any dot (and any context) in the subtree; -1 if none. */
export function maxTime(s: Slot): number {
  let t = Math.max(
    maxOf(s.reg, -1),
    maxOf(s.mdots, -1),
    maxOf(s.ctr, -1),
    maxOf(s.rst, -1),
    maxOf(s.clr, -1),
  );
  if (s.kids) for (const kid of s.kids.values()) t = Math.max(t, maxTime(kid));
  return t;
}

function maxOf(
  list: { readonly time: number } | readonly { readonly time: number }[] | undefined,
  t: number,
): number {
  if (list === undefined) return t;
  if (!Array.isArray(list)) return Math.max(t, (list as { readonly time: number }).time);
  for (const e of list as readonly { readonly time: number }[]) if (e.time > t) t = e.time;
  return t;
}

// ---- reading ----

type Dotted = { readonly peer: PeerId; readonly time: number };
function best<T extends Dotted>(list: T | readonly T[] | undefined): T | undefined {
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) return list as T;
  let b: T | undefined;
  for (const e of list as readonly T[])
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
  const ci = best<Dotted>(s.ctr);
  const cr = best<Dotted>(s.rst);
  const c = after(cr, ci) ? cr : ci;
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
  // The common case, a slot holding only register writes, without building a `Visible`.
  if (s.ctr === undefined && s.rst === undefined && s.mdots === undefined && s.reg !== undefined)
    return (best(s.reg) as RegEntry).value;
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

/**
 * The object of a map slot's visible children (keys sorted). `out` may come with fields already
 * set (they stay first); a child named `skip` is left out.
 */
export function mapValue(
  s: Slot,
  out: Record<string, Value> = {},
  skip?: string,
): Record<string, Value> {
  const kids = s.kids;
  if (kids === undefined) return out;
  // Children usually sit in key order already (a decoded state); then there is nothing to sort.
  let inOrder = true;
  let prev: string | undefined;
  for (const k of kids.keys()) {
    if (prev !== undefined && !(prev < k)) {
      inOrder = false;
      break;
    }
    prev = k;
  }
  const entries = inOrder
    ? kids.entries()
    : [...kids.keys()].sort().map((k): [string, Slot] => [k, kids.get(k) as Slot]);
  for (const [k, kid] of entries) {
    if (k === skip) continue;
    const val = slotValue(kid);
    if (val === undefined) continue;
    // A plain assignment would call the `__proto__` setter instead of making a field.
    if (k === '__proto__') {
      Object.defineProperty(out, k, {
        value: val,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else out[k] = val;
  }
  return out;
}
