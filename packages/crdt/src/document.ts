/**
 * A CRDT document: `_id`, state tree, version vector; local writes from intents, merge, deltas.
 */
import type { DocId } from './doc-id.js';
import { docIdKey } from './doc-id.js';
import { crdtError } from './errors.js';
import type { HybridClock, Timestamp } from './hlc.js';
import type { PeerId } from './ids.js';
import type { ChildUndo, Clear, Meter, VersionVector } from './state.js';
import {
  adoptableBytes,
  addClear,
  addCtr,
  addMapDot,
  addReg,
  addRestart,
  applyClear,
  cloneSlot,
  counterValue,
  currentRestart,
  extractSince,
  isLive,
  mapValue,
  maxTime,
  mergeSlot,
  Slot,
  slotBytes,
  slotValue,
  visible,
} from './state.js';
import type { Value, ValueObject } from './value.js';
import { checkValue, isValueObject, valuesEqual } from './value.js';

/** Above this estimated size a write or merge returns a warning. */
export const DOC_WARN_BYTES = 256 * 1024;
/** Above this estimated size a write or merge is refused with `CRDT_DOC_TOO_LARGE`. */
export const DOC_MAX_BYTES = 5 * 1024 * 1024;

/**
 * Deepest field path (map nesting). Together with the value depth limit (32) it keeps every
 * encoded message under protobuf's nesting limit of 100.
 */
export const MAX_FIELD_DEPTH = 24;

/** The CRDT type of a field. */
export const CrdtType = {
  REGISTER: 'REGISTER',
  MAP: 'MAP',
  COUNTER: 'COUNTER',
  PN_COUNTER: 'PN_COUNTER',
  ATTACHMENT: 'ATTACHMENT',
} as const;
/** The CRDT type of a field. */
export type CrdtType = (typeof CrdtType)[keyof typeof CrdtType];

/** Declared field types, keyed by dotted path (`"meta"`, `"a.b"`); undeclared fields use the default typing. */
export type Typedefs = Readonly<Record<string, CrdtType>>;

/** A field path: keys from the top of the document. */
export type Path = readonly string[];

/** What `INSERT` does when a live document with the same `_id` exists. */
export const ConflictMode = {
  FAIL: 'FAIL',
  DO_NOTHING: 'DO_NOTHING',
  DO_UPDATE: 'DO_UPDATE',
  DO_UPDATE_LOCAL_DIFF: 'DO_UPDATE_LOCAL_DIFF',
} as const;
/** What `INSERT` does when a live document with the same `_id` exists. */
export type ConflictMode = (typeof ConflictMode)[keyof typeof ConflictMode];

/** An `APPLY` clause item. */
export type ApplyOp =
  | { readonly op: 'INCREMENT'; readonly path: Path; readonly by: number }
  | { readonly op: 'PN_INCREMENT'; readonly path: Path; readonly by: number }
  | { readonly op: 'RESTART'; readonly path: Path; readonly with?: number };

