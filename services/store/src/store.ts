/**
 * The document store: commits, reads, queries, indexes, the change log and checkpoints, over a
 * {@link StorageEngine} laid out as `keys.ts` describes.
 *
 * @remarks
 * Invariants:
 * - One commit is one engine batch: records, values, index entries, tombstones, the change-log
 *   entry, metadata and checkpoints land together or not at all.
 * - Commits queued in the same event-loop turn are grouped into one batch and, when durable,
 *   one synced write (group commit). A commit's promise resolves only after that write
 *   returned; "committed" listeners run after that, in commit order.
 * - Commit sequences are assigned in queue order, grow by one per commit that writes
 *   documents, and are persisted as the key of the commit's change-log entry (the newest entry is
 *   never trimmed), so they continue after a restart.
 * - Every engine access is synchronous, so a commit (read old values, write new ones) and an
 *   index build step never interleave; index entries always match the stored values of every
 *   index that exists, ready or still building.
 */
import { decodeDocId, encodeDocId } from '@lattice/crdt';
import type { DocId, VersionVector } from '@lattice/crdt';
import {
  executePlan,
  explain,
  inIndexRange,
  MISSING,
  parse,
  planQuery,
  valueAtPath,
} from '@lattice/dql';
import type {
  Document,
  DocumentSource,
  IndexInfo,
  IndexScanRequest,
  JsonValue,
  QueryPlan,
  SourceCapabilities,
  Statement,
} from '@lattice/dql';
import { v1 } from '@lattice/proto';
import { randomBytes } from 'node:crypto';
import type { EngineOp, EngineSizes, StorageEngine } from './engine.js';
import { storeError } from './errors.js';
import {
  allocKey,
  collectionKey,
  collectionOf,
  collectionPrefix,
  collectionPrefixLength,
  decodePosting,
  docKey,
  encodePosting,
  FORMAT_META,
  INDEX_TYPE_END,
  INDEX_TYPE_TAG,
  indexDefKey,
  indexPrefix,
  indexPrefixLength,
  indexValuePrefix,
  join2,
  logKey,
  metaKey,
  nameBytes,
  overflowedPosting,
  peerKey,
  POSTING_MAX_IDS,
  POSTING_OVERFLOW,
  prefixEnd,
  readU64,
  STORE_FORMAT,
  Tag,
  tagPrefix,
  tombstoneKey,
  valueKey,
} from './keys.js';
import { streamPlan } from './query-stream.js';
import {
  decodeRecord,
  encodeRecord,
  encodeRecordTail,
  recordLength,
  varintLength,
  writeVarint,
} from './record-codec.js';
import type { DecodedRecord } from './record-codec.js';
import type { StreamSource } from './query-stream.js';
import { decodeTrustedValue, encodeValue, NOT_FOUND, readEncodedPath } from './value-codec.js';

/** A commit sequence number assigned by the store. */
export type CommitSeq = number;

/**
 * One document written by a commit.
 * @remarks `state` and `encodedValue` are written as given, not copied: do not change their
 * bytes until the commit has settled.
 */
export interface DocumentPut {
  readonly collection: string;
  readonly id: DocId;
  /** The CRDT state (opaque to the store). */
  readonly state: Uint8Array;
  /** The materialized value (with `_id`); undefined for a tombstone. */
  readonly value?: Readonly<Record<string, unknown>> | undefined;
  /** The value already in the value encoding (the bus path); wins over `value`. */
  readonly encodedValue?: Uint8Array | undefined;
  readonly versionVector: VersionVector;
  /** Deletion time (Unix ms) of a tombstone; defaults to the store's clock. */
  readonly deletedAt?: number;
}

/** Removes every trace of a document (EVICT). */
export interface DocumentEvict {
  readonly kind: 'evict';
  readonly collection: string;
  readonly id: DocId;
}

/** A write in a commit. */
export type CommitWrite = ({ readonly kind?: 'put' } & DocumentPut) | DocumentEvict;

/** "The document was at version `seq` when I read it" (0: it did not exist). */
export interface Expectation {
  readonly collection: string;
  readonly id: DocId;
  readonly seq: CommitSeq;
}

/** A W3C trace context (the write's trace, carried through the change log to other peers). */
export interface TraceParent {
  readonly traceparent: string;
  readonly tracestate?: string;
}

/** What one commit writes. */
export interface CommitRequest {
  readonly writes: readonly CommitWrite[];
  /** The trace of the write; stored with the commit's change-log entry. */
  readonly trace?: TraceParent;
  readonly expect?: readonly Expectation[];
  readonly meta?: Readonly<Record<string, Uint8Array>>;
  readonly checkpoints?: Readonly<Record<string, Uint8Array>>;
}

/** The outcome of a commit. */
export interface CommitResult {
  /** The commit's sequence; for a commit without document writes, the latest sequence. */
  readonly seq: CommitSeq;
}

/** What the store holds for one document. */
export interface StoredDocument {
  readonly collection: string;
  readonly id: DocId;
  readonly idBytes: Uint8Array;
  /** The commit that last wrote it. */
  readonly seq: CommitSeq;
  readonly state: Uint8Array;
  readonly versionVector: VersionVector;
  readonly tombstone: boolean;
  readonly deletedAt?: number;
  /** The materialized value (decoded on first access); undefined for a tombstone. */
  readonly value?: Document;
}

/** One entry of the change log. */
export interface CommitEntry {
  readonly seq: CommitSeq;
  readonly collections: readonly { readonly collection: string; readonly ids: Uint8Array[] }[];
  /** The trace of the write that made the commit, when it had one. */
  readonly trace?: TraceParent;
}

/** A page of query results. */
export interface QueryPage {
  readonly items: JsonValue[];
  /** Pass to {@link DocumentStore.nextPage}; undefined on the last page. */
  readonly cursor?: string;
}

/** An index definition. */
export interface IndexDefinition {
  readonly collection: string;
  readonly name: string;
  readonly path: readonly string[];
  readonly ready: boolean;
}

/** Counts and sizes of one collection. */
export interface CollectionStats {
  readonly collection: string;
  readonly documents: number;
  readonly tombstones: number;
  readonly indexes: number;
  readonly bytes: number;
}

/** Limits on everything a caller sends or asks for. */
export interface StoreLimits {
  /** Largest CRDT state plus value of one document (default 6 MiB). */
  readonly maxDocumentBytes: number;
  /** Largest commit (default 64 MiB). */
  readonly maxCommitBytes: number;
  /** Most documents in one commit (default 100,000). */
  readonly maxWritesPerCommit: number;
  /** Most items a query may produce (default 100,000). */
  readonly maxResultItems: number;
  /** Largest page (default 1,000) and the default page (100). */
  readonly maxPageSize: number;
  readonly defaultPageSize: number;
  /** Open cursors (default 256) and how long an idle one lives (default 60 s). */
  readonly maxCursors: number;
  readonly cursorTtlMs: number;
  /** Commits kept in the change log (default 1,000,000). */
  readonly maxLogCommits: number;
  /** Deepest index path (default 24). */
  readonly maxIndexDepth: number;
}

/** Default {@link StoreLimits}. */
export const DEFAULT_STORE_LIMITS: StoreLimits = {
  maxDocumentBytes: 6 * 1024 * 1024,
  maxCommitBytes: 64 * 1024 * 1024,
  maxWritesPerCommit: 100_000,
  maxResultItems: 100_000,
  maxPageSize: 1_000,
  defaultPageSize: 100,
  maxCursors: 256,
  cursorTtlMs: 60_000,
  maxLogCommits: 1_000_000,
  maxIndexDepth: 24,
};

/** Options of {@link DocumentStore.open}. */
export interface StoreOptions {
  /** Acknowledge commits only after they are durable (synced WAL). Default true. */
  readonly sync?: boolean;
  readonly limits?: Partial<StoreLimits>;
  /** The clock for tombstone times and cursor expiry (Unix ms). */
  readonly now?: () => number;
  /** Progress of index builds resumed while opening. */
  readonly onIndexProgress?: (progress: IndexProgress) => void;
}

/** Progress of an index build. */
export interface IndexProgress {
  readonly collection: string;
  readonly name: string;
  readonly done: number;
  readonly total: number;
}

/** Called after each durable commit that wrote documents. */
export type CommittedListener = (entry: CommitEntry) => void;

interface PreparedWrite {
  readonly collection: string;
  readonly idBytes: Uint8Array;
  /** `collection NUL idBytes(latin1)`: the document's key in per-commit and per-group maps. */
  readonly okey: string;
  readonly evict: boolean;
  /** The CRDT state and the encoded record fields after it (see {@link encodeRecord}). */
  readonly state?: Uint8Array;
  readonly tail?: Uint8Array;
  readonly valueBytes?: Uint8Array;
  readonly value?: unknown;
  readonly tombstone: boolean;
  readonly deletedAt: number;
  readonly bytes: number;
}

interface PreparedCommit {
  readonly writes: PreparedWrite[];
  readonly expect: {
    readonly collection: string;
    readonly idBytes: Uint8Array;
    readonly seq: number;
  }[];
  readonly meta: [string, Uint8Array][];
  readonly checkpoints: [string, Uint8Array][];
  readonly bytes: number;
  readonly trace: TraceParent | undefined;
  resolve: (r: CommitResult) => void;
  reject: (e: unknown) => void;
}

function unsettled(): never {
  throw new Error('a prepared commit settled before it was queued');
}

/**
 * A document's value as index maintenance sees it: the caller's object when it gave one, else
 * the encoded bytes (read from at the index paths only; see `readEncodedPath`).
 */
