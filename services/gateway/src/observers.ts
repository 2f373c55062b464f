/**
 * Observers: live queries kept up to date from the peer's committed events.
 *
 * @remarks
 * One listener on the peer's commits serves every observer. For each commit, the documents it
 * wrote in an observed collection are read once and handed, with their previous values, to each
 * observer's {@link LiveQuery}, which answers the item changes without re-running the query.
 * A commit is one batch, so a remote transaction (one commit) arrives as a whole.
 *
 * Previous values: an observer caches the documents that match its WHERE clause (a superset of
 * its result window). A document outside the cache did not match, which is all `LiveQuery`
 * needs. Queries the live-query engine cannot maintain from the window alone — aggregates,
 * DISTINCT, OFFSET — and the cases it reports as `requery` re-run the query (`load`), which
 * still yields only the difference.
 *
 * Flow control: each observer has a bounded queue of unsent batches. When it is full (the
 * client reads slower than the peer commits), the observer either coalesces — drops the queued
 * change batches and queues one RESET batch with the whole current result — or fails with
 * `GATEWAY_OBSERVER_OVERFLOW`, as the client chose. Memory per observer is therefore bounded by
 * the queue length times the batch size, whatever the client does.
 *
 * System collections (`system:data_sync_info`) have no commits to follow: their observers re-run
 * the query every `systemPollMs` (default 1 s) over the current documents and send what changed,
 * as any other observer's changes.
 */
import { encodeDocId } from '@lattice/crdt';
import type { DocId } from '@lattice/crdt';
import { executePlan, LiveQuery, MemorySource, parse, planQuery } from '@lattice/dql';
import type { Document, DocumentSource, ItemChange, JsonValue, QueryPlan } from '@lattice/dql';
import { isSystemCollection, SYSTEM_COLLECTIONS, systemSource } from '@lattice/merge';
import { dqlError } from '@lattice/dql';
import type { CommitEntry } from '@lattice/store';
import { gatewayError } from './errors.js';
import type { PeerApi } from './peer-api.js';
import { inSpanSync } from './tracing.js';

/** One message of an observer. */
export type ObserveBatch =
  | {
      readonly kind: 'initial' | 'reset';
      readonly items: readonly JsonValue[];
      readonly commitId: number;
      /** For a reset: how many change batches it replaces. */
      readonly coalesced: number;
    }
  | {
      readonly kind: 'changes';
      readonly changes: readonly ItemChange[];
      readonly commitId: number;
    };

/** What to do when an observer's queue is full. */
export type OverflowPolicy = 'coalesce' | 'cancel';

/** Options of {@link ObserverHub.observe}. */
export interface ObserveOptions {
  /** Most unsent batches (default and cap: the hub's). */
  readonly maxQueued?: number;
  readonly overflow?: OverflowPolicy;
  /** Called when the queue goes from empty to non-empty. */
  readonly onReadable: () => void;
  /** Called once when the observer fails (overflow with `cancel`). */
  readonly onError: (error: unknown) => void;
}

/** Options of {@link ObserverHub}. */
export interface ObserverHubOptions {
  /** Default and largest queue length per observer (default 64). */
  readonly maxQueued?: number;
  /** Most observers at once (default 10,000). */
  readonly maxObservers?: number;
  /** How often observers of system collections re-read them (default 1 000 ms). */
  readonly systemPollMs?: number;
}

/** Counters of one observer, for tests and health. */
export interface ObserverStats {
  readonly queued: number;
  readonly batches: number;
  readonly coalesced: number;
  readonly requeries: number;
}

function keyOf(idBytes: Uint8Array): string {
  return Buffer.from(idBytes.buffer, idBytes.byteOffset, idBytes.byteLength).toString('latin1');
}

function docKey(doc: Document): string {
  return keyOf(encodeDocId(doc['_id'] as DocId));
}

