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
  childUndo,
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
  mergeField,
  mergeHeldField,
  mergeSlot,
  Slot,
  slotBytes,
  slotValue,
  undoChildren,
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

/**
 * @internal The top-level fields of an incoming delta, read one at a time (see
 * `CrdtDocument._mergeFields`; the codec's streaming merge implements it).
 */
export interface FieldSource {
  /** At most how many fields are left (a bound for allocating ahead). */
  readonly count: number;
  /** Reads the next field into `key` and `slot`; false after the last. May throw `CRDT_DECODE`. */
  next(): boolean;
  readonly key: string;
  readonly slot: Slot;
  /** Called after the last field: checks the rest of the message (may throw `CRDT_DECODE`). */
  end(): void;
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
  readonly id: DocId;
  #since: VersionVector | undefined;
  #vv: VersionVector | undefined;
  #root: Slot | undefined;
  // A local write's delta (see `_ofWrite`) until first read: its peer, previous time (-1: none)
  // and time, and the op's root and top-level key and slot lists.
  #peer: PeerId | undefined = undefined;
  #prev = -1;
  #time = -1;
  #keys: readonly string[] | undefined = undefined;
  #slots: readonly Slot[] | undefined = undefined;
  /** `slotBytes(root)` when known (a decoded delta), else -1. */
  #bytes = -1;
  /** Whether `#bytes` is also `adoptableBytes(root)` (a decoded tree without clears or empty slots). */
  #adoptable = false;

  constructor(id: DocId, since: VersionVector, versionVector: VersionVector, root: Slot) {
    this.id = id;
    this.#since = since;
    this.#vv = versionVector;
    this.#root = root;
  }