type IndexedDoc = { readonly value: unknown } | { readonly bytes: Uint8Array };

/** A document written earlier in the same commit group: its seq and value (for indexes). */
interface OverlayEntry {
  readonly seq: number;
  /** Undefined for a tombstone or an evicted document, or where no index needed it. */
  readonly doc: IndexedDoc | undefined;
}

/**
 * An open query cursor: the rest of the result, pulled a page at a time.
 * @remarks For a streamed plan `rest` reads the engine lazily (it holds an engine iterator, so
 * it is closed with `return()` when the cursor ends, expires or the store closes); otherwise
 * it walks the computed result.
 */
interface Cursor {
  readonly rest: Iterator<JsonValue>;
  /** The next item, already pulled (there is always one: a cursor ends when `rest` does). */
  ahead: JsonValue;
  expires: number;
}

const BUILD_CHUNK = 1_000;
/** Values fetched per multi-get by index scans. */
const FETCH_CHUNK = 256;
/** Parsed statements kept (LRU) and the longest statement text cached. */
const STATEMENT_CACHE_SIZE = 256;
const MAX_CACHED_STATEMENT = 4_096;
const GROUP_MAX_BYTES = 64 * 1024 * 1024;
/**
 * Most tombstones the store tracks in memory (see `#tombstones`); past this it stops tracking
 * and every revival deletes its tombstone key blindly, as if one might exist.
 */
const MAX_TRACKED_TOMBSTONES = 1_000_000;
const EMPTY = new Uint8Array(0);

/**
 * A document store over one engine.
 * @remarks Open with {@link DocumentStore.open}; close with {@link DocumentStore.close}.
 */
export class DocumentStore {
  readonly limits: StoreLimits;
  readonly #engine: StorageEngine;
  /** The DQL source over the engine (stateless: one for every query). */
  readonly #source: StoreSource;
  readonly #sync: boolean;
  readonly #now: () => number;
  #open = false;
  #lastSeq = 0;
  #oldestLogSeq = 1;
  readonly #collections = new Set<string>();
  readonly #indexes = new Map<string, Map<string, IndexDefinition>>();
  readonly #builds = new Map<string, Promise<void>>();
  #queue: PreparedCommit[] = [];
  #flushScheduled = false;
  #flushing: Promise<void> = Promise.resolve();
  readonly #listeners = new Set<CommittedListener>();
  readonly #cursors = new Map<string, Cursor>();
  readonly #statements = new Map<string, Statement>();
  /**
   * The documents (by {@link overlayKey}) that have a tombstone key (`T`), read from the engine
   * at open and kept in step with every write after it succeeded; undefined once there were
   * more than {@link MAX_TRACKED_TOMBSTONES} (then every live write deletes `T` blindly).
   * @remarks A put of a live document deletes the tombstone key only where one exists: a blind
   * delete per document was a third of the per-document batch operations.
   */
  #tombstones: Set<string> | undefined = new Set();

  private constructor(engine: StorageEngine, options: StoreOptions) {
    this.#engine = engine;
    this.#source = new StoreSource(engine);
    this.#sync = options.sync ?? true;
    this.#now = options.now ?? Date.now;
    this.limits = { ...DEFAULT_STORE_LIMITS, ...options.limits };
  }

  /**
   * Opens a store on `engine` (opening the engine), resuming unfinished index builds.
   * @remarks A database of an older store format is upgraded first: format 1 (one index key per
   * entry, no postings) has its index entries removed and its indexes rebuilt, reported through
   * `onIndexProgress` like any resumed build.
   * @throws `STORE_UNSUPPORTED_FORMAT` for a database of a newer format (nothing is changed).
   */
  static async open(engine: StorageEngine, options: StoreOptions = {}): Promise<DocumentStore> {
    const store = new DocumentStore(engine, options);
    await engine.open();
    try {
      store.#load();
      await store.#upgrade();
    } catch (err) {
      await engine.close();
      throw err;
    }
    store.#open = true;
    for (const defs of store.#indexes.values()) {
      for (const def of defs.values()) {
        if (!def.ready) await store.#build(def, options.onIndexProgress);
      }
    }
    return store;
  }

