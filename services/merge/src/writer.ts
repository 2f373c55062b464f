/**
 * Local writes: DQL statements executed against the store as CRDT changes.
 *
 * @remarks
 * The merge service is the single writer of its peer's store. A mutation reads the documents it
 * affects, applies the CRDT write of its intent to each (one HLC timestamp per document write),
 * and commits every changed document in one store commit that states the version of each document
 * it read. A concurrent write to one of them makes the store refuse the commit
 * (`STORE_CONFLICT`); the statement is then re-run from the read, so no update is lost and a
 * multi-document statement is all or nothing. The HLC high-water mark is written with every
 * commit, so the clock stays monotonic across restarts.
 */
import { randomUUID } from 'node:crypto';
import { CrdtDocument, decodeDocument, docIdKey, encodeDocument } from '@lattice/crdt';
import type { DocId, HybridClock, Typedefs, ValueObject, WriteIntent } from '@lattice/crdt';
import type { JsonValue, MutationIntent, Statement, TypeDef } from '@lattice/dql';
import { compileMutation, executePlan, getField, parse, resolveUpdate } from '@lattice/dql';
import { hasCode } from '@lattice/errors';
import { injectTraceContext } from '@lattice/bus';
import type {
  CommitWrite,
  DocumentStore,
  Expectation,
  StoredDocument,
  TraceParent,
} from '@lattice/store';
import { mergeError } from './errors.js';
import { KeyedLocks } from './locks.js';
import type { SystemState } from './system-collections.js';
import { isSystemCollection, refuseSystemWrite, selectSystem } from './system-collections.js';

/** Metadata key of the persisted HLC high-water mark. */
export const HLC_META_KEY = 'hlc';

/** The outcome of a statement. */
export interface ExecuteResult {
  /** SELECT results (empty for mutations). */
  readonly items: JsonValue[];
  /** `_id`s of the documents a mutation changed, in statement order. */
  readonly mutatedIds: JsonValue[];
  /** The commit of the mutation, or the store's latest commit for a read or a no-op. */
  readonly commitSeq: number;
  readonly warnings: string[];
  /** What the statement was (`SELECT`, `INSERT`, …, `EXPLAIN`), as Ditto's HTTP API reports it. */
  readonly queryType: string;
}

/** Options of {@link LocalWriter}. */
export interface LocalWriterOptions {
  /** Wall clock for DQL functions (`clock()`, dates); defaults to `Date.now`. */
  readonly now?: () => number;
  /** New `_id`s for inserted documents without one. */
  readonly newId?: () => string;
  /** Re-runs of a statement that met a concurrent write (default 16). */
  readonly maxRetries?: number;
  /** What the system collections (`system:data_sync_info`) are computed from. */
  readonly system?: SystemState;
}

/** Encodes the clock's high-water mark for the metadata key {@link HLC_META_KEY}. */
export function encodeClockMeta(clock: HybridClock): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  const t = clock.highWaterMark;
  v.setUint32(0, Math.floor(t / 0x1_0000_0000));
  v.setUint32(4, t >>> 0);
  return b;
}

/** Decodes {@link encodeClockMeta}. */
export function decodeClockMeta(b: Uint8Array | undefined): number | undefined {
  if (!b || b.length !== 8) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, 8);
  return v.getUint32(0) * 0x1_0000_0000 + v.getUint32(4);
}

/** The active W3C trace context, if a span is active (it then travels with the commit). */
export function activeTrace(): TraceParent | undefined {
  const headers: Record<string, string> = {};
  injectTraceContext(headers);
  const traceparent = headers['traceparent'];
  return traceparent === undefined
    ? undefined
    : { traceparent, ...(headers['tracestate'] ? { tracestate: headers['tracestate'] } : {}) };
}

/** The CRDT document a stored record holds (or a new one). */
export function loadDocument(id: DocId, stored: StoredDocument | undefined): CrdtDocument {
  return stored ? decodeDocument(stored.state) : CrdtDocument.create(id);
}

/**
 * The store write that persists `doc`.
 * @param state - `doc`'s encoding when the caller already holds it (a full state just received
 * and decoded into `doc`); encoded from `doc` otherwise.
 */
export function persistDocument(
  collection: string,
  doc: CrdtDocument,
  deletedAt: number,
  state?: Uint8Array,
): CommitWrite {
  const value = doc.toJSON();
  return {
    collection,
    id: doc.id,
    state: state ?? encodeDocument(doc),
    value: value as ValueObject | undefined,
    versionVector: new Map(doc.versionVector),
    ...(value === undefined ? { deletedAt } : {}),
  };
}

/** Executes DQL statements against one store as its single writer. */
export class LocalWriter {
  readonly #store: DocumentStore;
  readonly #clock: HybridClock;
  readonly #now: () => number;
  readonly #newId: () => string;
  readonly #maxRetries: number;
  readonly #system: SystemState | undefined;
  readonly #locks = new KeyedLocks();

