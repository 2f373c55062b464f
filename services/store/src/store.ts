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
  SourceCapabilities,
} from '@lattice/dql';
import { v1 } from '@lattice/proto';
import { randomBytes } from 'node:crypto';
import type { EngineOp, StorageEngine } from './engine.js';
import { storeError } from './errors.js';
import {
  collectionKey,
  collectionOf,
  collectionPrefix,
  collectionPrefixLength,
  docKey,
  INDEX_TYPE_END,
  INDEX_TYPE_TAG,
  indexDefKey,
  indexEntryKey,
  indexPrefix,
  indexValuePrefix,
  join2,
  logKey,
  metaKey,
  nameBytes,
  peerKey,
  prefixEnd,
  readU64,
  Tag,
  tagPrefix,
  tombstoneKey,
  valueKey,
} from './keys.js';
import { decodeTrustedValue, encodeValue } from './value-codec.js';

/** A commit sequence number assigned by the store. */
export type CommitSeq = number;

/** One document written by a commit. */
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
  /** The materialized value; undefined for a tombstone. */
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
  readonly evict: boolean;
  readonly record?: Uint8Array;
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
  resolve(r: CommitResult): void;
  reject(e: unknown): void;
}

interface Cursor {
  readonly items: JsonValue[];
  pos: number;
  expires: number;
}

const BUILD_CHUNK = 1_000;
const GROUP_MAX_BYTES = 64 * 1024 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * A document store over one engine.
 * @remarks Open with {@link DocumentStore.open}; close with {@link DocumentStore.close}.
 */
export class DocumentStore {
  readonly limits: StoreLimits;
  readonly #engine: StorageEngine;
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

  private constructor(engine: StorageEngine, options: StoreOptions) {
    this.#engine = engine;
    this.#sync = options.sync ?? true;
    this.#now = options.now ?? Date.now;
    this.limits = { ...DEFAULT_STORE_LIMITS, ...options.limits };
  }