/** An attachment token: points at a content-addressed blob. */
export interface AttachmentToken {
  readonly id: string;
  readonly len: number;
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * What a statement wants to do to one document; the DQL layer produces these.
 * @remarks `update` runs its clauses in DQL order: `apply`, then `set`, then `unset`. All writes
 * of one intent share one timestamp.
 */
export type WriteIntent =
  | {
      readonly kind: 'insert';
      /** The document; its `_id` must equal the document's. */
      readonly document: ValueObject;
      readonly onConflict?: ConflictMode;
      /** `INSERT … INITIAL DOCUMENTS`: written at time 0, only into a document with no state at all. */
      readonly initial?: boolean;
      readonly typedefs?: Typedefs;
    }
  | {
      readonly kind: 'update';
      readonly apply?: readonly ApplyOp[];
      readonly set?: readonly { readonly path: Path; readonly value: Value }[];
      readonly unset?: readonly Path[];
      readonly typedefs?: Typedefs;
    }
  | { readonly kind: 'delete' };

/** A size warning (document above {@link DOC_WARN_BYTES}). */
export interface SizeWarning {
  readonly code: 'CRDT_DOC_LARGE';
  readonly bytes: number;
}

/** The outcome of a local write. */
export interface WriteResult {
  /** Whether the document changed (false: nothing to sync, no mutation to report). */
  readonly changed: boolean;
  /** The operation to send to other peers (a delta), when something changed. */
  readonly delta: DocDelta | undefined;
  readonly warning: SizeWarning | undefined;
}

/** The outcome of a merge. */
export interface MergeResult {
  readonly changed: boolean;
  readonly warning: SizeWarning | undefined;
}

/**
 * A delta of a document: every write not covered by `since`, in the context `versionVector`.
 * A full state is the delta against the empty version vector.
 * @remarks `root` is the internal state tree; treat it as opaque.
 */
export class DocDelta {
  constructor(
    readonly id: DocId,
    readonly since: VersionVector,
    readonly versionVector: VersionVector,
    /** @internal */
    readonly root: Slot,
  ) {}
}

const ID_KEY = '_id';

function tooLarge(bytes: number): Error {
  return crdtError(
    'CRDT_DOC_TOO_LARGE',
    `document would be ${bytes} bytes (limit ${DOC_MAX_BYTES})`,
    {
      bytes: String(bytes),
      limit: String(DOC_MAX_BYTES),
    },
  );
}

const EMPTY_VV: VersionVector = new Map();

/**
 * One document's CRDT state.
 *
 * @remarks
 * Writes build a small delta (the operation) and merge it, so local and remote changes go through
 * the same code. Writes cost O(path depth + value size), never a scan of the document.
 * The version vector advances for a peer only when a delta is contiguous with what this document
 * already holds from that peer (its `since` is covered), so it never claims writes it lacks;
 * out-of-order deltas still apply their writes, and a later delta fills the gap.
 */
export class CrdtDocument {
  readonly id: DocId;
  /** Canonical `_id` as a string (see {@link docIdKey}). */
  readonly key: string;
  #root = new Slot();
  #vv = new Map<PeerId, number>();
  #meter: Meter = { bytes: 0, changed: false };
  /** The change log; undefined until a delta needs it (then rebuilt from the state). */
  #log: ChangeLog | undefined = new ChangeLog();

  readonly #idBytes: number;

  private constructor(id: DocId, key: string) {
    this.id = id;
    this.key = key;
    this.#idBytes = key.length;
  }

  /** An empty document (no state) with this `_id`. */
  static create(id: DocId): CrdtDocument {
    return new CrdtDocument(id, docIdKey(id));
  }

  /** A document holding exactly the state of `delta`. */
  static fromDelta(delta: DocDelta): CrdtDocument {
    const d = CrdtDocument.create(delta.id);
    d.merge(delta);
    return d;
  }

  /**
   * @internal A document that takes `delta`'s state tree as its own, for a delta that nobody
   * else holds (just decoded): no copy, no second index of the fields. Falls back to
   * {@link CrdtDocument.fromDelta} when the tree is not exactly what a merge would build (clears,
   * empty slots) or exceeds the size limit.
   */
  static _adopt(delta: DocDelta): CrdtDocument {
    const root = delta.root;
    const bytes = root.clr === undefined ? adoptableBytes(root) : -1;
    const d = CrdtDocument.create(delta.id);
    if (bytes < 0 || bytes + d.#idBytes > DOC_MAX_BYTES) {
      d.merge(delta);
      return d;
    }
    d.#root = root;
    d.#meter.bytes = bytes;
    d.#log = undefined;
    // What `merge` would do on an empty document: advance only for peers the delta starts from
    // scratch (contiguous with nothing held).
    for (const [p, t] of delta.versionVector) if (!delta.since.has(p)) d.#vv.set(p, t);
    return d;
  }

  /** The version vector (a live read-only view). */
  get versionVector(): VersionVector {
    return this.#vv;
  }