  /** The version vector the delta starts from (what it leaves out). */
  get since(): VersionVector {
    if (this.#since === undefined) {
      const m = new Map<PeerId, number>();
      if (this.#prev >= 0) m.set(this.#peer as PeerId, this.#prev);
      this.#since = m;
    }
    return this.#since;
  }

  /** The version vector of the document the delta was taken from (its context). */
  get versionVector(): VersionVector {
    return (this.#vv ??= new Map([[this.#peer as PeerId, this.#time]]));
  }

  /**
   * @internal The delta of a local write, built when first read (once): `since` = `{peer: prev}`
   * (empty when `prev` is -1), version vector `{peer: time}`, tree `root` (a new slot when
   * undefined) with `keys` → `slots` as its children.
   * @remarks Most callers persist the document and never read a write's delta, and its tree needs
   * a map of every field the write touched, which a 100k-field write would otherwise build only to
   * drop it; the two version vectors are two more maps per write. Nothing here may change after
   * the write (the op's own root, shared slots and the op's own lists), so the delta is the same
   * whenever it is first read. No closure: one object per write.
   */
  static _ofWrite(
    id: DocId,
    peer: PeerId,
    prev: number,
    time: number,
    root: Slot | undefined,
    keys: readonly string[],
    slots: readonly Slot[],
  ): DocDelta {
    const d = new DocDelta(id, EMPTY_VV, EMPTY_VV, EMPTY_ROOT);
    d.#since = undefined;
    d.#vv = undefined;
    d.#root = root;
    d.#peer = peer;
    d.#prev = prev;
    d.#time = time;
    d.#keys = keys;
    d.#slots = slots;
    return d;
  }

  /**
   * @internal A decoded delta: `bytes` is `slotBytes(root)`, summed by the decoder (see
   * {@link DocDelta._bytes}); `adoptable`: the tree has no clear and no empty slot.
   */
  static _decoded(
    id: DocId,
    since: VersionVector,
    versionVector: VersionVector,
    root: Slot,
    bytes: number,
    adoptable: boolean,
  ): DocDelta {
    const d = new DocDelta(id, since, versionVector, root);
    d.#bytes = bytes;
    d.#adoptable = adoptable;
    return d;
  }

  /** @internal `adoptableBytes(root)`, known without a walk for a decoded delta. */
  get _adoptableBytes(): number {
    if (this.#bytes >= 0) return this.#adoptable ? this.#bytes : -1;
    return adoptableBytes(this.root);
  }

  /**
   * @internal The size estimate of the tree (`slotBytes(root)`): what a merge of it can add at
   * most. Known without a walk of the tree for a decoded delta.
   */
  get _bytes(): number {
    return this.#bytes >= 0 ? this.#bytes : slotBytes(this.root);
  }

  /** @internal The state tree (treat it as opaque and never mutate it). */
  get root(): Slot {
    const keys = this.#keys;
    if (keys !== undefined) {
      // A write's delta, first read: `#root` is the op's root, if it made one.
      this.#root = opTree(this.#root ?? new Slot(), keys, this.#slots as Slot[]);
      this.#keys = undefined;
      this.#slots = undefined;
    }
    return this.#root as Slot;
  }
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

/** Placeholder tree of a write's delta before it is built (never read). */
const EMPTY_ROOT = new Slot();

const UNCHANGED: WriteResult = Object.freeze({
  changed: false,
  delta: undefined,
  warning: undefined,
});

function sizeWarning(bytes: number): SizeWarning | undefined {
  return bytes > DOC_WARN_BYTES ? { code: 'CRDT_DOC_LARGE', bytes } : undefined;
}

/**
 * The key bytes of `src`'s top-level fields that `dst` holds already. A merge does not add them,
 * so `slotBytes(src)` minus these still bounds what merging `src` into `dst` adds.
 * @remarks Paid only when the plain bound says the merge might cross the size limit: a tighter
 * bound that keeps the document under it spares the merge its guarded path (an undo record per
 * field), the case of a full-state merge of a large document into its replica (every key held,
 * the result just under the limit). Two states in key order (decoded or snapshots, the usual
 * case there) are compared in one walk of each, without a probe of the map per field.
 */
function heldKeyBytes(dst: Slot, src: Slot): number {
  const mine = dst.kids;
  const theirs = src.kids;
  if (mine === undefined || theirs === undefined) return 0;
  if (theirs.size * 8 >= mine.size) {
    const n = heldKeyBytesInOrder(mine, theirs);
    if (n >= 0) return n;
  }
  let n = 0;
  for (const k of theirs.keys()) if (mine.has(k)) n += k.length + 2;
  return n;
}

/**
 * {@link heldKeyBytes} by a merge join of two maps in key order; -1 if either is not.
 * @remarks `forEach` over `theirs` and each step of `mine`'s iterator consumed at once: a
 * `for…of` and an iterator result kept across steps were an object per key, garbage that a
 * 100k-key merge paid for in scavenges of the state it is merging.
 */
function heldKeyBytesInOrder(
  mine: ReadonlyMap<string, Slot>,
  theirs: ReadonlyMap<string, Slot>,
): number {
  const it = mine.keys();
  const first = it.next();
  let done = first.done === true;
  let m: string = first.done === true ? '' : first.value;
  let prev: string | undefined;
  let n = 0;
  theirs.forEach((_, k) => {
    if (n < 0) return;
    if (prev !== undefined && !(prev < k)) {
      n = -1;
      return;
    }
    prev = k;
    while (!done) {
      if (m >= k) {
        if (m === k) n += k.length + 2;
        return;
      }
      const step = it.next();
      if (step.done === true) done = true;
      else if (m < step.value) m = step.value;
      else {
        n = -1;
        return;
      }
    }
  });
  return n;
}

/** The tree of a write's delta: `root` with the write's top-level fields as children, in order. */
function opTree(root: Slot, keys: readonly string[], slots: readonly Slot[]): Slot {
  if (keys.length > 0 && root.kids === undefined) {
    const kids = new Map<string, Slot>();
    for (let i = 0; i < keys.length; i++) kids.set(keys[i] as string, slots[i] as Slot);
    root.kids = kids;
  }
  return root;
}

/**
 * One document's CRDT state.
 *
 * @remarks
 * Writes build a small delta (the operation) and merge it, so local and remote changes go through
 * the same code; a field the document lacks is placed in the document while the operation is
 * built and adopted at commit, so it costs one map insert, not two (see `OpBuilder`). Writes cost
 * O(path depth + value size), never a scan of the document.
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
    const bytes = root.clr === undefined ? delta._adoptableBytes : -1;
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
    this.#root.kids?.forEach((kid, k) => log.record(k, kid));
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
    let incoming = this.#root.kids === undefined ? Infinity : delta._bytes;
    if (incoming !== Infinity && this.byteSize + incoming > DOC_MAX_BYTES)
      incoming -= heldKeyBytes(this.#root, delta.root);
    return this.#guardSize(delta.root, incoming, (doc, undo) => doc.#mergeRaw(delta, undo));
  }

  /**
   * @internal Whether {@link CrdtDocument._mergeFields} can merge a delta of document `id` whose
   * root holds the entries of `rootEntries` (its children not read yet): same document, this
   * document has fields, and the delta does not clear the root (a clear at the root changes
   * every field: `merge` runs it on a clone).
   */
  _canMergeFields(id: DocId, rootEntries: Slot): boolean {
    return (
      this.#root.kids !== undefined &&
      rootEntries.clr === undefined &&
      (id === this.id || docIdKey(id) === this.key)
    );
  }

  /**
   * @internal {@link CrdtDocument.merge} of the delta (`since`, `vv`, a root with the entries of
   * `rootEntries` and the children `fields` reads), merging each top-level field as it is read
   * (`mergeEncoded`). Only where {@link CrdtDocument._canMergeFields} holds.
   * @remarks The same result as `merge`: the root's entries, then each field as `mergeSlot`
   * merges it, then the version vector. The size bound of `merge` needs the whole delta, so the
   * merge records what it changes (as the guarded path of `merge` does) and puts it back if
   * reading a field fails, the clock refuses the delta's greatest time, or the result is over the
   * size limit; the version vector changes only after all three passed. A held field with
   * children of its own is merged last, after those checks, in place unless what it can add
   * might cross the limit (recording it would copy its map of children on every merge). The change
   * log records each field as it is merged (dropped, to be rebuilt, if the merge is undone).
   */
  _mergeFields(
    since: VersionVector,
    vv: VersionVector,
    rootEntries: Slot,
    fields: FieldSource,
    clock: HybridClock | undefined,
  ): MergeResult {
    const root = this.#root;
    const { reg, mdots, ctr, rst, clr } = root;
    const undo = childUndo(fields.count, true);
    const bytes = this.#meter.bytes;
    const log = this.#log;
    const m: Meter = { bytes, changed: false };
    // The delta's greatest time, for the clock (a walk of each field while it is at hand).
    let t = clock === undefined ? -1 : maxTime(rootEntries);
    try {
      // No children and no clears in `rootEntries`: only the root's own entries change.
      mergeSlot(root, rootEntries, [], m);
      while (fields.next()) {
        const kid = fields.slot;
        mergeField(root, fields.key, kid, m, undo);
        if (clock !== undefined) {
          const kt = maxTime(kid);
          if (kt > t) t = kt;
        }
        log?.record(fields.key, kid);
      }
      fields.end();
      for (const v of vv.values()) if (v > t) t = v;
      if (clock !== undefined && t >= 0) clock.receive(t as Timestamp['time']);
      const later = undo.deferred as unknown[];
      if (later.length > 0) {
        // Held fields with children, left for last: merged in place when what they can add keeps
        // the document under the limit (as `merge` would), else recorded and copied on write.
        undo.deferred = undefined;
        let add = 0;
        for (let i = 0; i < later.length; i += 2) add += slotBytes(later[i + 1] as Slot);
        const guard = m.bytes + this.#idBytes + add > DOC_MAX_BYTES ? undo : undefined;
        for (let i = 0; i < later.length; i += 2) {
          const k = later[i] as string;
          const kid = later[i + 1] as Slot;
          mergeField(root, k, kid, m, guard);
          log?.record(k, kid);
        }
      }
      this.#meter.bytes = m.bytes;
      if (this.byteSize > DOC_MAX_BYTES) throw tooLarge(this.byteSize);
    } catch (e) {
      root.reg = reg;
      root.mdots = mdots;
      root.ctr = ctr;
      root.rst = rst;
      root.clr = clr;
      undoChildren(root, undo);
      this.#meter.bytes = bytes;
      // Rows recorded for the undone fields would only be stale, but a rebuild would index the
      // refused state: rebuilt from the restored state when next needed.
      if (log !== undefined) this.#log = undefined;
      throw e;
    }
    this.#compactLog();
    let changed = m.changed;
    for (const [p, pt] of vv) {
      const have = this.#vv.get(p) ?? -1;
      if (pt > have && have >= (since.get(p) ?? -1)) {
        this.#vv.set(p, pt);
        changed = true;
      }
    }
    return { changed, warning: sizeWarning(this.byteSize) };
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
    try {
      op.build(intent);
    } catch (e) {
      op.abandon();
      throw e;
    }
    if (op.time === -1) {
      op.abandon();
      return UNCHANGED;
    }
    const root = this.#root;
    // The op's running size (its scratch meter) bounds how much the merge can grow the document.
    if (
      op.rootClears === undefined &&
      root.clr === undefined &&
      this.byteSize + op.bytes <= DOC_MAX_BYTES
    ) {
      // Well under the limit: the op's fields already sit in the document; commit them there.
      // The document's own meter (commit does not throw): no meter object per write.
      const m = this.#meter;
      m.changed = false;
      op.commit(root, m);
      this.#logWrite(at.peer, op.time, op.keys);
      if (!m.changed) return UNCHANGED;
      this.#vv.set(at.peer, op.time);
      const delta = DocDelta._ofWrite(
        this.id,
        at.peer,
        prev ?? -1,
        op.time,
        op.rootIfAny,
        op.keys,
        op.slots,
      );
      return { changed: true, delta, warning: sizeWarning(this.byteSize) };
    }
    // Near the limit (or a delete): take the op out of the document and merge it as a delta,
    // undone if the result is too large.
    op.abandon();
    const tree = opTree(op.root, op.keys, op.slots);
    const result = this.#guardSize(tree, op.bytes, (doc, undo) => {
      const m: Meter = { bytes: doc.#meter.bytes, changed: false };
      mergeSlot(doc.#root, tree, [], m, undo);
      doc.#meter.bytes = m.bytes;
      doc.#logWrite(at.peer, op.time, op.keys);
      if (m.changed) doc.#vv.set(at.peer, op.time);
      return m.changed;
    });
    if (!result.changed) return UNCHANGED;
    const since = new Map<PeerId, number>();
    if (prev !== undefined) since.set(at.peer, prev);
    return {
      changed: true,
      delta: new DocDelta(this.id, since, new Map([[at.peer, op.time]]), tree),
      warning: result.warning,
    };
  }

  /** Records a local write of the top-level fields `keys` in the change log. */
  #logWrite(peer: PeerId, time: number, keys: readonly string[]): void {
    if (keys.length === 0) return;
    // Every entry of an op carries the op's dot, so the log needs one row per top-level field.
    this.#log?.addWrite(peer, time, keys);
    this.#compactLog();
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
    root.kids?.forEach((kid, k) => log.record(k, kid));
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
    return { changed, warning: sizeWarning(this.byteSize) };
  }

  /** See {@link CrdtDocument.#guardSize}: `apply` in place, undone if the result is too large. */
  #applyOrRollBack(apply: (doc: CrdtDocument, undo: ChildUndo | undefined) => boolean): boolean {
    const root = this.#root;
    const { reg, mdots, ctr, rst, clr } = root;
    const hadKids = root.kids !== undefined;
    // The fields the merge replaces or adds, and what they held, recorded by the merge as it
    // visits them (no pass of its own). With no fields yet, undoing is dropping all of them.
    const undo: ChildUndo | undefined = hadKids ? childUndo() : undefined;
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
    else undoChildren(root, undo);
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
   * @remarks One row for the whole write, holding a copy of its key list (exact size: the op's
   * list has room to grow, which a document holding many small writes would keep), not the
   * delta's map (which would keep the delta's slots alive): a batch write of n fields costs one
   * copy, not n row appends.
   */
  addWrite(peer: PeerId, time: number, keys: readonly string[]): void {
    if (keys.length === 0) return;
    this.#add(peer, time, keys.length === 1 ? (keys[0] as string) : keys.slice());
    this.#size += keys.length - 1;
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

/** Fields one op holds in a short list before it indexes them (see `OpBuilder.#held`). */
const HELD_SCAN = 8;

// Never pushed to: `OpBuilder` replaces them at its first field.
const NO_KEYS: string[] = [];
const NO_SLOTS: Slot[] = [];

/**
 * Builds the delta of one intent against the current state: a write transaction.
 *
 * @remarks
 * One map per field: a top-level field the document does not hold yet gets the op's slot placed
 * straight into the document's map (marked with the op as its `shared` token), so the document's
 * map, probed anyway, is also what finds a field the intent names twice, and committing costs no
 * second insert. Fields the document holds get a slot of the op's own (in `keys`/`slots`, indexed
 * once there are more than {@link HELD_SCAN}), joined into the document's at commit as any delta
 * is. The op's own map of its fields (its delta's tree) is built only if someone reads the delta.
 *
 * Invariants, until {@link OpBuilder.commit} or {@link OpBuilder.abandon} (one of which always
 * runs, also when building throws): reads of the document's state while building
 * ({@link OpBuilder.#local}) skip the placed slots, so an intent sees the state before it, as a
 * separate op tree would; `abandon` removes every placed slot, leaving the document exactly as
 * it was; nothing else runs on the document meanwhile (writes are synchronous).
 */
class OpBuilder implements Meter {
  /** The op's root (created on first use): holds a delete's clear; see {@link OpBuilder.root}. */
  #root: Slot | undefined = undefined;
  /** The op's time, or -1 while nothing was written. */
  time = -1;
  // `keys` and `slots` start as one shared empty list, replaced by a one-element list at the
  // first field: most writes name one field, and a list grown by `push` reserves 17 slots.
  /** The op's top-level fields, in the order first written. */
  keys: string[] = NO_KEYS;
  /** Per entry of `keys`, the op's slot (placed in the document, or held by the op). */
  slots: Slot[] = NO_SLOTS;
  /**
   * Per entry of `keys`, the document's slot of a held field (undefined for a placed one); made
   * at the first held field (a write of new fields, e.g. a document's first batch, needs none).
   */
  #docSlots: (Slot | undefined)[] | undefined = undefined;
  /** Index of the held slots by key, once `keys` is too long to scan. */
  #heldIndex: Map<string, Slot> | undefined = undefined;
  readonly #doc: CrdtDocument;
  readonly #at: Timestamp;
  #t: number;
  /** The op's size estimate (see {@link Meter}: the op is its own scratch meter). */
  bytes = 0;
  changed = false;

  constructor(doc: CrdtDocument, at: Timestamp) {
    this.#doc = doc;
    this.#at = at;
    this.#t = at.time;
  }

  /**
   * The op's root: holds a delete's clear; its children are `keys`/`slots` (see `opTree`).
   * @remarks Created on first use: a write whose delta is never read has no use for it.
   */
  get root(): Slot {
    return (this.#root ??= new Slot());
  }

  /** The clears of the op's root (a delete's), without creating the root. */
  get rootClears(): readonly Clear[] | undefined {
    return this.#root?.clr;
  }

  /** The op's root if created, for its delta (`opTree` makes one otherwise). */
  get rootIfAny(): Slot | undefined {
    return this.#root;
  }

  /** The op's slot of top-level field `key` (created on first use). */
  #top(key: string): Slot {
    const root = this.#doc._root;
    const kids = (root.kids ??= new Map());
    const d = kids.get(key);
    if (d !== undefined && d.shared === this) return d;
    let s = d === undefined ? undefined : this.#held(key);
    if (s === undefined) {
      s = new Slot();
      if (d === undefined) {
        s.shared = this;
        kids.set(key, s);
      } else this.#heldIndex?.set(key, s);
      const n = this.keys.length;
      if (n === 0) {
        this.keys = [key];
        this.slots = [s];
      } else {
        this.keys.push(key);
        this.slots.push(s);
      }
      if (this.#docSlots !== undefined) this.#docSlots.push(d);
      else if (d !== undefined) {
        if (n === 0) this.#docSlots = [d];
        else {
          const ds = new Array<Slot | undefined>(n + 1).fill(undefined);
          ds[n] = d;
          this.#docSlots = ds;
        }
      }
      this.bytes += key.length + 2;
    }
    return s;
  }

  /** The op's own slot of a field the document holds, if the op wrote it already. */
  #held(key: string): Slot | undefined {
    const n = this.keys.length;
    if (n <= HELD_SCAN) {
      for (let i = 0; i < n; i++) if (this.keys[i] === key) return this.slots[i];
      return undefined;
    }
    let index = this.#heldIndex;
    if (index === undefined) {
      index = new Map();
      for (let i = 0; i < n; i++) {
        const s = this.slots[i] as Slot;
        if (s.shared !== this) index.set(this.keys[i] as string, s);
      }
      this.#heldIndex = index;
    }
    return index.get(key);
  }

  /**
   * Commits the op into `root` (the document's): the placed slots become the document's (shared
   * with the op's delta), the held ones are joined into the document's fields.
   */
  commit(root: Slot, m: Meter): void {
    const kids = root.kids;
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i] as string;
      const s = this.slots[i] as Slot;
      const d = this.#docSlots?.[i];
      if (d !== undefined) {
        mergeHeldField(root, k, d, s, m);
        continue;
      }
      s.shared = false;
      const bytes = adoptableBytes(s);
      if (bytes >= 0) {
        s.shared = true;
        m.bytes += bytes + k.length + 2;
        m.changed = true;
      } else {
        // Not what a merge would build (an empty slot): merged like any other field.
        kids?.delete(k);
        mergeField(root, k, s, m);
      }
    }
    if (kids?.size === 0) root.kids = undefined;
  }

  /** Takes the op's placed slots out of the document again (it is as before the op). */
  abandon(): void {
    const root = this.#doc._root;
    const kids = root.kids;
    for (let i = 0; i < this.keys.length; i++) {
      const s = this.slots[i] as Slot;
      if (s.shared !== this) continue;
      s.shared = false;
      kids?.delete(this.keys[i] as string);
    }
    if (kids?.size === 0) root.kids = undefined;
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
          addClear(this.root, c, this);
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
    for (const a of intent.apply ?? NO_ITEMS) {
      checkPath(a.path);
      if (a.op === 'RESTART') {
        const key = a.path.join('.');
        if (Object.hasOwn(typedefs, key) && typedefs[key] === 'PN_COUNTER')
          throw crdtError('CRDT_INVALID_INTENT', 'a PN_COUNTER cannot be restarted');
        const n = a.with ?? 0;
        checkNumber(n);
        addRestart(this.#leaf(a.path), { peer: this.#at.peer, time: this.#t, value: n }, this);
        this.#mark();
      } else {
        checkNumber(a.by);
        this.#increment(a.path, a.by);
      }
    }
    for (const s of intent.set ?? NO_ITEMS) {
      checkPath(s.path);
      this.#set(s.path, s.value, typedefs);
    }
    for (const p of intent.unset ?? NO_ITEMS) {
      checkPath(p);
      const local = this.#local(p);
      if (local === undefined || !isLive(local)) continue;
      let s = this.#top(p[0] as string);
      for (let i = 1; i < p.length; i++) s = s.ensureChild(p[i] as string, this);
      addClear(
        s,
        { peer: this.#at.peer, time: this.#t, ctx: new Map(this.#doc.versionVector) },
        this,
      );
      // A SET of the same path in this intent happened before the UNSET: drop it from the op.
      applyClear(
        s,
        { peer: this.#at.peer, time: this.#t, ctx: new Map([[this.#at.peer, this.#t]]) },
        this,
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
    addCtr(leaf, { peer: this.#at.peer, time: this.#t, sum, epochPeer, epochTime }, this);
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
          addMapDot(this.#leaf(path), { peer: this.#at.peer, time: this.#t }, this);
          this.#mark();
          return;
        }
        addMapDot(this.#leaf(path), { peer: this.#at.peer, time: this.#t }, this);
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
          this,
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
    addReg(leaf, { peer: this.#at.peer, time: this.#t, value, attachment }, this);
    this.#mark();
  }

  /** The op's slot at `path`, typing every ancestor as a map at this op's time. */
  #leaf(path: Path): Slot {
    if (path.length > MAX_FIELD_DEPTH)
      throw crdtError('CRDT_INVALID_VALUE', `fields nested deeper than ${MAX_FIELD_DEPTH}`);
    let s = this.#top(path[0] as string);
    for (let i = 1; i < path.length; i++) {
      addMapDot(s, { peer: this.#at.peer, time: this.#t }, this);
      s = s.ensureChild(path[i] as string, this);
    }
    return s;
  }

  /** The document's slot at `path` as it was before this op (the op's placed slots skipped). */
  #local(path: Path): Slot | undefined {
    let s: Slot | undefined = this.#doc._root;
    for (const k of path) {
      s = s.child(k);
      if (s === undefined || s.shared === this) return undefined;
    }
    return s;
  }
}

const NO_TYPEDEFS: Typedefs = Object.freeze({});

/** An absent clause of an intent (no array per write). */
const NO_ITEMS: readonly never[] = [];

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