  /** Opens a store on `engine` (opening the engine), resuming unfinished index builds. */
  static async open(engine: StorageEngine, options: StoreOptions = {}): Promise<DocumentStore> {
    const store = new DocumentStore(engine, options);
    await engine.open();
    store.#load();
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
    let prepared: Omit<PreparedCommit, 'resolve' | 'reject'>;
    try {
      prepared = this.#prepare(request);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<CommitResult>((resolve, reject) => {
      this.#queue.push({ ...prepared, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => {
          this.#flushScheduled = false;
          this.#flushing = Promise.resolve().then(() => this.#flush());
        });
      }
    });
  }

  #prepare(request: CommitRequest): Omit<PreparedCommit, 'resolve' | 'reject'> {
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
      const k = w.collection + '\u0000' + Buffer.from(idBytes).toString('latin1');
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
      const record = v1.DocRecord.encode({
        // seq is left out here and prepended once the commit's sequence is known (withSeq)
        state: w.state,
        versionVector: vvEntries(w.versionVector),
        deletedAtMs: deletedAt,
        tombstone,
      }).finish();
      const size = record.length + (valueBytes?.length ?? 0);
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
        evict: false,
        record,
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
    return { writes: out, expect, meta, checkpoints, bytes, trace };
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
    if (this.#queue.length > 0 && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flushing = Promise.resolve().then(() => this.#flush());
      });
    }

    const startSeq = this.#lastSeq;
    const ops: EngineOp[] = [];
    // Documents written earlier in this group: their seq and value, for later commits' checks.
    const overlay = new Map<string, { seq: number; value: unknown; hasValue: boolean }>();
    const newCollections: string[] = [];
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
        entry = this.#stage(c.writes, seq, ops, overlay, newCollections);
        if (c.trace) entry = { ...entry, trace: c.trace };
        ops.push({ type: 'put', key: logKey(seq), value: encodeEntry(entry) });
      }
      for (const [k, v] of c.meta) ops.push({ type: 'put', key: metaKey(k), value: v });
      for (const [p, v] of c.checkpoints) ops.push({ type: 'put', key: peerKey(p), value: v });
      done.push({ commit: c, result: { seq }, ...(entry ? { entry } : {}) });
    }
    if (seq !== startSeq) this.#trimLog(seq, ops);

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

  #checkExpectations(
    c: PreparedCommit,
    overlay: Map<string, { seq: number; value: unknown; hasValue: boolean }>,
  ): unknown {
    if (c.expect.length === 0) return undefined;
    // Documents written earlier in this group answer from the overlay; the rest from the engine.
    const unseen = c.expect.filter((e) => !overlay.has(overlayKey(e.collection, e.idBytes)));
    const records = this.#engine.getMany(unseen.map((e) => docKey(e.collection, e.idBytes)));
    const stored = new Map(unseen.map((e, i) => [e, records[i]] as const));
    for (const e of c.expect) {
      const o = overlay.get(overlayKey(e.collection, e.idBytes));
      const r = stored.get(e);
      const actual = o ? o.seq : r ? v1.DocRecord.decode(r).seq : 0;
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
    overlay: Map<string, { seq: number; value: unknown; hasValue: boolean }>,
    newCollections: string[],
  ): CommitEntry {
    const byCollection = new Map<string, Uint8Array[]>();
    // Old values are needed only where indexes must be maintained.
    const needOld: number[] = [];
    writes.forEach((w, i) => {
      const defs = this.#indexes.get(w.collection);
      if (defs && defs.size > 0 && !overlay.has(overlayKey(w.collection, w.idBytes)))
        needOld.push(i);
    });
    const oldValues = new Map<number, unknown>();
    if (needOld.length > 0) {
      const got = this.#engine.getMany(
        needOld.map((i) =>
          valueKey((writes[i] as PreparedWrite).collection, (writes[i] as PreparedWrite).idBytes),
        ),
      );
      needOld.forEach((i, j) => {
        const b = got[j];
        if (b) oldValues.set(i, decodeTrustedValue(b));
      });
    }
    writes.forEach((w, i) => {
      const ok = overlayKey(w.collection, w.idBytes);
      let ids = byCollection.get(w.collection);
      if (!ids) byCollection.set(w.collection, (ids = []));
      ids.push(w.idBytes);
      if (!this.#collections.has(w.collection)) {
        this.#collections.add(w.collection);
        newCollections.push(w.collection);
        ops.push({ type: 'put', key: collectionKey(w.collection), value: EMPTY });
      }
      const defs = this.#indexes.get(w.collection);
      if (defs && defs.size > 0) {
        const prev = overlay.get(ok);
        const old = prev ? (prev.hasValue ? prev.value : undefined) : oldValues.get(i);
        const next = w.valueBytes ? (w.value ?? decodeTrustedValue(w.valueBytes)) : undefined;
        for (const def of defs.values()) {
          const ov = old === undefined ? undefined : indexable(old, def.path);
          const nv = next === undefined ? undefined : indexable(next, def.path);
          if (
            ov !== undefined &&
            (nv === undefined || !sameIndexValue(w.collection, def.name, ov, nv))
          ) {
            ops.push({ type: 'del', key: indexEntryKey(w.collection, def.name, ov, w.idBytes) });
          }
          if (nv !== undefined)
            ops.push({
              type: 'put',
              key: indexEntryKey(w.collection, def.name, nv, w.idBytes),
              value: EMPTY,
            });
        }
        overlay.set(ok, { seq, value: next, hasValue: next !== undefined });
      } else {
        overlay.set(ok, { seq, value: undefined, hasValue: false });
      }
      const dk = docKey(w.collection, w.idBytes);
      const vk = valueKey(w.collection, w.idBytes);
      const tk = tombstoneKey(w.collection, w.idBytes);
      if (w.evict) {
        ops.push({ type: 'del', key: dk }, { type: 'del', key: vk }, { type: 'del', key: tk });
        return;
      }
      ops.push({ type: 'put', key: dk, value: withSeq(w.record as Uint8Array, seq) });
      if (w.valueBytes) {
        ops.push({ type: 'put', key: vk, value: w.valueBytes }, { type: 'del', key: tk });
      } else {
        ops.push({ type: 'del', key: vk }, { type: 'put', key: tk, value: u64Bytes(w.deletedAt) });
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
    const out: StoredDocument[] = [];
    this.#read(collection, idBytes).forEach(({ record, value }, i) => {
      if (record)
        out.push(toStored(collection, ids[i] as DocId, idBytes[i] as Uint8Array, record, value));
    });
    return out;
  }

  /** Records and values of documents, in one multi-get. */
  #read(
    collection: string,
    idBytes: readonly Uint8Array[],
  ): { record?: Uint8Array; value?: Uint8Array }[] {
    const keys: Uint8Array[] = [];
    for (const b of idBytes) keys.push(docKey(collection, b), valueKey(collection, b));
    const got = this.#engine.getMany(keys);
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
    return new StoreSource(this.#engine);
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
    this.#check();
    const stmt = parse(statement);
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
    if (stmt.kind === 'explain') return [{ plan: explain(plan) }];
    const { items } = executePlan(plan, this.source, { now: this.#now });
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

  /** Runs a query and returns its first page and, if more remain, a cursor. */
  query(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
    pageSize: number = this.limits.defaultPageSize,
  ): QueryPage {
    const size = this.#pageSize(pageSize);
    const items = this.select(statement, args);
    if (items.length <= size) return { items };
    this.#sweepCursors();
    if (this.#cursors.size >= this.limits.maxCursors) {
      throw storeError(
        'STORE_TOO_MANY_CURSORS',
        `at most ${this.limits.maxCursors} cursors may be open`,
      );
    }
    const id = randomBytes(12).toString('base64url');
    this.#cursors.set(id, { items, pos: size, expires: this.#now() + this.limits.cursorTtlMs });
    return { items: items.slice(0, size), cursor: id };
  }

  /** The next page of a cursor. */
  nextPage(cursor: string, pageSize: number = this.limits.defaultPageSize): QueryPage {
    this.#check();
    const size = this.#pageSize(pageSize);
    this.#sweepCursors();
    const c = this.#cursors.get(cursor);
    if (!c)
      throw storeError('STORE_CURSOR_EXPIRED', 'no such cursor (finished, expired or unknown)');
    const items = c.items.slice(c.pos, c.pos + size);
    c.pos += items.length;
    if (c.pos >= c.items.length) {
      this.#cursors.delete(cursor);
      return { items };
    }
    c.expires = this.#now() + this.limits.cursorTtlMs;
    return { items, cursor };
  }

  #pageSize(n: number): number {
    if (!Number.isInteger(n) || n < 0)
      throw storeError('STORE_INVALID_ARGUMENT', 'page size must be a non-negative integer');
    return Math.min(n === 0 ? this.limits.defaultPageSize : n, this.limits.maxPageSize);
  }

  #sweepCursors(): void {
    const now = this.#now();
    for (const [id, c] of this.#cursors) if (c.expires <= now) this.#cursors.delete(id);
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
      let n = 0;
      for (const [k, v] of this.#engine.entries({
        ...(after ? { gt: after } : { gte: p }),
        lt: end,
        limit: BUILD_CHUNK,
      })) {
        const iv = indexable(decodeTrustedValue(v), def.path);
        if (iv !== undefined) {
          ops.push({
            type: 'put',
            key: indexEntryKey(def.collection, def.name, iv, k.subarray(skip)),
            value: EMPTY,
          });
        }
        after = Uint8Array.from(k);
        n++;
      }
      if (ops.length > 0) this.#engine.write(ops, { sync: false });
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
    const p = indexPrefix(collection, name);
    const end = prefixEnd(p);
    for (;;) {
      const ops: EngineOp[] = [];
      for (const [k] of this.#engine.entries({ gte: p, lt: end, limit: BUILD_CHUNK }))
        ops.push({ type: 'del', key: Uint8Array.from(k) });
      if (ops.length === 0) break;
      this.#engine.write(ops, { sync: false });
      await new Promise<void>((r) => setImmediate(r));
    }
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
          due.forEach((id, i) => {
            const r = recs[i];
            if (r && !v1.DocRecord.decode(r).tombstone) return; // revived; its T key is gone too
            ops.push(
              { type: 'del', key: tombstoneKey(collection, id) },
              { type: 'del', key: docKey(collection, id) },
            );
            reaped++;
          });
          if (ops.length > 0) this.#engine.write(ops, { sync: this.#sync });
        }
        if (seen < BUILD_CHUNK) break;
        await new Promise<void>((r) => setImmediate(r));
        this.#check();
      }
    }
    return reaped;
  }

  /** Counts and sizes per collection. */
  stats(): {
    lastSeq: number;
    oldestLogSeq: number;
    collections: CollectionStats[];
    totalBytes: number;
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
    return { lastSeq: this.#lastSeq, oldestLogSeq: this.#oldestLogSeq, collections, totalBytes };
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
    this.#cursors.clear();
    await this.#engine.close();
  }
}