  /** Whether the document is live (inserted and not deleted; a husk counts as live). */
  get exists(): boolean {
    return isLive(this.#root);
  }

  /** Whether the document was deleted and nothing survived (a tombstone). */
  get isTombstone(): boolean {
    return this.#root.clr !== undefined && !this.exists;
  }

  /** Estimated encoded size in bytes (what the size limits apply to). */
  get byteSize(): number {
    return this.#meter.bytes + this.#idBytes;
  }

  /** The document as plain JSON with `_id` first and other keys sorted, or undefined if not live. */
  toJSON(): Record<string, Value> | undefined {
    if (!this.exists) return undefined;
    return mapValue(this.#root, { [ID_KEY]: this.id as Value }, ID_KEY);
  }

  /** The value at a path, or undefined (MISSING). */
  get(path: Path): Value | undefined {
    if (path.length === 1 && path[0] === ID_KEY)
      return this.exists ? (this.id as Value) : undefined;
    let s: Slot | undefined = this.#root;
    for (let i = 0; i < path.length; i++) {
      s = s.child(path[i] as string);
      if (s === undefined) return undefined;
      if (i < path.length - 1 && visible(s).kind !== 'map') return undefined;
    }
    return slotValue(s);
  }

  /** A copy of this document. */
  clone(): CrdtDocument {
    const d = new CrdtDocument(this.id, this.key);
    d.#root = cloneSlot(this.#root);
    d.#vv = new Map(this.#vv);
    d.#meter = { bytes: this.#meter.bytes, changed: false };
    d.#log = this.#log?.clone();
    return d;
  }

  /** Everything a peer with version vector `since` lacks. */
  delta(since: VersionVector): DocDelta {
    const root = this.#root;
    const out = new Slot();
    if (root.clr !== undefined) {
      const clr = root.clr.filter((c) => c.time > (since.get(c.peer) ?? -1));
      if (clr.length > 0) out.clr = clr;
    }
    // Only the top-level fields the change log says hold something newer than `since`.
    const keys =
      since.size === 0
        ? (root.kids?.keys() ?? [])
        : (this.#log ?? this.#rebuildLog()).keysSince(since, root.kids?.size ?? 0, () =>
            this.#rebuildLog(),
          );
    for (const k of keys) {
      const kid = root.kids?.get(k);
      const x = kid === undefined ? undefined : extractSince(kid, since);
      if (x === undefined) continue;
      out.kids ??= new Map();
      out.kids.set(k, x);
    }
    return new DocDelta(this.id, new Map(since), new Map(this.#vv), out);
  }

  #rebuildLog(): ChangeLog {
    const log = new ChangeLog();
    if (this.#root.kids !== undefined) for (const [k, kid] of this.#root.kids) log.record(k, kid);
    log.settle();
    this.#log = log;
    return log;
  }

  /** The full state (the delta against the empty version vector). */
  snapshot(): DocDelta {
    return this.delta(EMPTY_VV);
  }

  /**
   * Merges a delta or full state from another peer.
   * @remarks With `clock`, the clock first receives the delta's greatest time (which may throw
   * `CRDT_CLOCK_DRIFT`, leaving the document unchanged). A merge that would take the document over
   * {@link DOC_MAX_BYTES} is refused with `CRDT_DOC_TOO_LARGE` and changes nothing, so the local
   * document stays writable; the sync layer keeps the delta's sender diverged until someone shrinks it.
   */
  merge(delta: DocDelta, options: { readonly clock?: HybridClock } = {}): MergeResult {
    if (delta.id !== this.id && docIdKey(delta.id) !== this.key)
      throw crdtError('CRDT_DOC_MISMATCH', 'delta belongs to another document');
    if (options.clock !== undefined) {
      let t = maxTime(delta.root);
      for (const v of delta.versionVector.values()) t = Math.max(t, v);
      if (t >= 0) options.clock.receive(t as Timestamp['time']);
    }
    // An empty document skips the size estimate (a walk of the whole delta): its guarded path
    // costs nothing, since undoing a merge into it is dropping every field.
    const incoming = this.#root.kids === undefined ? Infinity : slotBytes(delta.root);
    return this.#guardSize(delta.root, incoming, (doc, undo) => doc.#mergeRaw(delta, undo));
  }

  /**
   * Applies a write intent at timestamp `at` (one `clock.now()` per intent).
   * @throws `CRDT_ID_CONFLICT` (insert, FAIL), `CRDT_INVALID_INTENT`, `CRDT_INVALID_VALUE`,
   * `CRDT_DOC_TOO_LARGE` (the write would exceed {@link DOC_MAX_BYTES}; nothing changes).
   * `RangeError` if `at` is not later than this peer's previous write on the document.
   */
  write(intent: WriteIntent, at: Timestamp): WriteResult {
    const prev = this.#vv.get(at.peer);
    if (prev !== undefined && at.time <= prev) {
      throw new RangeError(`write time ${at.time} is not after this peer's previous write ${prev}`);
    }
    const op = new OpBuilder(this, at);
    op.build(intent);
    if (op.time === -1) return { changed: false, delta: undefined, warning: undefined };
    // The op's running size (its scratch meter) bounds how much the merge can grow the document.
    const result = this.#guardSize(op.root, op.bytes, (doc, undo) => {
      const m: Meter = { bytes: doc.#meter.bytes, changed: false };
      mergeSlot(doc.#root, op.root, [], m, undo);
      doc.#meter.bytes = m.bytes;
      // Every entry of an op carries the op's dot, so the log needs one row per top-level field.
      if (op.root.kids !== undefined) {
        doc.#log?.addWrite(at.peer, op.time, op.root.kids);
        doc.#compactLog();
      }
      if (m.changed) doc.#vv.set(at.peer, op.time);
      return m.changed;
    });
    if (!result.changed) return { changed: false, delta: undefined, warning: undefined };
    const since = new Map<PeerId, number>();
    if (prev !== undefined) since.set(at.peer, prev);
    const delta = new DocDelta(this.id, since, new Map([[at.peer, op.time]]), op.root);
    return { changed: true, delta, warning: result.warning };
  }

  #mergeRaw(delta: DocDelta, undo: ChildUndo | undefined): boolean {
    const m: Meter = { bytes: this.#meter.bytes, changed: false };
    const wasEmpty = this.#root.kids === undefined;
    mergeSlot(this.#root, delta.root, [], m, undo);
    this.#meter.bytes = m.bytes;
    // Into an empty document (a load), the log is left to be built when a delta first needs it:
    // a document that is only read never pays for it.
    if (wasEmpty) this.#log = undefined;
    else this.#logIncoming(delta.root);
    let changed = m.changed;
    for (const [p, t] of delta.versionVector) {
      const have = this.#vv.get(p) ?? -1;
      if (t > have && have >= (delta.since.get(p) ?? -1)) {
        this.#vv.set(p, t);
        changed = true;
      }
    }
    return changed;
  }

  #logIncoming(root: Slot): void {
    const log = this.#log;
    if (log === undefined) return;
    if (root.kids !== undefined) for (const [k, kid] of root.kids) log.record(k, kid);
    this.#compactLog();
  }

  /** Rebuilds the change log when stale rows dominate it (amortized O(1) per recorded row). */
  #compactLog(): void {
    if (this.#log?.needsRebuild(this.#root.kids?.size ?? 0) === true) this.#rebuildLog();
  }

  /**
   * Runs `apply`, which merges the tree `incoming` into this document, so that a result over
   * {@link DOC_MAX_BYTES} is refused with `CRDT_DOC_TOO_LARGE` and changes nothing.
   * @remarks `incomingBytes` bounds how much the merge can grow the document; when the bound
   * keeps it under the limit, `apply` runs in place. Otherwise `apply` passes the {@link ChildUndo}
   * it is given to `mergeSlot`, which records the top-level fields the merge visits and marks
   * them shared as it reaches them, so the merge copies them instead of changing them
   * (copy-on-write, as for a clone, but only for what the merge touches), and a refused merge
   * puts the old ones back. A merge that clears the root (a delete) changes every field; it runs
   * on a clone instead.
   */
  #guardSize(
    incoming: Slot,
    incomingBytes: number,
    apply: (doc: CrdtDocument, undo: ChildUndo | undefined) => boolean,
  ): MergeResult {
    let changed: boolean;
    if (this.byteSize + incomingBytes <= DOC_MAX_BYTES) {
      changed = apply(this, undefined);
    } else if (incoming.clr === undefined) {
      changed = this.#applyOrRollBack(apply);
    } else {
      const copy = this.clone();
      changed = apply(copy, undefined);
      if (copy.byteSize > DOC_MAX_BYTES) throw tooLarge(copy.byteSize);
      this.#root = copy.#root;
      this.#vv = copy.#vv;
      this.#meter = copy.#meter;
      this.#log = copy.#log;
    }
    const bytes = this.byteSize;
    return {
      changed,
      warning: bytes > DOC_WARN_BYTES ? { code: 'CRDT_DOC_LARGE', bytes } : undefined,
    };
  }

  /** See {@link CrdtDocument.#guardSize}: `apply` in place, undone if the result is too large. */
  #applyOrRollBack(apply: (doc: CrdtDocument, undo: ChildUndo | undefined) => boolean): boolean {
    const root = this.#root;
    const { reg, mdots, ctr, rst, clr } = root;
    const hadKids = root.kids !== undefined;
    // The fields the merge replaces or adds, and what they held, recorded by the merge as it
    // visits them (no pass of its own). With no fields yet, undoing is dropping all of them.
    const undo: ChildUndo | undefined = hadKids ? { keys: [], previous: [] } : undefined;
    const bytes = this.#meter.bytes;
    const vv = new Map(this.#vv);
    const changed = apply(this, undo);
    if (this.byteSize <= DOC_MAX_BYTES) return changed;
    const tried = this.byteSize;
    root.reg = reg;
    root.mdots = mdots;
    root.ctr = ctr;
    root.rst = rst;
    root.clr = clr;
    if (undo === undefined) root.kids = undefined;
    else {
      const kids = root.kids ?? new Map<string, Slot>();
      root.kids = kids;
      for (let i = 0; i < undo.keys.length; i++) {
        const k = undo.keys[i] as string;
        const kid = undo.previous[i];
        if (kid === undefined) kids.delete(k);
        else kids.set(k, kid);
      }
    }
    this.#meter.bytes = bytes;
    this.#vv = vv;
    // Rows the merge added to the change log would only be stale, but a rebuild during the merge
    // indexed the refused state: rebuilt from the restored state when next needed.
    this.#log = undefined;
    throw tooLarge(tried);
  }

  /** @internal The live state tree (read-only use). */
  get _root(): Slot {
    return this.#root;
  }
}

/** One peer's rows of the {@link ChangeLog}. */
interface LogRow {
  times: number[];
  /** Per time, the field it names, or the fields of one write (all at that write's time). */
  keys: (string | readonly string[])[];
  /** Whether `times` is ascending (rows arrive in any order; they are sorted when read). */
  sorted: boolean;
}

/**
 * Per peer, the top-level fields that received an entry of that peer, with the entry's time.
 * @remarks Lets {@link CrdtDocument.delta} visit only the fields that changed since a version
 * vector, so a delta costs O(changes + log n), not O(document). Rows are appended as they come
 * (a merge brings them in key order, not time order) and sorted once when next read, so recording
 * stays O(1) per row and a big merge stays linear. Stale rows (entries since overwritten or
 * removed) only cost a look; the log is rebuilt from the state (one row per peer and field, its
 * greatest time) when it outgrows the document.
 */
class ChangeLog {
  #rows = new Map<PeerId, LogRow>();
  #size = 0;

  /** Rows right after the last rebuild (the live rows then). */
  #base = 0;

  /**
   * Whether rows recorded since the last rebuild outnumber the live ones, so a rebuild (O(document))
   * pays for itself; never true right after one, so rebuilding never repeats.
   */
  needsRebuild(fields: number): boolean {
    return this.#size > 2 * Math.max(this.#base, fields) + 1024;
  }

  /** Marks this log as freshly rebuilt. */
  settle(): void {
    this.#base = this.#size;
  }

  clone(): ChangeLog {
    const c = new ChangeLog();
    for (const [p, r] of this.#rows)
      c.#rows.set(p, { times: [...r.times], keys: [...r.keys], sorted: r.sorted });
    c.#size = this.#size;
    c.#base = this.#base;
    return c;
  }

  /** Records every dot in `slot`'s subtree under top-level field `key` (one row per peer: its max). */
  record(key: string, slot: Slot): void {
    const max = collectMax(slot);
    if (max === undefined) return;
    if (max instanceof Map) for (const [p, t] of max) this.#add(p, t, key);
    else this.#add(max.peer, max.time, key);
  }

  /**
   * Records that the fields `keys` received an entry with this dot (one write).
   * @remarks One row for the whole write, holding a copy of its key list (the delta's own map
   * would keep the delta's slots alive): a batch write of n fields costs one copy, not n row
   * appends.
   */
  addWrite(peer: PeerId, time: number, keys: ReadonlyMap<string, unknown>): void {
    if (keys.size === 0) return;
    this.#add(
      peer,
      time,
      keys.size === 1 ? (keys.keys().next().value as string) : [...keys.keys()],
    );
    this.#size += keys.size - 1;
  }

  #add(peer: PeerId, time: number, key: string | readonly string[]): void {
    let r = this.#rows.get(peer);
    if (r === undefined) {
      r = { times: [], keys: [], sorted: true };
      this.#rows.set(peer, r);
    }
    const n = r.times.length;
    if (r.sorted && n > 0 && (r.times[n - 1] as number) > time) r.sorted = false;
    r.times.push(time);
    r.keys.push(key);
    this.#size++;
  }

  /** Top-level fields that may hold an entry newer than `since`. */
  keysSince(since: VersionVector, fields: number, rebuild: () => ChangeLog): Set<string> {
    if (this.needsRebuild(fields)) return rebuild().keysSince(since, fields, rebuild);
    const out = new Set<string>();
    for (const [p, r] of this.#rows) {
      if (!r.sorted) sortRow(r);
      for (let i = upperBound(r.times, since.get(p) ?? -1); i < r.keys.length; i++) {
        const k = r.keys[i] as string | readonly string[];
        if (typeof k === 'string') out.add(k);
        else for (const x of k) out.add(x);
      }
    }
    return out;
  }
}

function sortRow(r: LogRow): void {
  const order = r.times.map((_, i) => i);
  order.sort((a, b) => (r.times[a] as number) - (r.times[b] as number) || a - b);
  r.times = order.map((i) => r.times[i] as number);
  r.keys = order.map((i) => r.keys[i] as string | readonly string[]);
  r.sorted = true;
}

function upperBound(times: readonly number[], t: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((times[mid] as number) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

type Dot = { readonly peer: PeerId; readonly time: number };

// Accumulator of collectMax (module state: no closure or allocation per call).
let maxOne: Dot | undefined;
let maxMany: Map<PeerId, number> | undefined;

function seeDots(dots: Dot | readonly Dot[] | undefined): void {
  if (dots === undefined) return;
  // Register entries may be one inline entry (see `RegEntries`).
  if (!Array.isArray(dots)) return seeDot(dots as Dot);
  for (const e of dots as readonly Dot[]) seeDot(e);
}

function seeDot(e: Dot): void {
  if (maxMany !== undefined) {
    if ((maxMany.get(e.peer) ?? -1) < e.time) maxMany.set(e.peer, e.time);
  } else if (maxOne === undefined) maxOne = e;
  else if (maxOne.peer === e.peer) {
    if (maxOne.time < e.time) maxOne = e;
  } else {
    maxMany = new Map([[maxOne.peer, maxOne.time]]);
    if ((maxMany.get(e.peer) ?? -1) < e.time) maxMany.set(e.peer, e.time);
  }
}

function walkDots(x: Slot): void {
  seeDots(x.reg);
  seeDots(x.mdots);
  seeDots(x.ctr);
  seeDots(x.rst);
  seeDots(x.clr);
  if (x.kids !== undefined) for (const kid of x.kids.values()) walkDots(kid);
}

/**
 * The greatest time per peer in a subtree: one dot when a single peer wrote it all (the common
 * case, no allocation), else a map.
 */
function collectMax(s: Slot): Dot | Map<PeerId, number> | undefined {
  maxOne = undefined;
  maxMany = undefined;
  walkDots(s);
  const out = maxMany ?? maxOne;
  maxOne = undefined;
  maxMany = undefined;
  return out;
}

/** Builds the delta of one intent against the current state. */
class OpBuilder {
  readonly root = new Slot();
  /** The op's time, or -1 while nothing was written. */
  time = -1;
  readonly #doc: CrdtDocument;
  readonly #at: Timestamp;
  #t: number;
  readonly #scratch: Meter = { bytes: 0, changed: false };

  constructor(doc: CrdtDocument, at: Timestamp) {
    this.#doc = doc;
    this.#at = at;
    this.#t = at.time;
  }

  /** The op's size estimate (an upper bound of what merging it adds to a document). */
  get bytes(): number {
    return this.#scratch.bytes;
  }

  build(intent: WriteIntent): void {
    switch (intent.kind) {
      case 'delete':
        if (this.#doc.exists) {
          this.#mark();
          const c: Clear = {
            peer: this.#at.peer,
            time: this.#t,
            ctx: new Map(this.#doc.versionVector),
          };
          addClear(this.root, c, this.#scratch);
        }
        return;
      case 'update':
        return this.#update(intent);
      case 'insert':
        return this.#insert(intent);
    }
  }

  #mark(): void {
    this.time = this.#t;
  }

  #insert(intent: Extract<WriteIntent, { kind: 'insert' }>): void {
    const doc = intent.document;
    if (!isValueObject(doc) || !Object.hasOwn(doc, ID_KEY))
      throw crdtError('CRDT_INVALID_INTENT', 'INSERT document needs an _id');
    if (docIdKey(doc[ID_KEY] as DocId) !== this.#doc.key)
      throw crdtError('CRDT_INVALID_INTENT', 'INSERT _id does not match the document');
    const typedefs = intent.typedefs ?? NO_TYPEDEFS;
    if (intent.initial === true) {
      // Seed data never overrides: only a document with no state at all (never written, never deleted) takes it.
      if (this.#doc.versionVector.size !== 0) return;
      this.#t = 0;
    } else if (this.#doc.exists) {
      const mode = intent.onConflict ?? 'FAIL';
      if (mode === 'FAIL') {
        throw crdtError(
          'CRDT_ID_CONFLICT',
          `a document with _id ${JSON.stringify(this.#doc.id)} exists`,
          { id: JSON.stringify(this.#doc.id) },
        );
      }
      if (mode === 'DO_NOTHING') return;
      for (const [k, v] of Object.entries(doc)) {
        if (k === ID_KEY) continue;
        if (mode === 'DO_UPDATE') this.#set([k], v, typedefs);
        else this.#diff([k], v, typedefs);
      }
      return;
    }
    this.#reg(this.#leaf([ID_KEY]), null, false);
    for (const [k, v] of Object.entries(doc)) if (k !== ID_KEY) this.#set([k], v, typedefs);
  }

  #update(intent: Extract<WriteIntent, { kind: 'update' }>): void {
    const typedefs = intent.typedefs ?? NO_TYPEDEFS;
    for (const a of intent.apply ?? []) {
      checkPath(a.path);
      if (a.op === 'RESTART') {
        const key = a.path.join('.');
        if (Object.hasOwn(typedefs, key) && typedefs[key] === 'PN_COUNTER')
          throw crdtError('CRDT_INVALID_INTENT', 'a PN_COUNTER cannot be restarted');
        const n = a.with ?? 0;
        checkNumber(n);
        addRestart(
          this.#leaf(a.path),
          { peer: this.#at.peer, time: this.#t, value: n },
          this.#scratch,
        );
        this.#mark();
      } else {
        checkNumber(a.by);
        this.#increment(a.path, a.by);
      }
    }
    for (const s of intent.set ?? []) {
      checkPath(s.path);
      this.#set(s.path, s.value, typedefs);
    }
    for (const p of intent.unset ?? []) {
      checkPath(p);
      const local = this.#local(p);
      if (local === undefined || !isLive(local)) continue;
      let s = this.root;
      for (const k of p) s = s.ensureChild(k, this.#scratch);
      addClear(
        s,
        { peer: this.#at.peer, time: this.#t, ctx: new Map(this.#doc.versionVector) },
        this.#scratch,
      );
      // A SET of the same path in this intent happened before the UNSET: drop it from the op.
      applyClear(
        s,
        { peer: this.#at.peer, time: this.#t, ctx: new Map([[this.#at.peer, this.#t]]) },
        this.#scratch,
      );
      this.#mark();
    }
  }

  #increment(path: Path, by: number): void {
    const local = this.#local(path);
    const r = local === undefined ? undefined : currentRestart(local);
    const epochPeer = r?.peer ?? '';
    const epochTime = r?.time ?? -1;
    let sum = by;
    for (const e of local?.ctr ?? []) {
      if (e.peer === this.#at.peer && e.epochPeer === epochPeer && e.epochTime === epochTime)
        sum += e.sum;
    }
    const leaf = this.#leaf(path);
    const pending = leaf.ctr?.find(
      (e) => e.peer === this.#at.peer && e.epochPeer === epochPeer && e.epochTime === epochTime,
    );
    if (pending !== undefined) sum = pending.sum + by;
    leaf.ctr = (leaf.ctr ?? []).filter((e) => e !== pending);
    addCtr(leaf, { peer: this.#at.peer, time: this.#t, sum, epochPeer, epochTime }, this.#scratch);
    this.#mark();
  }

  #set(path: Path, value: Value, typedefs: Typedefs): void {
    const type = typeOf(path, value, typedefs);
    switch (type) {
      case 'MAP': {
        if (!isValueObject(value))
          throw crdtError('CRDT_INVALID_VALUE', `${path.join('.')} is a MAP; got a non-object`);
        const entries = Object.entries(value);
        if (entries.length === 0) {
          // SET obj = {} on a map changes nothing; over anything else it makes the map visible again.
          const local = this.#local(path);
          if (local !== undefined && visible(local).kind === 'map') return;
          addMapDot(this.#leaf(path), { peer: this.#at.peer, time: this.#t }, this.#scratch);
          this.#mark();
          return;
        }
        addMapDot(this.#leaf(path), { peer: this.#at.peer, time: this.#t }, this.#scratch);
        for (const [k, v] of entries) this.#set([...path, k], v, typedefs);
        return;
      }
      case 'REGISTER':
        checkValue(value);
        return this.#reg(this.#leaf(path), value, false);
      case 'ATTACHMENT':
        checkAttachment(value);
        return this.#reg(this.#leaf(path), value, true);
      case 'COUNTER':
        checkNumber(value);
        addRestart(
          this.#leaf(path),
          { peer: this.#at.peer, time: this.#t, value: value as number },
          this.#scratch,
        );
        this.#mark();
        return;
      case 'PN_COUNTER': {
        checkNumber(value);
        const local = this.#local(path);
        const current =
          local !== undefined && visible(local).kind === 'counter' ? counterValue(local) : 0;
        if (value !== current) this.#increment(path, (value as number) - current);
        return;
      }
    }
  }

  /** UPDATE_LOCAL_DIFF: writes only what differs from the stored document. */
  #diff(path: Path, value: Value, typedefs: Typedefs): void {
    const type = typeOf(path, value, typedefs);
    const local = this.#local(path);
    const vis = local === undefined ? undefined : visible(local);
    if (type === 'MAP' && isValueObject(value) && vis?.kind === 'map') {
      for (const [k, v] of Object.entries(value)) this.#diff([...path, k], v, typedefs);
      return;
    }
    if (
      (type === 'COUNTER' || type === 'PN_COUNTER') &&
      vis?.kind === 'counter' &&
      local !== undefined &&
      counterValue(local) === value
    )
      return;
    if (
      (type === 'REGISTER' || type === 'ATTACHMENT') &&
      vis?.kind === 'register' &&
      vis.entry.attachment === (type === 'ATTACHMENT') &&
      valuesEqual(vis.entry.value, value)
    )
      return;
    this.#set(path, value, typedefs);
  }

  #reg(leaf: Slot, value: Value, attachment: boolean): void {
    leaf.reg = undefined; // a later SET of the same path in one intent wins
    addReg(leaf, { peer: this.#at.peer, time: this.#t, value, attachment }, this.#scratch);
    this.#mark();
  }

  /** The op's slot at `path`, typing every ancestor as a map at this op's time. */
  #leaf(path: Path): Slot {
    if (path.length > MAX_FIELD_DEPTH)
      throw crdtError('CRDT_INVALID_VALUE', `fields nested deeper than ${MAX_FIELD_DEPTH}`);
    let s = this.root;
    for (let i = 0; i < path.length; i++) {
      s = s.ensureChild(path[i] as string, this.#scratch);
      if (i < path.length - 1) addMapDot(s, { peer: this.#at.peer, time: this.#t }, this.#scratch);
    }
    return s;
  }

  #local(path: Path): Slot | undefined {
    let s: Slot | undefined = this.#doc._root;
    for (const k of path) {
      s = s.child(k);
      if (s === undefined) return undefined;
    }
    return s;
  }
}

const NO_TYPEDEFS: Typedefs = Object.freeze({});

/** The declared type of a path, or the default typing of its value. */
function typeOf(path: Path, value: Value, typedefs: Typedefs): CrdtType {
  if (typedefs !== NO_TYPEDEFS) {
    const key = path.length === 1 ? (path[0] as string) : path.join('.');
    // Own keys only: a field named `constructor` or `toString` has no declared type.
    if (Object.hasOwn(typedefs, key)) return typedefs[key] as CrdtType;
  }
  return isValueObject(value) ? 'MAP' : 'REGISTER';
}

function checkPath(path: Path): void {
  let ok = Array.isArray(path) && path.length > 0;
  for (let i = 0; ok && i < path.length; i++) ok = typeof path[i] === 'string';
  if (!ok) throw crdtError('CRDT_INVALID_INTENT', 'a path is a non-empty array of keys');
  if (path[0] === ID_KEY) throw crdtError('CRDT_INVALID_INTENT', '_id is immutable');
}

function checkNumber(v: unknown): void {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw crdtError('CRDT_INVALID_VALUE', 'counters take finite numbers');
}

function checkAttachment(v: unknown): void {
  const ok =
    isValueObject(v) &&
    typeof v['id'] === 'string' &&
    typeof v['len'] === 'number' &&
    Number.isInteger(v['len']) &&
    (v['metadata'] === undefined ||
      (isValueObject(v['metadata']) &&
        Object.values(v['metadata']).every((x) => typeof x === 'string')));
  if (!ok)
    throw crdtError(
      'CRDT_INVALID_VALUE',
      'an ATTACHMENT is a token { id: string, len: integer, metadata?: {string: string} }',
    );
  checkValue(v);
}