  constructor(store: DocumentStore, clock: HybridClock, options: LocalWriterOptions = {}) {
    this.#store = store;
    this.#clock = clock;
    this.#now = options.now ?? Date.now;
    this.#newId = options.newId ?? randomUUID;
    this.#maxRetries = options.maxRetries ?? 16;
    this.#system = options.system;
  }

  /** Runs one statement: SELECT/EXPLAIN read, INSERT/UPDATE/DELETE/EVICT write. */
  async execute(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
  ): Promise<ExecuteResult> {
    const stmt = parse(statement);
    const result = await this.#run(stmt, statement, args);
    return { ...result, queryType: QUERY_TYPE[stmt.kind] ?? stmt.kind.toUpperCase() };
  }

  async #run(
    stmt: Statement,
    statement: string,
    args: Readonly<Record<string, JsonValue>>,
  ): Promise<Omit<ExecuteResult, 'queryType'>> {
    const target = stmt.kind === 'explain' ? stmt.statement : stmt;
    const collection = targetCollection(target);
    if (collection !== undefined && isSystemCollection(collection)) {
      if (target.kind !== 'select' || stmt.kind === 'explain' || !this.#system)
        refuseSystemWrite(collection, stmt.kind === 'explain' ? 'explain' : target.kind);
      return {
        items: selectSystem(target, args, this.#system, this.#now),
        mutatedIds: [],
        commitSeq: this.#store.lastSeq,
        warnings: [],
      };
    }
    if (target.kind === 'select') {
      return {
        items: this.#store.select(statement, args),
        mutatedIds: [],
        commitSeq: this.#store.lastSeq,
        warnings: [],
      };
    }
    if (target.kind === 'createIndex' || target.kind === 'dropIndex') {
      return this.#index(target);
    }
    if (stmt.kind === 'explain') {
      return {
        items: this.#store.select(statement, args),
        mutatedIds: [],
        commitSeq: this.#store.lastSeq,
        warnings: [],
      };
    }
    for (let attempt = 0; ; attempt++) {
      const intent = compileMutation(stmt, {
        args,
        indexes: this.#store.indexInfo(),
        now: this.#now,
      });
      try {
        return await this.#mutate(intent);
      } catch (err) {
        if (!hasCode(err, 'STORE_CONFLICT')) throw err;
        if (attempt >= this.#maxRetries) {
          throw mergeError(
            'MERGE_CONFLICT_RETRIES',
            `statement conflicted with concurrent writes ${attempt + 1} times`,
            {},
            err,
          );
        }
      }
    }
  }

  async #index(stmt: Statement): Promise<Omit<ExecuteResult, 'queryType'>> {
    const base = { items: [], mutatedIds: [], warnings: [] };
    if (stmt.kind === 'createIndex') {
      const exists = this.#store.listIndexes(stmt.collection).some((d) => d.name === stmt.name);
      if (!(exists && stmt.ifNotExists))
        await this.#store.createIndex(stmt.collection, stmt.name, stmt.path);
    } else if (stmt.kind === 'dropIndex') {
      const owner = this.#store.listIndexes().find((d) => d.name === stmt.name);
      if (owner) await this.#store.dropIndex(owner.collection, owner.name);
      else if (!stmt.ifExists) await this.#store.dropIndex('', stmt.name);
    }
    return { ...base, commitSeq: this.#store.lastSeq };
  }

  async #mutate(intent: MutationIntent): Promise<Omit<ExecuteResult, 'queryType'>> {
    const collection = intent.collection;
    const warnings: string[] = [];
    // The documents the statement touches; their locks are held until the commit is durable.
    let targets = this.#targets(intent);
    let release = await this.#locks.lock(targets.map((t) => lockKey(collection, t.id)));
    try {
      if (intent.kind !== 'insert') {
        // Selected without the locks: select again under them, and start over if the selection
        // grew (a concurrent write made another document match).
        for (;;) {
          const again = this.#targets(intent);
          const held = new Set(targets.map((t) => lockKey(collection, t.id)));
          if (again.every((t) => held.has(lockKey(collection, t.id)))) {
            targets = again;
            break;
          }
          release();
          targets = again;
          release = await this.#locks.lock(targets.map((t) => lockKey(collection, t.id)));
        }
      }
      return await this.#write(intent, targets, warnings);
    } finally {
      release();
    }
  }

  #targets(intent: MutationIntent): { id: DocId; doc: Record<string, JsonValue> | undefined }[] {
    if (intent.kind === 'insert') {
      return intent.documents.map((d) => {
        const id = getField(d, '_id');
        const withId = typeof id === 'symbol' ? { _id: this.#newId(), ...d } : d;
        return { id: withId['_id'] as DocId, doc: withId as Record<string, JsonValue> };
      });
    }
    const { items } = executePlan(intent.selection, this.#store.source, { now: this.#now });
    return items.map((d) => ({
      id: (d as Record<string, JsonValue>)['_id'] as DocId,
      doc: d as Record<string, JsonValue>,
    }));
  }

  async #write(
    intent: MutationIntent,
    targets: { id: DocId; doc: Record<string, JsonValue> | undefined }[],
    warnings: string[],
  ): Promise<Omit<ExecuteResult, 'queryType'>> {
    const collection = intent.collection;
    if (targets.length === 0)
      return { items: [], mutatedIds: [], commitSeq: this.#store.lastSeq, warnings };

    if (intent.kind === 'evict') {
      const result = await this.#store.commit({
        writes: targets.map((t) => ({ kind: 'evict' as const, collection, id: t.id })),
      });
      return {
        items: [],
        mutatedIds: targets.map((t) => t.id as JsonValue),
        commitSeq: result.seq,
        warnings,
      };
    }

    const stored = new Map<string, StoredDocument>();
    for (const s of this.#store.get(
      collection,
      targets.map((t) => t.id),
    ))
      stored.set(keyOf(s.id), s);
    const docs = new Map<string, CrdtDocument>();
    const changed: string[] = [];
    const typedefs = 'typedefs' in intent ? toTypedefs(intent.typedefs) : {};
    for (const t of targets) {
      const key = keyOf(t.id);
      let doc = docs.get(key);
      if (!doc) {
        doc = loadDocument(t.id, stored.get(key));
        docs.set(key, doc);
      }
      const write = this.#writeOf(intent, t.doc, typedefs);
      const r = doc.write(write, this.#clock.now());
      if (r.warning)
        warnings.push(
          `document ${JSON.stringify(t.id)} is ${r.warning.bytes} bytes (above the warning size)`,
        );
      if (r.changed && !changed.includes(key)) changed.push(key);
    }
    if (changed.length === 0)
      return { items: [], mutatedIds: [], commitSeq: this.#store.lastSeq, warnings };
    const now = this.#now();
    const writes = changed.map((k) =>
      persistDocument(collection, docs.get(k) as CrdtDocument, now),
    );
    const expect: Expectation[] = changed.map((k) => ({
      collection,
      id: (docs.get(k) as CrdtDocument).id,
      seq: stored.get(k)?.seq ?? 0,
    }));
    const trace = activeTrace();
    const result = await this.#store.commit({
      writes,
      expect,
      meta: { [HLC_META_KEY]: encodeClockMeta(this.#clock) },
      ...(trace ? { trace } : {}),
    });
    return {
      items: [],
      mutatedIds: changed.map((k) => (docs.get(k) as CrdtDocument).id as JsonValue),
      commitSeq: result.seq,
      warnings,
    };
  }

  #writeOf(
    intent: MutationIntent,
    doc: Record<string, JsonValue> | undefined,
    typedefs: Typedefs,
  ): WriteIntent {
    switch (intent.kind) {
      case 'insert':
        return {
          kind: 'insert',
          document: doc as ValueObject,
          onConflict: intent.conflict,
          initial: intent.initial,
          typedefs,
        };
      case 'update': {
        const u = resolveUpdate(intent, doc ?? {}, { now: this.#now });
        return {
          kind: 'update',
          apply: u.apply.map((a) =>
            a.op === 'RESTART'
              ? { op: 'RESTART', path: a.path, with: a.with }
              : { op: a.op, path: a.path, by: a.by },
          ),
          set: u.set.map((s) => ({ path: s.path, value: s.value as ValueObject[string] })),
          unset: u.unset,
          typedefs,
        };
      }
      default:
        return { kind: 'delete' };
    }
  }
}

const QUERY_TYPE: Readonly<Record<string, string>> = {
  select: 'SELECT',
  insert: 'INSERT',
  update: 'UPDATE',
  delete: 'DELETE',
  evict: 'EVICT',
  createIndex: 'CREATE INDEX',
  dropIndex: 'DROP INDEX',
  explain: 'EXPLAIN',
};

function lockKey(collection: string, id: DocId): string {
  return `${collection}\u0000${docIdKey(id)}`;
}

function keyOf(id: DocId): string {
  return docIdKey(id);
}

function toTypedefs(defs: readonly TypeDef[]): Typedefs {
  const out: Record<string, TypeDef['type']> = {};
  for (const d of defs) out[d.path.join('.')] = d.type;
  return out;
}

/** The collection a statement reads or writes (undefined: DROP INDEX, which names none). */
function targetCollection(stmt: Exclude<Statement, { kind: 'explain' }>): string | undefined {
  switch (stmt.kind) {
    case 'select':
      return stmt.from.name;
    case 'insert':
      return stmt.into.name;
    case 'update':
      return stmt.collection.name;
    case 'delete':
    case 'evict':
    case 'createIndex':
      return stmt.collection;
    case 'dropIndex':
      return undefined;
  }
}