  #load(): void {
    // The newest change-log entry is never trimmed, so it holds the latest sequence.
    const logStart = tagPrefix(Tag.LOG);
    const logEnd = prefixEnd(logStart);
    for (const [k] of this.#engine.entries({
      gte: logStart,
      lt: logEnd,
      reverse: true,
      limit: 1,
    })) {
      this.#lastSeq = readU64(k, 1);
    }
    for (const [k] of this.#engine.entries({ gte: logStart, lt: logEnd, limit: 1 })) {
      this.#oldestLogSeq = readU64(k, 1);
    }
    if (this.#oldestLogSeq > this.#lastSeq) this.#oldestLogSeq = this.#lastSeq + 1;
    const cp = tagPrefix(Tag.COLLECTION);
    for (const [k] of this.#engine.entries({ gte: cp, lt: prefixEnd(cp) })) {
      this.#collections.add(collectionOf(k));
    }
    const xp = tagPrefix(Tag.INDEX_DEF);
    const tp = tagPrefix(Tag.TOMBSTONE);
    const tombstones = new Set<string>();
    for (const [k] of this.#engine.entries({ gte: tp, lt: prefixEnd(tp), values: false })) {
      if (tombstones.size >= MAX_TRACKED_TOMBSTONES) {
        this.#tombstones = undefined;
        break;
      }
      tombstones.add(overlayKey(collectionOf(k), k.subarray(collectionPrefixLength(k))));
    }
    if (this.#tombstones) this.#tombstones = tombstones;
    for (const [, v] of this.#engine.entries({ gte: xp, lt: prefixEnd(xp) })) {
      const d = v1.IndexDef.decode(v);
      this.#defsOf(d.collection).set(d.name, {
        collection: d.collection,
        name: d.name,
        path: d.path,
        ready: d.ready,
      });
    }
  }

  /** The format of the database: 1 where no format is recorded (older stores, or empty). */
  #readFormat(): number {
    const b = this.#engine.getMany([metaKey(FORMAT_META)])[0];
    if (b === undefined) return 1;
    const v = b.length === 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0) : -1;
    if (v < 1 || v > STORE_FORMAT) {
      throw storeError(
        'STORE_UNSUPPORTED_FORMAT',
        v < 1
          ? 'the database has an unreadable store format marker'
          : `the database is in store format ${v}; this version reads formats 1 to ${STORE_FORMAT}`,
        { format: String(v) },
      );
    }
    return v;
  }

  /**
   * Brings a format-1 database to the current format: every index is marked unbuilt and its
   * entries removed (format 1 wrote one entry key per document, which format 2 would read as
   * overflow entries without a posting), then the format is recorded; `open` then rebuilds the
   * indexes. Each step is idempotent, so a crash in between repeats it on the next open.
   */
  async #upgrade(): Promise<void> {
    if (this.#readFormat() === STORE_FORMAT) return;
    const defs = [...this.#indexes.values()].flatMap((m) => [...m.values()]);
    if (defs.length > 0) {
      const unbuilt = defs.map((d) => ({ ...d, ready: false }));
      this.#engine.write(
        unbuilt.map((d) => ({
          type: 'put',
          key: indexDefKey(d.collection, d.name),
          value: encodeDef(d),
        })),
        { sync: false },
      );
      for (const d of unbuilt) this.#defsOf(d.collection).set(d.name, d);
    }
    // Every index key, also those of indexes a crash left without a definition.
    await this.#deleteRange(tagPrefix(Tag.INDEX));
    const v = new Uint8Array(4);
    new DataView(v.buffer).setUint32(0, STORE_FORMAT);
    this.#engine.write([{ type: 'put', key: metaKey(FORMAT_META), value: v }], {
      sync: this.#sync,
    });
  }

  #defsOf(collection: string): Map<string, IndexDefinition> {
    let m = this.#indexes.get(collection);
    if (!m) this.#indexes.set(collection, (m = new Map()));
    return m;
  }

  #check(): void {
    if (!this.#open) throw storeError('STORE_NOT_OPEN', 'the store is not open');
  }

  /** The latest commit sequence. */
  get lastSeq(): CommitSeq {
    return this.#lastSeq;
  }

  /** The oldest commit sequence still in the change log. */
  get oldestLogSeq(): CommitSeq {
    return this.#oldestLogSeq;
  }

  /** Whether commits are acknowledged only once durable. */
  get durable(): boolean {
    return this.#sync && this.#engine.capabilities.durable;
  }

  /** Calls `listener` after each durable commit that wrote documents; returns an unsubscribe. */
  onCommitted(listener: CommittedListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // --- commits -----------------------------------------------------------------------------------

  /**
   * Commits writes, metadata and checkpoints atomically; resolves once durable.
   * @throws `STORE_CONFLICT` when an expectation failed (nothing written), `STORE_TOO_LARGE`,
   * `STORE_INVALID_ARGUMENT`, `STORE_IO`.
   */
  commit(request: CommitRequest): Promise<CommitResult> {
    this.#check();
    let prepared: PreparedCommit;
    try {
      prepared = this.#prepare(request);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<CommitResult>((resolve, reject) => {
      prepared.resolve = resolve;
      prepared.reject = reject;
      this.#queue.push(prepared);
      this.#scheduleFlush();
    });
  }

  /**
   * Flushes the queue soon: durable stores after the current event-loop turn (every request
   * that arrived in it shares the group's one fsync), others once the current task is done (a
   * group saves no fsync there; a turn's wait would only add latency).
   */
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    const run = (): void => {
      this.#flushScheduled = false;
      this.#flushing = new Promise<void>((resolve) => {
        this.#flush();
        resolve();
      });
    };
    if (this.durable) setImmediate(run);
    else queueMicrotask(run);
  }

  #prepare(request: CommitRequest): PreparedCommit {
    const writes = request.writes;
    if (writes.length > this.limits.maxWritesPerCommit) {
      throw storeError(
        'STORE_TOO_LARGE',
        `a commit holds at most ${this.limits.maxWritesPerCommit} documents`,
        {
          writes: String(writes.length),
        },
      );
    }
    const now = this.#now();
    let bytes = 0;
    const seen = new Set<string>();
    const out: PreparedWrite[] = [];
    for (const w of writes) {
      nameBytes(w.collection);
      const idBytes = encodeId(w.id);
      const k = overlayKey(w.collection, idBytes);
      if (seen.has(k)) {
        throw storeError('STORE_INVALID_ARGUMENT', 'a commit writes the same document twice', {
          collection: w.collection,
        });
      }
      seen.add(k);
      if (w.kind === 'evict') {
        out.push({
          collection: w.collection,
          idBytes,
          okey: k,
          evict: true,
          tombstone: false,
          deletedAt: 0,
          bytes: idBytes.length,
        });
        bytes += idBytes.length;
        continue;
      }
      const valueBytes =
        w.encodedValue ?? (w.value === undefined ? undefined : encodeValue(w.value));
      const tombstone = valueBytes === undefined || valueBytes.length === 0;
      const deletedAt = tombstone ? (w.deletedAt ?? now) : 0;
      // The fields after seq and state; the record is assembled once its seq is known.
      const tail = encodeRecordTail(w.versionVector, deletedAt, tombstone);
      const size = recordLength(w.state.length, tail.length) + (valueBytes?.length ?? 0);
      if (size > this.limits.maxDocumentBytes) {
        throw storeError(
          'STORE_TOO_LARGE',
          `document is ${size} bytes; the limit is ${this.limits.maxDocumentBytes}`,
          {
            collection: w.collection,
            bytes: String(size),
          },
        );
      }
      bytes += size + idBytes.length;
      out.push({
        collection: w.collection,
        idBytes,
        okey: k,
        evict: false,
        state: w.state,
        tail,
        ...(tombstone ? {} : { valueBytes: valueBytes as Uint8Array }),
        ...(w.encodedValue === undefined && w.value !== undefined ? { value: w.value } : {}),
        tombstone,
        deletedAt,
        bytes: size,
      });
    }
    const meta = Object.entries(request.meta ?? {});
    const checkpoints = Object.entries(request.checkpoints ?? {});
    for (const [, v] of [...meta, ...checkpoints]) bytes += v.length;
    if (bytes > this.limits.maxCommitBytes) {
      throw storeError(
        'STORE_TOO_LARGE',
        `commit is ${bytes} bytes; the limit is ${this.limits.maxCommitBytes}`,
        {
          bytes: String(bytes),
        },
      );
    }
    const expect = (request.expect ?? []).map((e) => {
      nameBytes(e.collection);
      if (!Number.isSafeInteger(e.seq) || e.seq < 0)
        throw storeError('STORE_INVALID_ARGUMENT', 'expected seq must be a non-negative integer');
      return { collection: e.collection, idBytes: encodeId(e.id), seq: e.seq };
    });
    const trace =
      request.trace && request.trace.traceparent.length <= 256 ? request.trace : undefined;
    return {
      writes: out,
      expect,
      meta,
      checkpoints,
      bytes,
      trace,
      resolve: unsettled,
      reject: unsettled,
    };
  }

  #flush(): void {
    if (!this.#open) {
      for (const c of this.#queue.splice(0))
        c.reject(storeError('STORE_NOT_OPEN', 'the store closed'));
      return;
    }
    // Take a group up to the byte cap; the rest waits for the next turn.
    let bytes = 0;
    let n = 0;
    while (
      n < this.#queue.length &&
      (n === 0 || bytes + (this.#queue[n] as PreparedCommit).bytes <= GROUP_MAX_BYTES)
    ) {
      bytes += (this.#queue[n] as PreparedCommit).bytes;
      n++;
    }
    const group = this.#queue.splice(0, n);
    if (this.#queue.length > 0) this.#scheduleFlush();

    const startSeq = this.#lastSeq;
    const ops: EngineOp[] = [];
    // Documents written earlier in this group: their seq and value, for later commits' checks.
    const overlay = new Map<string, OverlayEntry>();
    const newCollections: string[] = [];
    // Documents whose tombstone key this group writes (true) or deletes (false).
    const tombstones = new Map<string, boolean>();
    // Index postings changed by this group, written once each at the end.
    const postings = new PostingEdits();
    const done: {
      commit: PreparedCommit;
      result?: CommitResult;
      error?: unknown;
      entry?: CommitEntry;
    }[] = [];
    let seq = startSeq;

    for (const c of group) {
      const conflict = this.#checkExpectations(c, overlay);
      if (conflict) {
        done.push({ commit: c, error: conflict });
        continue;
      }
      let entry: CommitEntry | undefined;
      if (c.writes.length > 0) {
        seq++;
        entry = this.#stage(c.writes, seq, ops, overlay, newCollections, tombstones, postings);
        if (c.trace) entry = { ...entry, trace: c.trace };
        ops.push({ type: 'put', key: logKey(seq), value: encodeEntry(entry) });
      }
      for (const [k, v] of c.meta) ops.push({ type: 'put', key: metaKey(k), value: v });
      for (const [p, v] of c.checkpoints) ops.push({ type: 'put', key: peerKey(p), value: v });
      done.push(entry ? { commit: c, result: { seq }, entry } : { commit: c, result: { seq } });
    }
    if (seq !== startSeq) this.#trimLog(seq, ops);
    postings.finish(ops);

    if (ops.length > 0) {
      try {
        this.#engine.write(ops, { sync: this.#sync });
      } catch (err) {
        for (const c of newCollections) this.#collections.delete(c);
        const e = storeError(
          'STORE_IO',
          `commit failed: ${err instanceof Error ? err.message : String(err)}`,
          {},
          err,
        );
        for (const d of done) d.commit.reject(d.error ?? e);
        return;
      }
    }
    this.#trackTombstones(tombstones);
    this.#lastSeq = seq;
    for (const d of done) {
      if (d.error !== undefined) d.commit.reject(d.error);
      else d.commit.resolve(d.result as CommitResult);
    }
    for (const d of done) {
      if (!d.entry) continue;
      for (const l of this.#listeners) {
        try {
          l(d.entry);
        } catch {
          // A listener's failure is its own (it runs after the commit is durable); it must not
          // stop other listeners.
        }
      }
    }
  }

  /** Whether `T` of a document may exist, as of the writes staged so far in this group. */
  #tombstoneMayExist(okey: string, staged: ReadonlyMap<string, boolean>): boolean {
    const t = staged.get(okey);
    if (t !== undefined) return t;
    return this.#tombstones === undefined || this.#tombstones.has(okey);
  }

  /** Applies the tombstone keys a successful write created (true) or deleted (false). */
  #trackTombstones(changes: ReadonlyMap<string, boolean>): void {
    const set = this.#tombstones;
    if (set === undefined) return;
    for (const [k, exists] of changes) {
      if (!exists) set.delete(k);
      else if (set.size < MAX_TRACKED_TOMBSTONES) set.add(k);
      else {
        this.#tombstones = undefined;
        return;
      }
    }
  }

  #checkExpectations(c: PreparedCommit, overlay: Map<string, OverlayEntry>): unknown {
    if (c.expect.length === 0) return undefined;
    // Documents written earlier in this group answer from the overlay; the rest from the engine.
    const unseen = c.expect.filter((e) => !overlay.has(overlayKey(e.collection, e.idBytes)));
    const records = this.#engine.getMany(unseen.map((e) => docKey(e.collection, e.idBytes)));
    const stored = new Map(unseen.map((e, i) => [e, records[i]] as const));
    for (const e of c.expect) {
      const o = overlay.get(overlayKey(e.collection, e.idBytes));
      const r = stored.get(e);
      const actual = o ? o.seq : r ? decodeRecord(r).seq : 0;
      if (actual !== e.seq) {
        return storeError(
          'STORE_CONFLICT',
          `document changed since it was read (expected version ${e.seq}, found ${actual})`,
          { collection: e.collection, expected: String(e.seq), actual: String(actual) },
        );
      }
    }
    return undefined;
  }

  #stage(
    writes: readonly PreparedWrite[],
    seq: number,
    ops: EngineOp[],
    overlay: Map<string, OverlayEntry>,
    newCollections: string[],
    tombstones: Map<string, boolean>,
    postings: PostingEdits,
  ): CommitEntry {
    const byCollection = new Map<string, Uint8Array[]>();
    // Index maintenance: the old values (read unless written earlier in this group), the new
    // ones, and the postings of both, each posting read once per group.
    const needOld: number[] = [];
    const nextRefs: (PostingEdit | undefined)[][] = [];
    let indexed = false;
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i] as PreparedWrite;
      const defs = this.#indexes.get(w.collection);
      if (!defs || defs.size === 0) continue;
      indexed = true;
      if (!overlay.has(w.okey)) needOld.push(i);
      const next = nextDoc(w);
      const refs: (PostingEdit | undefined)[] = [];
      for (const def of defs.values()) {
        const nv = next === undefined ? undefined : indexableOf(next, def.path);
        refs.push(
          nv === undefined ? undefined : postings.ref(indexValuePrefix(w.collection, def.name, nv)),
        );
      }
      nextRefs[i] = refs;
    }
    const oldValues = new Map<number, IndexedDoc>();
    if (indexed) {
      const keys: Uint8Array[] = [];
      for (const i of needOld) {
        const w = writes[i] as PreparedWrite;
        keys.push(valueKey(w.collection, w.idBytes));
      }
      const got = this.#engine.getMany(keys.concat(postings.unread()));
      needOld.forEach((i, j) => {
        const b = got[j];
        if (b) oldValues.set(i, { bytes: b });
      });
      postings.fill(got.slice(needOld.length));
      // The postings of the old values (read again only for updates that change a value).
      const oldRefs: (PostingEdit | undefined)[][] = [];
      for (let i = 0; i < writes.length; i++) {
        const w = writes[i] as PreparedWrite;
        const defs = this.#indexes.get(w.collection);
        if (!defs || defs.size === 0) continue;
        const prev = overlay.get(w.okey);
        const old = prev ? prev.doc : oldValues.get(i);
        const refs: (PostingEdit | undefined)[] = [];
        if (old !== undefined) {
          for (const def of defs.values()) {
            const ov = indexableOf(old, def.path);
            refs.push(
              ov === undefined
                ? undefined
                : postings.ref(indexValuePrefix(w.collection, def.name, ov)),
            );
          }
        }
        oldRefs[i] = refs;
      }
      const unread = postings.unread();
      if (unread.length > 0) postings.fill(this.#engine.getMany(unread));
      for (let i = 0; i < writes.length; i++) {
        const nr = nextRefs[i];
        const or = oldRefs[i];
        if (nr === undefined || or === undefined) continue;
        const id = (writes[i] as PreparedWrite).idBytes;
        for (let d = 0; d < nr.length; d++) {
          const n = nr[d];
          const o = or[d];
          if (o === n) continue; // the same value (or none before and after)
          if (o) postings.remove(o, id, ops);
          if (n) postings.add(n, id, ops);
        }
      }
    }
    writes.forEach((w, i) => {
      const ok = w.okey;
      let ids = byCollection.get(w.collection);
      if (!ids) byCollection.set(w.collection, (ids = []));
      ids.push(w.idBytes);
      if (!this.#collections.has(w.collection)) {
        this.#collections.add(w.collection);
        newCollections.push(w.collection);
        ops.push({ type: 'put', key: collectionKey(w.collection), value: EMPTY });
      }
      overlay.set(ok, { seq, doc: nextRefs[i] === undefined ? undefined : nextDoc(w) });
      const [dk, vk] = documentKeys(w.collection, w.idBytes);
      // A document whose value was just read (for its indexes) is live: live documents have no
      // tombstone key. Otherwise the tracked set knows (or, untracked, assume one may exist).
      const clearTombstone = !oldValues.has(i) && this.#tombstoneMayExist(ok, tombstones);
      if (w.evict) {
        ops.push({ type: 'del', key: dk }, { type: 'del', key: vk });
        if (clearTombstone) {
          ops.push({ type: 'del', key: tombstoneKey(w.collection, w.idBytes) });
          tombstones.set(ok, false);
        }
        return;
      }
      ops.push({
        type: 'put',
        key: dk,
        value: encodeRecord(seq, w.state as Uint8Array, w.tail as Uint8Array),
      });
      if (w.valueBytes) {
        ops.push({ type: 'put', key: vk, value: w.valueBytes });
        if (clearTombstone) {
          ops.push({ type: 'del', key: tombstoneKey(w.collection, w.idBytes) });
          tombstones.set(ok, false);
        }
      } else {
        ops.push(
          { type: 'del', key: vk },
          { type: 'put', key: tombstoneKey(w.collection, w.idBytes), value: u64Bytes(w.deletedAt) },
        );
        tombstones.set(ok, true);
      }
    });
    return {
      seq,
      collections: [...byCollection].map(([collection, ids]) => ({ collection, ids })),
    };
  }

  #trimLog(seq: number, ops: EngineOp[]): void {
    // Keep at most maxLogCommits entries; drop a few of the oldest per commit (amortized).
    let dropped = 0;
    // The newest entry always stays: it is where the latest sequence is read from at open.
    const keep = Math.max(1, this.limits.maxLogCommits);
    while (seq - this.#oldestLogSeq + 1 > keep && dropped < 64) {
      ops.push({ type: 'del', key: logKey(this.#oldestLogSeq) });
      this.#oldestLogSeq++;
      dropped++;
    }
  }

  // --- reads -------------------------------------------------------------------------------------

  /** The stored documents with these ids (missing ids are left out), in the order asked. */
  get(collection: string, ids: readonly DocId[]): StoredDocument[] {
    this.#check();
    nameBytes(collection);
    const idBytes = ids.map(encodeId);
    const got = this.#readBoth(collection, idBytes);
    const out: StoredDocument[] = [];
    for (let i = 0; i < idBytes.length; i++) {
      const record = got[2 * i];
      if (record)
        out.push(
          toStored(collection, ids[i] as DocId, idBytes[i] as Uint8Array, record, got[2 * i + 1]),
        );
    }
    return out;
  }

  /**
   * The materialized value of each id, in the order asked: `undefined` where the document is
   * missing or a tombstone.
   * @remarks For readers that need values only (no CRDT state, versions or seq): one key per
   * document (its value) instead of two, and no record to decode. A document's value key exists
   * exactly while it is live, written in the same batch as its record.
   */
  getValues(collection: string, ids: readonly DocId[]): (Document | undefined)[] {
    this.#check();
    nameBytes(collection);
    const keys: Uint8Array[] = new Array<Uint8Array>(ids.length);
    for (let i = 0; i < ids.length; i++) keys[i] = valueKey(collection, encodeId(ids[i] as DocId));
    const got = this.#engine.getMany(keys);
    const out: (Document | undefined)[] = new Array<Document | undefined>(got.length);
    for (let i = 0; i < got.length; i++) {
      const v = got[i];
      out[i] = v ? (decodeTrustedValue(v) as Document) : undefined;
    }
    return out;
  }

  /** Record and value of each document, in one multi-get: `[record0, value0, record1, …]`. */
  #readBoth(collection: string, idBytes: readonly Uint8Array[]): (Uint8Array | undefined)[] {
    const keys: Uint8Array[] = new Array<Uint8Array>(2 * idBytes.length);
    for (let i = 0; i < idBytes.length; i++) {
      const [dk, vk] = documentKeys(collection, idBytes[i] as Uint8Array);
      keys[2 * i] = dk;
      keys[2 * i + 1] = vk;
    }
    return this.#engine.getMany(keys);
  }

  /** Records and values of documents, in one multi-get. */
  #read(
    collection: string,
    idBytes: readonly Uint8Array[],
  ): { record?: Uint8Array; value?: Uint8Array }[] {
    const got = this.#readBoth(collection, idBytes);
    return idBytes.map((_, i) => {
      const record = got[2 * i];
      const value = got[2 * i + 1];
      return { ...(record ? { record } : {}), ...(value ? { value } : {}) };
    });
  }

  /** The raw records (`DocRecord` bytes) and values of documents by canonical id bytes. */
  getEncoded(
    collection: string,
    idBytes: readonly Uint8Array[],
  ): { record?: Uint8Array; value?: Uint8Array }[] {
    this.#check();
    nameBytes(collection);
    return this.#read(collection, idBytes);
  }

  /**
   * Up to `limit` stored documents (live and tombstones) of a collection in `_id` order, after the
   * canonical id `after` when given: pages of a full scan (initial sync, rescans).
   */
  records(
    collection: string,
    options: { readonly after?: Uint8Array; readonly limit?: number } = {},
  ): StoredDocument[] {
    this.#check();
    const p = collectionPrefix(Tag.DOC, collection);
    const limit = Math.min(Math.max(options.limit ?? 1000, 1), 10_000);
    const skip = p.length;
    const found: { idBytes: Uint8Array; record: Uint8Array }[] = [];
    for (const [k, v] of this.#engine.entries({
      ...(options.after ? { gt: join2(p, options.after) } : { gte: p }),
      lt: prefixEnd(p),
      limit,
    })) {
      found.push({ idBytes: Uint8Array.from(k.subarray(skip)), record: v });
    }
    const values = this.#engine.getMany(found.map((f) => valueKey(collection, f.idBytes)));
    return found.map((f, i) =>
      toStored(collection, decodeDocId(f.idBytes), f.idBytes, f.record, values[i]),
    );
  }

  /** The materialized values of live documents, in `_id` order (for scans and tests). */
  *values(collection: string): Iterable<Document> {
    this.#check();
    const p = collectionPrefix(Tag.VALUE, collection);
    for (const [, v] of this.#engine.entries({ gte: p, lt: prefixEnd(p) })) {
      yield decodeTrustedValue(v) as Document;
    }
  }

  /** A metadata value, or undefined. */
  getMeta(key: string): Uint8Array | undefined {
    this.#check();
    return this.#engine.getMany([metaKey(key)])[0];
  }

  /** A remote peer's checkpoint, or undefined. */
  getCheckpoint(peer: string): Uint8Array | undefined {
    this.#check();
    return this.#engine.getMany([peerKey(peer)])[0];
  }

  // --- queries -----------------------------------------------------------------------------------

  /** The DQL source over this store (exact, `_id`-ordered scans, ordered indexes). */
  get source(): DocumentSource {
    return this.#source;
  }

  /** Ready indexes, as the planner sees them. */
  indexInfo(collection?: string): IndexInfo[] {
    const out: IndexInfo[] = [];
    for (const [c, defs] of this.#indexes) {
      if (collection !== undefined && c !== collection) continue;
      for (const d of defs.values())
        if (d.ready) out.push({ name: d.name, collection: c, path: d.path });
    }
    return out;
  }

  /**
   * Runs a SELECT (or EXPLAIN SELECT) and returns all items.
   * @throws `STORE_NOT_A_QUERY` for mutations, DQL errors for bad statements, `STORE_TOO_LARGE`
   * when the result exceeds `maxResultItems`.
   */
  select(statement: string, args: Readonly<Record<string, JsonValue>> = {}): JsonValue[] {
    const planned = this.#plan(statement, args);
    return 'items' in planned ? planned.items : this.#execute(planned.plan);
  }

  /** Parses and plans a SELECT; EXPLAIN answers right away. */
  #plan(
    statement: string,
    args: Readonly<Record<string, JsonValue>>,
  ): { readonly plan: QueryPlan } | { readonly items: JsonValue[] } {
    this.#check();
    const stmt = this.#parse(statement);
    const target = stmt.kind === 'explain' ? stmt.statement : stmt;
    if (target.kind !== 'select') {
      throw storeError(
        'STORE_NOT_A_QUERY',
        `the store answers SELECT only; got ${target.kind.toUpperCase()}`,
        {
          statement: target.kind,
        },
      );
    }
    nameBytes(target.from.name);
    const plan = planQuery(target, { args, indexes: this.indexInfo(target.from.name) });
    return stmt.kind === 'explain' ? { items: [{ plan: explain(plan) }] } : { plan };
  }

  /** Executes a plan in full; throws `STORE_TOO_LARGE` past `maxResultItems`. */
  #execute(plan: QueryPlan): JsonValue[] {
    const { items } = executePlan(plan, this.#source, { now: this.#now });
    if (items.length > this.limits.maxResultItems) {
      throw storeError(
        'STORE_TOO_LARGE',
        `query produced ${items.length} items; the limit is ${this.limits.maxResultItems} (add LIMIT)`,
        {
          items: String(items.length),
        },
      );
    }
    return items;
  }

  /**
   * The parsed statement, from a bounded LRU cache keyed by the statement text.
   * @remarks Only parsing is cached: a plan depends on the arguments (the planner binds them to
   * choose index ranges) and on the indexes, and planning is cheap next to parsing.
   */
  #parse(statement: string): Statement {
    const cache = this.#statements;
    const hit = cache.get(statement);
    if (hit !== undefined) {
      // Most recently used last: Map iteration order is insertion order.
      cache.delete(statement);
      cache.set(statement, hit);
      return hit;
    }
    const parsed = parse(statement);
    if (statement.length <= MAX_CACHED_STATEMENT) {
      if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      cache.set(statement, parsed);
    }
    return parsed;
  }

  /**
   * Runs a query and returns its first page and, if more remain, a cursor.
   * @remarks Plans whose result order is the store's read order (see `query-stream.ts`) are
   * streamed: each page reads only as far into the engine as it needs, so their results are not
   * bounded by `maxResultItems`. Other plans are computed in full first.
   */
  query(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
    pageSize: number = this.limits.defaultPageSize,
  ): QueryPage {
    const size = this.#pageSize(pageSize);
    const planned = this.#plan(statement, args);
    let rest: Iterator<JsonValue>;
    if ('items' in planned) rest = planned.items.values();
    else {
      const stream = streamPlan(planned.plan, this.#source, { now: this.#now });
      rest = stream ?? this.#execute(planned.plan).values();
    }
    const first = rest.next();
    if (first.done === true) return { items: [] };
    this.#sweepCursors();
    const cursor: Cursor = { rest, ahead: first.value, expires: 0 };
    const { items, done } = this.#pull(cursor, size);
    if (done) return { items };
    if (this.#cursors.size >= this.limits.maxCursors) {
      rest.return?.();
      throw storeError(
        'STORE_TOO_MANY_CURSORS',
        `at most ${this.limits.maxCursors} cursors may be open`,
      );
    }
    const id = randomBytes(12).toString('base64url');
    cursor.expires = this.#now() + this.limits.cursorTtlMs;
    this.#cursors.set(id, cursor);
    return { items, cursor: id };
  }

  /** The next page of a cursor. */
  nextPage(cursor: string, pageSize: number = this.limits.defaultPageSize): QueryPage {
    this.#check();
    const size = this.#pageSize(pageSize);
    this.#sweepCursors();
    const c = this.#cursors.get(cursor);
    if (!c)
      throw storeError('STORE_CURSOR_EXPIRED', 'no such cursor (finished, expired or unknown)');
    let page: { items: JsonValue[]; done: boolean };
    try {
      page = this.#pull(c, size);
    } catch (err) {
      this.#cursors.delete(cursor);
      c.rest.return?.();
      throw err;
    }
    const { items, done } = page;
    if (done) {
      this.#cursors.delete(cursor);
      return { items };
    }
    c.expires = this.#now() + this.limits.cursorTtlMs;
    return { items, cursor };
  }

  /** Up to `size` items of a cursor; `done` when the result ended (else `ahead` is the next). */
  #pull(c: Cursor, size: number): { items: JsonValue[]; done: boolean } {
    const items: JsonValue[] = [c.ahead];
    for (;;) {
      const next = c.rest.next();
      if (next.done === true) return { items, done: true };
      if (items.length === size) {
        c.ahead = next.value;
        return { items, done: false };
      }
      items.push(next.value);
    }
  }

  #pageSize(n: number): number {
    if (!Number.isInteger(n) || n < 0)
      throw storeError('STORE_INVALID_ARGUMENT', 'page size must be a non-negative integer');
    return Math.min(n === 0 ? this.limits.defaultPageSize : n, this.limits.maxPageSize);
  }

  #sweepCursors(): void {
    const now = this.#now();
    for (const [id, c] of this.#cursors) {
      if (c.expires > now) continue;
      this.#cursors.delete(id);
      c.rest.return?.();
    }
  }

  // --- change log --------------------------------------------------------------------------------

  /**
   * Commits after `since`, oldest first, optionally only those touching `collection` (and only
   * that collection's documents).
   * @throws `STORE_LOG_TRUNCATED` when commits after `since` were already dropped from the log.
   */
  changes(
    since: CommitSeq,
    options: { readonly collection?: string; readonly limit?: number } = {},
  ): { commits: CommitEntry[]; more: boolean; lastSeq: CommitSeq } {
    this.#check();
    if (!Number.isSafeInteger(since) || since < 0)
      throw storeError('STORE_INVALID_ARGUMENT', 'since must be a non-negative integer');
    if (since + 1 < this.#oldestLogSeq && since < this.#lastSeq) {
      throw storeError(
        'STORE_LOG_TRUNCATED',
        `the change log starts at commit ${this.#oldestLogSeq}`,
        {
          since: String(since),
          oldest: String(this.#oldestLogSeq),
        },
      );
    }
    const limit = Math.min(options.limit && options.limit > 0 ? options.limit : 1000, 10_000);
    const commits: CommitEntry[] = [];
    const start = logKey(since + 1);
    const end = prefixEnd(tagPrefix(Tag.LOG));
    let more = false;
    for (const [, v] of this.#engine.entries({ gte: start, lt: end })) {
      const entry = decodeEntry(v);
      const filtered =
        options.collection === undefined
          ? entry
          : {
              seq: entry.seq,
              collections: entry.collections.filter((c) => c.collection === options.collection),
            };
      if (filtered.collections.length === 0) continue;
      if (commits.length >= limit) {
        more = true;
        break;
      }
      commits.push(filtered);
    }
    return { commits, more, lastSeq: this.#lastSeq };
  }

  // --- indexes -----------------------------------------------------------------------------------

  /** Every index definition, optionally of one collection. */
  listIndexes(collection?: string): IndexDefinition[] {
    const out: IndexDefinition[] = [];
    for (const [c, defs] of this.#indexes) {
      if (collection === undefined || c === collection) out.push(...defs.values());
    }
    return out;
  }

  /**
   * Creates an index and builds it over existing documents, reporting progress; commits made
   * meanwhile keep it consistent. Creating an identical index again waits for it and succeeds.
   * @throws `STORE_INDEX_EXISTS` (same name, other path), `STORE_INVALID_INDEX`.
   */
  async createIndex(
    collection: string,
    name: string,
    path: readonly string[],
    onProgress?: (p: IndexProgress) => void,
  ): Promise<IndexDefinition> {
    this.#check();
    nameBytes(collection);
    nameBytes(name);
    if (
      path.length === 0 ||
      path.length > this.limits.maxIndexDepth ||
      path.some((p) => typeof p !== 'string' || p.length === 0) ||
      path[0] === '_id'
    ) {
      throw storeError(
        'STORE_INVALID_INDEX',
        `cannot index path ${JSON.stringify(path)} (non-empty field names, at most ${this.limits.maxIndexDepth}, not _id)`,
        {
          path: path.join('.'),
        },
      );
    }
    const existing = this.#defsOf(collection).get(name);
    if (existing) {
      if (existing.path.join('\u0000') !== path.join('\u0000')) {
        throw storeError(
          'STORE_INDEX_EXISTS',
          `index ${name} on ${collection} exists with path ${existing.path.join('.')}`,
          {
            collection,
            name,
          },
        );
      }
      await this.#builds.get(`${collection}\u0000${name}`);
      return this.#defsOf(collection).get(name) ?? existing;
    }
    // Keys a drop interrupted by a crash may have left under this name would read as entries:
    // remove them in this turn (usually there are none), before the definition exists.
    const stale = indexPrefix(collection, name);
    while (this.#deleteChunk(stale, prefixEnd(stale)));
    const def: IndexDefinition = { collection, name, path: [...path], ready: false };
    this.#engine.write(
      [{ type: 'put', key: indexDefKey(collection, name), value: encodeDef(def) }],
      { sync: this.#sync },
    );
    this.#defsOf(collection).set(name, def);
    await this.#build(def, onProgress);
    return this.#defsOf(collection).get(name) as IndexDefinition;
  }

  #build(def: IndexDefinition, onProgress?: (p: IndexProgress) => void): Promise<void> {
    const key = `${def.collection}\u0000${def.name}`;
    const running = this.#builds.get(key);
    if (running) return running;
    const p = this.#runBuild(def, onProgress).finally(() => this.#builds.delete(key));
    this.#builds.set(key, p);
    return p;
  }

  async #runBuild(def: IndexDefinition, onProgress?: (p: IndexProgress) => void): Promise<void> {
    const p = collectionPrefix(Tag.VALUE, def.collection);
    const end = prefixEnd(p);
    let total = 0;
    for (const _ of this.#engine.entries({ gte: p, lt: end })) total++;
    let done = 0;
    let after: Uint8Array | undefined;
    const skip = collectionPrefixLength(p) + 0;
    onProgress?.({ collection: def.collection, name: def.name, done, total });
    for (;;) {
      this.#check();
      if (this.#defsOf(def.collection).get(def.name) !== def) return; // dropped meanwhile
      // One chunk: read and write in the same turn, so no commit interleaves with it.
      const ops: EngineOp[] = [];
      const found: { readonly key: Uint8Array; readonly id: Uint8Array }[] = [];
      let n = 0;
      for (const [k, v] of this.#engine.entries({
        ...(after ? { gt: after } : { gte: p }),
        lt: end,
        limit: BUILD_CHUNK,
      })) {
        const iv = indexableOf({ bytes: v }, def.path);
        after = Uint8Array.from(k);
        if (iv !== undefined)
          found.push({
            key: indexValuePrefix(def.collection, def.name, iv),
            id: after.subarray(skip),
          });
        n++;
      }
      if (found.length > 0) {
        const postings = new PostingEdits();
        const refs = found.map((f) => postings.ref(f.key));
        postings.fill(this.#engine.getMany(postings.unread()));
        found.forEach((f, i) => postings.add(refs[i] as PostingEdit, f.id, ops));
        postings.finish(ops);
        this.#engine.write(ops, { sync: false });
      }
      done += n;
      if (n < BUILD_CHUNK) break;
      onProgress?.({
        collection: def.collection,
        name: def.name,
        done,
        total: Math.max(total, done),
      });
      await new Promise<void>((r) => setImmediate(r));
    }
    const ready: IndexDefinition = { ...def, ready: true };
    // A synced write also makes the unsynced chunks before it durable (one WAL).
    this.#engine.write(
      [{ type: 'put', key: indexDefKey(def.collection, def.name), value: encodeDef(ready) }],
      { sync: this.#sync },
    );
    this.#defsOf(def.collection).set(def.name, ready);
    onProgress?.({ collection: def.collection, name: def.name, done, total: done });
  }

  /** Drops an index and its entries. @throws `STORE_UNKNOWN_INDEX`. */
  async dropIndex(collection: string, name: string): Promise<void> {
    this.#check();
    const defs = this.#indexes.get(collection);
    if (!defs?.has(name)) {
      throw storeError('STORE_UNKNOWN_INDEX', `no index ${name} on ${collection}`, {
        collection,
        name,
      });
    }
    // Forget it first: commits stop maintaining it, the planner stops using it.
    defs.delete(name);
    this.#engine.write([{ type: 'del', key: indexDefKey(collection, name) }], { sync: this.#sync });
    // A new index of the same name (created meanwhile) cleared what was left and owns the range.
    await this.#deleteRange(indexPrefix(collection, name), () => !defs.has(name));
  }

  /** Deletes every key starting with `p`, a chunk per turn (unsynced), while `go()` holds. */
  async #deleteRange(p: Uint8Array, go: () => boolean = () => true): Promise<void> {
    const end = prefixEnd(p);
    while (go() && this.#deleteChunk(p, end)) await new Promise<void>((r) => setImmediate(r));
  }

  /** Deletes up to one chunk of keys in `[gte, lt)` (unsynced); whether it found any. */
  #deleteChunk(gte: Uint8Array, lt: Uint8Array): boolean {
    const ops: EngineOp[] = [];
    for (const [k] of this.#engine.entries({ gte, lt, limit: BUILD_CHUNK, values: false }))
      ops.push({ type: 'del', key: Uint8Array.from(k) });
    if (ops.length > 0) this.#engine.write(ops, { sync: false });
    return ops.length > 0;
  }

  // --- maintenance -------------------------------------------------------------------------------

  /**
   * Removes tombstones deleted before `beforeMs`, in batches of 1,000 (each checked and removed
   * in one turn, so a commit that revives a document is never undone); returns how many.
   */
  async reapTombstones(beforeMs: number): Promise<number> {
    this.#check();
    let reaped = 0;
    for (const collection of [...this.#collections]) {
      const before = reaped;
      const p = collectionPrefix(Tag.TOMBSTONE, collection);
      const end = prefixEnd(p);
      const skip = collectionPrefixLength(p);
      let after: Uint8Array | undefined;
      for (;;) {
        const due: Uint8Array[] = [];
        let seen = 0;
        for (const [k, v] of this.#engine.entries({
          ...(after ? { gt: after } : { gte: p }),
          lt: end,
          limit: BUILD_CHUNK,
        })) {
          after = Uint8Array.from(k);
          seen++;
          if (readU64(v, 0) < beforeMs) due.push(after.subarray(skip));
        }
        if (due.length > 0) {
          const recs = this.#engine.getMany(due.map((id) => docKey(collection, id)));
          const ops: EngineOp[] = [];
          const gone = new Map<string, boolean>();
          due.forEach((id, i) => {
            const r = recs[i];
            if (r && !decodeRecord(r).tombstone) return; // revived; its T key is gone too
            ops.push(
              { type: 'del', key: tombstoneKey(collection, id) },
              { type: 'del', key: docKey(collection, id) },
            );
            gone.set(overlayKey(collection, id), false);
            reaped++;
          });
          if (ops.length > 0) {
            this.#engine.write(ops, { sync: this.#sync });
            this.#trackTombstones(gone);
          }
        }
        if (seen < BUILD_CHUNK) break;
        await new Promise<void>((r) => setImmediate(r));
        this.#check();
      }
      if (reaped > before) {
        // Reaping leaves deletion markers over the ranges it emptied; ask the engine to compact
        // them away (RocksDB would otherwise keep them until background compaction reaches them).
        for (const tag of [Tag.TOMBSTONE, Tag.DOC]) {
          const range = collectionPrefix(tag, collection);
          await this.#engine.compactRange(range, prefixEnd(range));
          this.#check();
        }
      }
    }
    return reaped;
  }

  /**
   * Counts and sizes per collection (bytes of keys and values, counted by a scan), and the
   * engine's own size estimates for the whole store.
   */
  stats(): {
    lastSeq: number;
    oldestLogSeq: number;
    collections: CollectionStats[];
    totalBytes: number;
    engine: EngineSizes;
  } {
    this.#check();
    const collections: CollectionStats[] = [];
    let totalBytes = 0;
    for (const c of [...this.#collections].sort()) {
      const count = (tag: (typeof Tag)[keyof typeof Tag]): number => {
        const p = collectionPrefix(tag, c);
        let n = 0;
        for (const _ of this.#engine.entries({ gte: p, lt: prefixEnd(p) })) n++;
        return n;
      };
      let bytes = 0;
      for (const tag of [Tag.DOC, Tag.VALUE, Tag.INDEX, Tag.TOMBSTONE]) {
        const p = collectionPrefix(tag, c);
        bytes += this.#engine.approximateSize(p, prefixEnd(p));
      }
      totalBytes += bytes;
      collections.push({
        collection: c,
        documents: count(Tag.VALUE),
        tombstones: count(Tag.TOMBSTONE),
        indexes: this.#indexes.get(c)?.size ?? 0,
        bytes,
      });
    }
    return {
      lastSeq: this.#lastSeq,
      oldestLogSeq: this.#oldestLogSeq,
      collections,
      totalBytes,
      engine: this.#engine.sizes(),
    };
  }

  /** Waits for queued commits, then closes the engine. */
  async close(): Promise<void> {
    if (!this.#open) return;
    while (this.#queue.length > 0 || this.#flushScheduled) {
      await new Promise<void>((r) => setImmediate(r));
      await this.#flushing;
    }
    await Promise.allSettled([...this.#builds.values()]);
    this.#open = false;
    for (const c of this.#cursors.values()) c.rest.return?.();
    this.#cursors.clear();
    await this.#engine.close();
  }
}

/**
 * The DQL document source over an engine, and the reads of streamed queries.
 * @remarks Index scans re-check every document against the range: entries always match values
 * (same batch), but a streamed scan fetches values after reading keys, possibly a page later.
 */
class StoreSource implements DocumentSource, StreamSource {
  readonly capabilities: SourceCapabilities = { orderedScan: true, orderedIndex: true };
  readonly #engine: StorageEngine;

  constructor(engine: StorageEngine) {
    this.#engine = engine;
  }

  scan(collection: string, reverse = false): Iterable<Document> {
    return this.#values(collection, reverse);
  }

  *#values(collection: string, reverse: boolean): Iterable<Document> {
    const p = collectionPrefix(Tag.VALUE, collection);
    for (const [, v] of this.#engine.entries({ gte: p, lt: prefixEnd(p), reverse })) {
      yield decodeTrustedValue(v) as Document;
    }
  }

  get(collection: string, ids: readonly JsonValue[]): Iterable<Document> {
    // Values only (one key per document), into an array: a lookup by `_id` is usually one
    // document, and a generator cost more than building the array.
    const keys: Uint8Array[] = [];
    for (const id of ids) {
      let b: Uint8Array;
      try {
        b = encodeDocId(id as DocId);
      } catch {
        continue; // not a valid _id: no document can have it
      }
      keys.push(valueKey(collection, b));
    }
    const out: Document[] = [];
    for (const v of this.#engine.getMany(keys)) if (v) out.push(decodeTrustedValue(v) as Document);
    return out;
  }

  indexScan(r: IndexScanRequest): Iterable<Document> {
    const check = (doc: Document): boolean => inIndexRange(valueAtPath(doc, r.path), r.range);
    if (r.range.kind === 'eq' && r.range.values.length === 1) {
      // An equality lookup usually matches a few documents: answer with one posting read and
      // one multi-get, without the layers of generators a long scan streams through.
      const few = this.#fewByIndexKeys(r, check);
      if (few) return few;
    }
    return this.#indexScan(r, check);
  }

  *#indexScan(r: IndexScanRequest, check: (doc: Document) => boolean): Iterable<Document> {
    const reverse = r.direction === 'desc';
    for (const range of indexRanges(r, reverse))
      yield* this.#byIndexKeys(r.collection, r.index, range, reverse, r.range.kind === 'eq', check);
  }

  /**
   * The documents of a one-value equality from its posting (one point read, then one multi-get
   * of the values), or undefined when the posting overflowed.
   */
  #fewByIndexKeys(r: IndexScanRequest, check: (doc: Document) => boolean): Document[] | undefined {
    if (r.range.kind !== 'eq') return undefined;
    const key = indexValuePrefix(r.collection, r.index, r.range.values[0]);
    const posting = this.#engine.getMany([key])[0];
    if (!posting) return [];
    const ids = decodePosting(posting);
    if (!ids) return undefined;
    const vp = collectionPrefix(Tag.VALUE, r.collection);
    const keys: Uint8Array[] = [];
    for (const id of ids) keys.push(join2(vp, id));
    if (r.direction === 'desc') keys.reverse();
    const out: Document[] = [];
    for (const v of this.#engine.getMany(keys)) {
      if (!v) continue;
      const doc = decodeTrustedValue(v) as Document;
      if (check(doc)) out.push(doc);
    }
    return out;
  }

  *indexScanById(r: IndexScanRequest): Iterable<Document> {
    // The matching ids come from the keys alone; only their documents, a chunk at a time.
    const skip = indexPrefixLength(r.collection, r.index);
    const ids: Uint8Array[] = [];
    for (const range of indexRanges(r, false)) {
      for (const id of indexIds(this.#engine, range, skip, false, false)) ids.push(id);
    }
    ids.sort(Buffer.compare);
    const vp = collectionPrefix(Tag.VALUE, r.collection);
    for (let i = 0; i < ids.length; i += FETCH_CHUNK) {
      const values = this.#engine.getMany(ids.slice(i, i + FETCH_CHUNK).map((id) => join2(vp, id)));
      for (const v of values) {
        if (!v) continue;
        const doc = decodeTrustedValue(v) as Document;
        if (inIndexRange(valueAtPath(doc, r.path), r.range)) yield doc;
      }
    }
  }

  indexAll(collection: string, index: string, reverse: boolean): Iterable<Document> {
    const p = indexPrefix(collection, index);
    return this.#byIndexKeys(collection, index, { gte: p, lt: prefixEnd(p) }, reverse, false);
  }

  /** The documents of the index keys in `range`, in key order, a chunk of values at a time. */
  *#byIndexKeys(
    collection: string,
    index: string,
    range: { readonly gte: Uint8Array; readonly lt: Uint8Array },
    reverse: boolean,
    few: boolean,
    check?: (doc: Document) => boolean,
  ): Iterable<Document> {
    if (Buffer.compare(range.gte, range.lt) >= 0) return;
    const skip = indexPrefixLength(collection, index);
    const vp = collectionPrefix(Tag.VALUE, collection);
    let chunk: Uint8Array[] = [];
    const engine = this.#engine;
    const flush = function* (): Iterable<Document> {
      const values = engine.getMany(chunk);
      chunk = [];
      for (const v of values) {
        if (!v) continue;
        const doc = decodeTrustedValue(v) as Document;
        if (!check || check(doc)) yield doc;
      }
    };
    for (const id of indexIds(engine, range, skip, reverse, few)) {
      chunk.push(join2(vp, id));
      if (chunk.length >= FETCH_CHUNK) yield* flush();
    }
    if (chunk.length > 0) yield* flush();
  }
}

/** The key ranges of an index scan, in scan order. */
function indexRanges(
  r: IndexScanRequest,
  reverse: boolean,
): { readonly gte: Uint8Array; readonly lt: Uint8Array }[] {
  const ranges: { gte: Uint8Array; lt: Uint8Array }[] = [];
  if (r.range.kind === 'eq') {
    const prefixes = r.range.values.map((v) => indexValuePrefix(r.collection, r.index, v));
    prefixes.sort(Buffer.compare);
    for (const p of prefixes) ranges.push({ gte: p, lt: prefixEnd(p) });
    if (reverse) ranges.reverse();
    return ranges;
  }
  const tag = INDEX_TYPE_TAG[r.range.type];
  const endTag = INDEX_TYPE_END[r.range.type];
  if (tag === undefined || endTag === undefined) return ranges;
  const lower = r.range.lower;
  const upper = r.range.upper;
  const lo = lower
    ? indexValuePrefix(r.collection, r.index, lower.value)
    : indexPrefix(r.collection, r.index, tag);
  const hi = upper
    ? indexValuePrefix(r.collection, r.index, upper.value)
    : indexPrefix(r.collection, r.index, endTag);
  ranges.push({
    gte: lower && !lower.inclusive ? prefixEnd(lo) : lo,
    lt: upper && upper.inclusive ? prefixEnd(hi) : hi,
  });
  return ranges;
}

// --- helpers -------------------------------------------------------------------------------------

function toStored(
  collection: string,
  id: DocId,
  idBytes: Uint8Array,
  record: Uint8Array,
  value: Uint8Array | undefined,
): StoredDocument {
  return new StoredRecord(collection, id, idBytes, decodeRecord(record), value);
}

/** The accessor of {@link StoredRecord.value}, one for all instances (set in its static block). */
let valueAccessor: PropertyDescriptor;

/**
 * A stored document as read: the record's fields, and `value` decoded on first access.
 * @remarks Most readers of records (sync, merges) want state and versions, and a value's decode
 * costs more than the read itself. `value` stays an own enumerable property (present only when
 * the document has a value), as it was on the plain objects this replaced, but through one shared
 * accessor: a getter closure per document (`Object.defineProperty` or an object-literal getter)
 * cost about 1 µs per document, several times the rest of building it.
 */
class StoredRecord implements StoredDocument {
  readonly collection: string;
  readonly id: DocId;
  readonly idBytes: Uint8Array;
  readonly seq: CommitSeq;
  readonly state: Uint8Array;
  readonly versionVector: VersionVector;
  readonly tombstone: boolean;
  declare readonly deletedAt?: number;
  declare readonly value?: Document;
  #bytes: Uint8Array | undefined;
  #decoded: Document | undefined;

  constructor(
    collection: string,
    id: DocId,
    idBytes: Uint8Array,
    rec: DecodedRecord,
    value: Uint8Array | undefined,
  ) {
    this.collection = collection;
    this.id = id;
    this.idBytes = idBytes;
    this.seq = rec.seq;
    this.state = rec.state;
    this.versionVector = rec.versionVector;
    this.tombstone = rec.tombstone;
    if (rec.tombstone) (this as { deletedAt?: number }).deletedAt = rec.deletedAtMs;
    if (value) {
      this.#bytes = value;
      Object.defineProperty(this, 'value', valueAccessor);
    }
  }

  static {
    valueAccessor = {
      enumerable: true,
      configurable: true,
      get(this: StoredRecord): Document | undefined {
        if (this.#bytes === undefined) return undefined;
        return (this.#decoded ??= decodeTrustedValue(this.#bytes) as Document);
      },
    };
  }
}

function encodeId(id: DocId): Uint8Array {
  try {
    return encodeDocId(id);
  } catch (err) {
    throw storeError(
      'STORE_INVALID_ARGUMENT',
      `invalid _id: ${err instanceof Error ? err.message : String(err)}`,
      {},
      err,
    );
  }
}

function overlayKey(collection: string, idBytes: Uint8Array): string {
  return (
    collection +
    '\u0000' +
    Buffer.from(idBytes.buffer, idBytes.byteOffset, idBytes.byteLength).toString('latin1')
  );
}

/**
 * The record and value keys of one document.
 * @remarks Two pooled arrays filled by a loop (see `allocKey`): views of one `new Uint8Array`
 * made V8 move its bytes out of its heap (~1 µs), more than a second allocation costs.
 */
function documentKeys(collection: string, idBytes: Uint8Array): [Uint8Array, Uint8Array] {
  let prefixes = documentPrefixes.get(collection);
  if (!prefixes) {
    // `D coll` and `V coll` share their length: the name is what follows the tag.
    const d = collectionPrefix(Tag.DOC, collection);
    prefixes = Uint8Array.of(...d, Tag.VALUE, ...d.subarray(1));
    if (documentPrefixes.size < 10_000) documentPrefixes.set(collection, prefixes);
  }
  const p = prefixes.length / 2;
  const len = p + idBytes.length;
  const dk = allocKey(len);
  const vk = allocKey(len);
  for (let i = 0; i < p; i++) {
    dk[i] = prefixes[i] as number;
    vk[i] = prefixes[p + i] as number;
  }
  for (let i = 0; i < idBytes.length; i++) {
    const b = idBytes[i] as number;
    dk[p + i] = b;
    vk[p + i] = b;
  }
  return [dk, vk];
}

/** `D coll` and `V coll` back to back, by collection (see {@link documentKeys}). */
const documentPrefixes = new Map<string, Uint8Array>();

function u64Bytes(n: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, Math.floor(n / 0x1_0000_0000));
  v.setUint32(4, n >>> 0);
  return b;
}

/**
 * A change-log entry as a protobuf `Committed`: field 1 (`commit_seq`), then per collection field
 * 2 (`CommittedCollection {collection = 1, doc_ids = 2 (repeated)}`).
 * @remarks Written by hand (one per commit, with every `_id` of it); entries with a trace go
 * through protobufjs.
 */
function encodeEntry(e: CommitEntry): Uint8Array {
  if (!e.trace) {
    let len = 1 + varintLength(e.seq);
    const sizes: number[] = [];
    for (const c of e.collections) {
      const name = Buffer.byteLength(c.collection, 'utf8');
      let inner = name > 0 ? 1 + varintLength(name) + name : 0;
      for (const id of c.ids) inner += 1 + varintLength(id.length) + id.length;
      sizes.push(name, inner);
      len += 1 + varintLength(inner) + inner;
    }
    const out = Buffer.allocUnsafe(len);
    let at = 0;
    out[at++] = 0x08;
    at = writeVarint(out, at, e.seq);
    e.collections.forEach((c, i) => {
      const name = sizes[2 * i] as number;
      out[at++] = 0x12;
      at = writeVarint(out, at, sizes[2 * i + 1] as number);
      if (name > 0) {
        out[at++] = 0x0a;
        at = writeVarint(out, at, name);
        at += out.write(c.collection, at, 'utf8');
      }
      for (const id of c.ids) {
        out[at++] = 0x12;
        at = writeVarint(out, at, id.length);
        out.set(id, at);
        at += id.length;
      }
    });
    return out;
  }
  return v1.Committed.encode({
    commitSeq: e.seq,
    collections: e.collections.map((c) => ({ collection: c.collection, docIds: c.ids })),
    ...(e.trace ? { trace: { ...e.trace } } : {}),
  }).finish();
}

function decodeEntry(b: Uint8Array): CommitEntry {
  const m = v1.Committed.decode(b);
  const tp = m.trace?.traceparent;
  return {
    seq: m.commitSeq,
    collections: m.collections.map((c) => ({
      collection: c.collection ?? '',
      ids: c.docIds ?? [],
    })),
    ...(tp ? { trace: { traceparent: tp, tracestate: m.trace?.tracestate ?? '' } } : {}),
  };
}

function encodeDef(d: IndexDefinition): Uint8Array {
  return v1.IndexDef.encode({
    collection: d.collection,
    name: d.name,
    path: [...d.path],
    ready: d.ready,
  }).finish();
}

/** {@link indexable} of a value or of its encoded bytes. */
function indexableOf(doc: IndexedDoc, path: readonly string[]): unknown {
  if ('value' in doc) return indexable(doc.value, path);
  const v = readEncodedPath(doc.bytes, path);
  return v === NOT_FOUND ? undefined : v;
}

/** The value a document contributes to an index on `path`, or undefined (MISSING: no entry). */
function indexable(doc: unknown, path: readonly string[]): unknown {
  const v = valueAtPath(doc as JsonValue, path);
  return v === MISSING ? undefined : v;
}

/** The value a write leaves for index maintenance; undefined for tombstones and evictions. */
function nextDoc(w: PreparedWrite): IndexedDoc | undefined {
  if (!w.valueBytes) return undefined;
  return w.value !== undefined ? { value: w.value } : { bytes: w.valueBytes };
}

/** A posting being changed (see `keys.ts`). */
interface PostingEdit {
  readonly key: Uint8Array;
  /** The `_id`s of an inline posting, sorted; undefined once overflowed. */
  ids: Uint8Array[] | undefined;
  loaded: boolean;
  dirty: boolean;
}

/**
 * The postings one commit group (or one index build chunk) changes: each read once, changed in
 * memory, written once by {@link PostingEdits.finish}; overflow entries are written as they
 * change.
 * @remarks Adding an `_id` a posting holds and removing one it lacks change nothing, so an index
 * build and the commits that maintain the same index meanwhile may both add a document.
 */
class PostingEdits {
  readonly #edits = new Map<string, PostingEdit>();
  #unread: PostingEdit[] = [];

  /** The posting under `key`; read it ({@link unread}, {@link fill}) before changing it. */
  ref(key: Uint8Array): PostingEdit {
    const s = latin1(key);
    let e = this.#edits.get(s);
    if (!e) {
      e = { key, ids: [], loaded: false, dirty: false };
      this.#edits.set(s, e);
      this.#unread.push(e);
    }
    return e;
  }

  /** The keys of the postings referenced but not read yet. */
  unread(): Uint8Array[] {
    return this.#unread.map((e) => e.key);
  }

  /** Loads the postings of {@link unread} from what the engine returned for those keys. */
  fill(values: readonly (Uint8Array | undefined)[]): void {
    this.#unread.forEach((e, i) => {
      const v = values[i];
      e.ids = v ? decodePosting(v) : [];
      e.loaded = true;
    });
    this.#unread = [];
  }

  add(e: PostingEdit, id: Uint8Array, ops: EngineOp[]): void {
    if (!e.loaded) throw new Error('posting changed before it was read');
    if (!e.ids) {
      ops.push({ type: 'put', key: join2(e.key, id), value: EMPTY });
      return;
    }
    const at = searchIds(e.ids, id);
    if (at >= 0) return;
    e.ids.splice(~at, 0, id);
    e.dirty = true;
    if (e.ids.length > POSTING_MAX_IDS) {
      for (const x of e.ids) ops.push({ type: 'put', key: join2(e.key, x), value: EMPTY });
      e.ids = undefined;
    }
  }

  remove(e: PostingEdit, id: Uint8Array, ops: EngineOp[]): void {
    if (!e.loaded) throw new Error('posting changed before it was read');
    if (!e.ids) {
      ops.push({ type: 'del', key: join2(e.key, id) });
      return;
    }
    const at = searchIds(e.ids, id);
    if (at < 0) return;
    e.ids.splice(at, 1);
    e.dirty = true;
  }

  /** Writes the changed postings. */
  finish(ops: EngineOp[]): void {
    for (const e of this.#edits.values()) {
      if (!e.dirty) continue;
      if (!e.ids) ops.push({ type: 'put', key: e.key, value: overflowedPosting() });
      else if (e.ids.length === 0) ops.push({ type: 'del', key: e.key });
      else ops.push({ type: 'put', key: e.key, value: encodePosting(e.ids) });
    }
  }
}

/** Binary search of sorted ids: the index of `id`, or `~insertionPoint`. */
function searchIds(ids: readonly Uint8Array[], id: Uint8Array): number {
  let lo = 0;
  let hi = ids.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = Buffer.compare(ids[mid] as Uint8Array, id);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return ~lo;
}

function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/**
 * The `_id`s of the index keys in `range`, in key order (reversed when `reverse`): those of the
 * inline postings and those of overflow entries.
 */
function* indexIds(
  engine: StorageEngine,
  range: { readonly gte: Uint8Array; readonly lt: Uint8Array },
  skip: number,
  reverse: boolean,
  few: boolean,
): Iterable<Uint8Array> {
  for (const [k, v] of engine.entries({ ...range, reverse, few })) {
    const end = skip + indexValueLength(k, skip);
    if (end < k.length) {
      yield k.subarray(end); // an overflow entry
      continue;
    }
    if (v[0] === POSTING_OVERFLOW) continue; // its entries follow (or precede, reversed)
    const ids = decodePosting(v) ?? [];
    if (reverse) for (let i = ids.length - 1; i >= 0; i--) yield ids[i] as Uint8Array;
    else yield* ids;
  }
}

/** The length of the encoded index value starting at `at`. */
function indexValueLength(b: Uint8Array, at: number): number {
  let i = at;
  const tag = b[i++] as number;
  switch (tag) {
    case 0x01:
    case 0x02:
    case 0x40:
      return 1;
    case 0x10:
      return 9;
    case 0x18:
    case 0x20:
      return 1 + escapedLength(b, i);
    case 0x28:
      while (b[i] === 0x01) i += 1 + indexValueLength(b, i + 1);
      return i + 1 - at;
    case 0x30: {
      let keys = 0;
      while (b[i] === 0x01) {
        i += 1 + escapedLength(b, i + 1);
        keys++;
      }
      i++;
      for (let k = 0; k < keys; k++) i += indexValueLength(b, i);
      return i - at;
    }
    default:
      throw storeError('STORE_IO', `corrupt index key (tag ${tag})`);
  }
}

function escapedLength(b: Uint8Array, at: number): number {
  let i = at;
  for (;;) {
    if (i >= b.length) throw storeError('STORE_IO', 'corrupt index key (unterminated)');
    if (b[i] === 0x00) {
      if (b[i + 1] === 0x01) return i + 2 - at;
      i += 2;
    } else i++;
  }
}