/** The DQL document source over an engine. */
class StoreSource implements DocumentSource {
  readonly capabilities: SourceCapabilities = { orderedScan: true, orderedIndex: true };
  readonly #engine: StorageEngine;

  constructor(engine: StorageEngine) {
    this.#engine = engine;
  }

  *scan(collection: string): Iterable<Document> {
    const p = collectionPrefix(Tag.VALUE, collection);
    for (const [, v] of this.#engine.entries({ gte: p, lt: prefixEnd(p) }))
      yield decodeTrustedValue(v) as Document;
  }

  *get(collection: string, ids: readonly JsonValue[]): Iterable<Document> {
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
    for (const v of this.#engine.getMany(keys)) if (v) yield decodeTrustedValue(v) as Document;
  }

  *indexScan(r: IndexScanRequest): Iterable<Document> {
    const reverse = r.direction === 'desc';
    const ranges: { gte: Uint8Array; lt: Uint8Array }[] = [];
    if (r.range.kind === 'eq') {
      const prefixes = r.range.values.map((v) => indexValuePrefix(r.collection, r.index, v));
      prefixes.sort(Buffer.compare);
      for (const p of prefixes) ranges.push({ gte: p, lt: prefixEnd(p) });
      if (reverse) ranges.reverse();
    } else {
      const tag = INDEX_TYPE_TAG[r.range.type];
      const endTag = INDEX_TYPE_END[r.range.type];
      if (tag === undefined || endTag === undefined) return;
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
    }
    const skip = indexPrefix(r.collection, r.index).length;
    const vp = collectionPrefix(Tag.VALUE, r.collection);
    for (const range of ranges) {
      if (Buffer.compare(range.gte, range.lt) >= 0) continue;
      let chunk: Uint8Array[] = [];
      const flush = function* (engine: StorageEngine): Iterable<Document> {
        const values = engine.getMany(chunk);
        chunk = [];
        for (const v of values) {
          if (!v) continue;
          const doc = decodeTrustedValue(v) as Document;
          // Entries always match values (same batch); this guards the exactness contract.
          if (inIndexRange(valueAtPath(doc, r.path), r.range)) yield doc;
        }
      };
      for (const [k] of this.#engine.entries({ ...range, reverse })) {
        chunk.push(join2(vp, idAfterIndexValue(k, skip)));
        if (chunk.length >= 256) yield* flush(this.#engine);
      }
      if (chunk.length > 0) yield* flush(this.#engine);
    }
  }
}

// --- helpers -------------------------------------------------------------------------------------

function toStored(
  collection: string,
  id: DocId,
  idBytes: Uint8Array,
  record: Uint8Array,
  value: Uint8Array | undefined,
): StoredDocument {
  const rec = v1.DocRecord.decode(record);
  return {
    collection,
    id,
    idBytes,
    seq: rec.seq,
    state: rec.state,
    versionVector: new Map(
      rec.versionVector.map((e) => [e.peer ?? '', Number(e.counter ?? 0)]),
    ) as unknown as VersionVector,
    tombstone: rec.tombstone,
    ...(rec.tombstone ? { deletedAt: rec.deletedAtMs } : {}),
    ...(value ? { value: decodeTrustedValue(value) as Document } : {}),
  };
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

function vvEntries(vv: VersionVector): { peer: string; counter: number }[] {
  return [...vv]
    .map(([peer, counter]) => ({ peer, counter }))
    .sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
}

/** The record with its `seq` field (field 1, varint) set; other fields are kept as encoded. */
function withSeq(record: Uint8Array, seq: number): Uint8Array {
  // Records are encoded with seq 0, which protobuf omits; prepend field 1 (tag 0x08).
  const head: number[] = [0x08];
  let n = seq;
  while (n >= 0x80) {
    head.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  head.push(n);
  const out = new Uint8Array(head.length + record.length);
  out.set(head, 0);
  out.set(record, head.length);
  return out;
}

function u64Bytes(n: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, Math.floor(n / 0x1_0000_0000));
  v.setUint32(4, n >>> 0);
  return b;
}

function encodeEntry(e: CommitEntry): Uint8Array {
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

/** The value a document contributes to an index on `path`, or undefined (MISSING: no entry). */
function indexable(doc: unknown, path: readonly string[]): unknown {
  const v = valueAtPath(doc as JsonValue, path);
  return v === MISSING ? undefined : v;
}

function sameIndexValue(collection: string, name: string, a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object') return false;
  return (
    Buffer.compare(indexValuePrefix(collection, name, a), indexValuePrefix(collection, name, b)) ===
    0
  );
}

/** The `_id` bytes at the end of an index entry key (after the self-delimiting value). */
function idAfterIndexValue(key: Uint8Array, skip: number): Uint8Array {
  return key.subarray(skip + indexValueLength(key, skip));
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