/**
 * One `LiveQuery` diff (removed/moved-from at old indexes, the rest at new indexes) as changes
 * applied one after another to the list as each leaves it — so the diffs of several documents
 * of one commit concatenate into one batch.
 *
 * @remarks Removals go first in descending index order, then insertions in ascending order,
 * then updates. A lone move stays a move (take out at `from`, put in at `to`); moves mixed with
 * other changes become a removal and an insertion.
 */
export function sequential(diff: readonly ItemChange[]): ItemChange[] {
  const moved = diff.filter((c) => c.kind === 'moved');
  const updated = diff.filter((c) => c.kind === 'updated');
  if (moved.length === 1 && moved.length + updated.length === diff.length) {
    return [...moved, ...updated];
  }
  const removals: ItemChange[] = [];
  const insertions: ItemChange[] = [];
  for (const c of diff) {
    if (c.kind === 'removed') removals.push(c);
    else if (c.kind === 'inserted') insertions.push(c);
    else if (c.kind === 'moved') {
      removals.push({ kind: 'removed', index: c.from, item: c.item });
      insertions.push({ kind: 'inserted', index: c.to, item: c.item });
    }
  }
  const at = (c: ItemChange): number => (c.kind === 'moved' ? c.to : c.index);
  removals.sort((a, b) => at(b) - at(a));
  insertions.sort((a, b) => at(a) - at(b));
  return [...removals, ...insertions, ...updated];
}

/** A live query with its queue; read batches with {@link Observer.take}. */
export class Observer {
  readonly #hub: ObserverHub;
  readonly #peer: PeerApi;
  /** What the query runs over: the peer's documents, or a system collection's, made now. */
  readonly #source: () => DocumentSource;
  readonly collection: string;
  readonly #live: LiveQuery;
  /** Matches the WHERE clause, ignoring window; undefined when the query is re-run on change. */
  readonly #acceptPlan: QueryPlan | undefined;
  readonly #cache = new Map<string, Document>();
  readonly #queue: ObserveBatch[] = [];
  readonly #max: number;
  readonly #overflow: OverflowPolicy;
  readonly #onReadable: () => void;
  readonly #onError: (error: unknown) => void;
  #closed = false;
  #batches = 0;
  #coalesced = 0;
  #requeries = 0;

  /** @internal Created by {@link ObserverHub.observe}. */
  constructor(
    hub: ObserverHub,
    peer: PeerApi,
    plan: QueryPlan,
    maxQueued: number,
    options: ObserveOptions,
    source?: () => DocumentSource,
  ) {
    this.#hub = hub;
    this.#peer = peer;
    this.#source = source ?? (() => peer.source);
    this.collection = plan.collection;
    this.#live = new LiveQuery(plan);
    this.#max = maxQueued;
    this.#overflow = options.overflow ?? 'coalesce';
    this.#onReadable = options.onReadable;
    this.#onError = options.onError;
    const incremental =
      source === undefined && plan.aggregation === undefined && !plan.distinct && plan.offset === 0;
    if (incremental) {
      const { limit: _limit, ...unbounded } = plan;
      this.#acceptPlan = { ...unbounded, projection: [{ kind: 'star' }], orderBy: [], offset: 0 };
      // The window's documents seed the cache; later matches join it as they change.
      const windowPlan: QueryPlan = { ...plan, projection: [{ kind: 'star' }] };
      for (const d of executePlan(windowPlan, peer.source).items as Document[]) {
        this.#cache.set(docKey(d), d);
      }
    }
    this.#live.load(this.#source());
    this.#push({
      kind: 'initial',
      items: this.#live.items,
      commitId: peer.lastCommit(),
      coalesced: 0,
    });
  }

  /** Counters. */
  stats(): ObserverStats {
    return {
      queued: this.#queue.length,
      batches: this.#batches,
      coalesced: this.#coalesced,
      requeries: this.#requeries,
    };
  }

  /** The next unsent batch, if any. */
  take(): ObserveBatch | undefined {
    return this.#queue.shift();
  }

  /** Stops the observer and frees its queue and cache. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#cache.clear();
    this.#hub.remove(this);
  }

  /** @internal Ends the observer with an error. */
  fail(error: unknown): void {
    if (this.#closed) return;
    this.close();
    this.#onError(error);
  }

  /** @internal One commit's documents of this observer's collection. */
  onCommit(
    commitId: number,
    ids: readonly Uint8Array[],
    docs: readonly (Document | undefined)[],
  ): void {
    if (this.#closed) return;
    let changes: ItemChange[] = [];
    if (this.#acceptPlan === undefined) {
      changes = [...this.#requery()];
    } else {
      let requery = false;
      for (let i = 0; i < ids.length; i++) {
        const key = keyOf(ids[i] as Uint8Array);
        const after = docs[i];
        const before = this.#cache.get(key);
        if (!requery) {
          const update = this.#live.apply({
            ...(before ? { before } : {}),
            ...(after ? { after } : {}),
          });
          if (update.kind === 'changed') changes.push(...sequential(update.changes));
          // The rest of this commit is already in the source: one re-run covers all of it.
          else if (update.kind === 'requery') requery = true;
        }
        if (after && this.#accepts(after)) this.#cache.set(key, after);
        else this.#cache.delete(key);
      }
      if (requery) changes.push(...this.#requery());
    }
    if (changes.length > 0) this.#push({ kind: 'changes', changes, commitId });
  }

  /** @internal Re-reads a system collection; queues what changed. */
  poll(): void {
    if (this.#closed) return;
    const changes = this.#requery();
    if (changes.length > 0) {
      this.#push({ kind: 'changes', changes: [...changes], commitId: this.#peer.lastCommit() });
    }
  }

  #requery(): readonly ItemChange[] {
    this.#requeries++;
    return sequential(this.#live.load(this.#source()));
  }

  #accepts(doc: Document): boolean {
    const source = new MemorySource();
    source.put(this.collection, doc);
    return executePlan(this.#acceptPlan as QueryPlan, source).items.length > 0;
  }

  #push(batch: ObserveBatch): void {
    this.#batches++;
    const wasEmpty = this.#queue.length === 0;
    if (this.#queue.length >= this.#max) {
      if (this.#overflow === 'cancel') {
        const error = gatewayError(
          'GATEWAY_OBSERVER_OVERFLOW',
          `observer queue full (${this.#max} batches): the client reads too slowly`,
          { maxQueued: String(this.#max) },
        );
        this.fail(error);
        return;
      }
      // Coalesce: the whole current result replaces everything unsent. An unsent initial
      // result stays an initial result (the client has not seen any result yet).
      const initial = this.#queue[0]?.kind === 'initial';
      const replaced = this.#queue.filter((b) => b.kind === 'changes').length + 1;
      this.#coalesced += replaced;
      this.#queue.length = 0;
      this.#queue.push({
        kind: initial ? 'initial' : 'reset',
        items: this.#live.items,
        commitId: batch.commitId,
        coalesced: initial ? 0 : replaced,
      });
      return;
    }
    this.#queue.push(batch);
    if (wasEmpty) this.#onReadable();
  }
}

/** Every observer of one peer, fed by one listener on its commits. */
export class ObserverHub {
  readonly #peer: PeerApi;
  readonly #maxQueued: number;
  readonly #maxObservers: number;
  readonly #byCollection = new Map<string, Set<Observer>>();
  #count = 0;
  readonly #unlisten: () => void;
  readonly #systemPollMs: number;
  #systemTimer: NodeJS.Timeout | undefined;

  constructor(peer: PeerApi, options: ObserverHubOptions = {}) {
    this.#peer = peer;
    this.#maxQueued = options.maxQueued ?? 64;
    this.#maxObservers = options.maxObservers ?? 10_000;
    this.#systemPollMs = options.systemPollMs ?? 1_000;
    this.#unlisten = peer.onCommitted((entry) => this.#onCommitted(entry));
  }

  /** Number of open observers. */
  get size(): number {
    return this.#count;
  }

  /** Every open observer's counters. */
  stats(): ObserverStats[] {
    return [...this.#byCollection.values()].flatMap((s) => [...s].map((o) => o.stats()));
  }

  /**
   * Starts a live query; its first batch (the full result) is queued before this returns.
   * @throws DQL errors for a bad statement, `DQL_INVALID_QUERY` for a non-SELECT or an unknown
   * system collection, `GATEWAY_LIMIT` when too many observers are open.
   */
  observe(
    statement: string,
    args: Readonly<Record<string, JsonValue>>,
    options: ObserveOptions,
  ): Observer {
    const stmt = parse(statement);
    if (stmt.kind !== 'select') {
      throw dqlError('DQL_INVALID_QUERY', `an observer needs a SELECT; got ${stmt.kind}`, {
        statement: stmt.kind,
      });
    }
    const system = isSystemCollection(stmt.from.name);
    if (system && !(SYSTEM_COLLECTIONS as readonly string[]).includes(stmt.from.name)) {
      throw dqlError('DQL_INVALID_QUERY', `no system collection ${stmt.from.name}`, {
        collection: stmt.from.name,
      });
    }
    if (this.#count >= this.#maxObservers) {
      throw gatewayError('GATEWAY_LIMIT', `at most ${this.#maxObservers} observers`, {
        maxObservers: String(this.#maxObservers),
      });
    }
    const plan = planQuery(stmt, { args, indexes: this.#peer.indexInfo(stmt.from.name) });
    const max = Math.min(Math.max(options.maxQueued ?? this.#maxQueued, 2), this.#maxQueued);
    const observer = new Observer(
      this,
      this.#peer,
      plan,
      max,
      options,
      system ? () => systemSource(plan.collection, this.#peer) : undefined,
    );
    let set = this.#byCollection.get(observer.collection);
    if (!set) this.#byCollection.set(observer.collection, (set = new Set()));
    set.add(observer);
    this.#count++;
    if (system && this.#systemTimer === undefined) {
      this.#systemTimer = setInterval(() => this.#pollSystem(), this.#systemPollMs);
      this.#systemTimer.unref();
    }
    return observer;
  }

  #pollSystem(): void {
    let any = false;
    for (const [collection, observers] of this.#byCollection) {
      if (!isSystemCollection(collection)) continue;
      for (const o of [...observers]) {
        any = true;
        try {
          o.poll();
        } catch (error) {
          o.fail(error);
        }
      }
    }
    if (!any) {
      clearInterval(this.#systemTimer);
      this.#systemTimer = undefined;
    }
  }

  /** @internal */
  remove(observer: Observer): void {
    const set = this.#byCollection.get(observer.collection);
    if (set?.delete(observer)) {
      this.#count--;
      if (set.size === 0) this.#byCollection.delete(observer.collection);
    }
  }

  #onCommitted(entry: CommitEntry): void {
    // The update continues the trace of the write that made the commit (on this peer or another).
    inSpanSync('observers update', entry.trace, () => this.#update(entry));
  }

  #update(entry: CommitEntry): void {
    for (const { collection, ids } of entry.collections) {
      const observers = this.#byCollection.get(collection);
      if (!observers || observers.size === 0) continue;
      const docs = this.#peer.readDocuments(collection, ids);
      for (const o of [...observers]) {
        try {
          o.onCommit(entry.seq, ids, docs);
        } catch (error) {
          // One observer's failure must not reach the store's commit path or other observers.
          o.fail(error);
        }
      }
    }
  }

  /** Closes every observer and stops listening. */
  close(): void {
    clearInterval(this.#systemTimer);
    this.#systemTimer = undefined;
    this.#unlisten();
    for (const set of [...this.#byCollection.values()]) for (const o of [...set]) o.close();
  }
}
