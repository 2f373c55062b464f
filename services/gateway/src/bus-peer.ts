/**
 * {@link PeerApi} over the bus: the gateway in its own process, serving a peer whose merge service
 * (with the store) and multiplexer run in other processes.
 *
 * @remarks
 * Statements, subscriptions and sync status go to the merge service (`MergeClient`); the mesh
 * graph comes from the multiplexer's presence reports. Observers need synchronous reads in commit
 * order, so the gateway keeps a read replica of each collection it observes: loaded whole (page
 * by page from the store) when the first observer of the collection starts, then kept current from
 * the store's `committed` events by reading the documents each commit touched. Commits reach the
 * observers only after the replica holds their documents, one at a time, in order. Replicas are
 * bounded (`maxReplicaDocuments` per collection, `maxReplicas` collections; beyond them `Observe`
 * fails with `GATEWAY_LIMIT`) and kept for the gateway's lifetime.
 *
 * Sync status and subscriptions are answered from a copy refreshed every `refreshMs` (and after
 * each change made through this gateway), so they may be up to that old.
 */
import { decodeDocId, type DocId } from '@lattice/crdt';
import type { Bus, Subscription } from '@lattice/bus';
import {
  MemorySource,
  parse,
  type Document,
  type DocumentSource,
  type IndexInfo,
  type JsonValue,
} from '@lattice/dql';
import { MergeClient, type SubscriptionSpec, type SyncStatus } from '@lattice/merge';
import { v1, type Subjects } from '@lattice/proto';
import { decodeValue, StoreClient, type CommitEntry } from '@lattice/store';
import { gatewayError } from './errors.js';
import type { PeerApi, PeerExecuteResult } from './peer-api.js';

/** Options of {@link BusPeer.connect}. */
export interface BusPeerOptions {
  /** Most documents kept per observed collection (default 200 000). */
  readonly maxReplicaDocuments?: number;
  /** Most collections replicated (default 64). */
  readonly maxReplicas?: number;
  /** How often sync status and subscriptions are refreshed (default 1 000 ms). */
  readonly refreshMs?: number;
  /** Told about failures that do not fail a call (a replica that could not be updated). */
  readonly onProblem?: (message: string, error: unknown) => void;
}

/** See the module comment. */
export class BusPeer implements PeerApi {
  #peerId = '';
  readonly #merge: MergeClient;
  readonly #store: StoreClient;
  readonly #options: BusPeerOptions;
  readonly #listeners = new Set<(entry: CommitEntry) => void>();
  /** Collections replicated in {@link #source}. */
  readonly #replicas = new Set<string>();
  readonly #source: MemorySource = new MemorySource();
  readonly #feeds: Subscription[] = [];
  readonly #timer: NodeJS.Timeout;
  /** Commits and replica loads, applied one at a time in arrival order. */
  #chain: Promise<void> = Promise.resolve();
  #lastCommit: number;
  #subscriptions: readonly SubscriptionSpec[];
  #syncStatus: readonly SyncStatus[];
  #presence: v1.IMuxPresence;

  private constructor(bus: Bus, subjects: Subjects, options: BusPeerOptions) {
    this.#merge = new MergeClient(bus, subjects, { timeoutMs: 10_000 });
    this.#store = new StoreClient(bus, subjects, { timeoutMs: 10_000 });
    this.#options = options;
    this.#lastCommit = 0;
    this.#syncStatus = [];
    this.#subscriptions = [];
    this.#presence = { peers: [] };
    const committed = bus.subscribe(subjects.event('store', 'committed'), {
      maxPending: 1_000_000,
    });
    const presence = bus.subscribe(subjects.event('multiplexer', 'presence'));
    this.#feeds.push(committed, presence);
    void (async () => {
      for await (const m of committed) this.#onCommitted(m.data);
    })();
    void (async () => {
      for await (const m of presence) this.#onPresence(m.data);
    })();
    void bus
      .request(subjects.request('multiplexer', 'presence'), new Uint8Array(0), {
        timeoutMs: 2_000,
      })
      .then((r) => this.#onPresence(r.data))
      .catch(() => undefined); // No multiplexer yet: the next report fills it in.
    this.#timer = setInterval(() => void this.#refresh(), options.refreshMs ?? 1_000);
    this.#timer.unref();
  }

  /**
   * Follows the peer whose merge service is on `subjects`. It does not wait for the merge service:
   * until it answers, statements fail with its typed error and {@link peerId} is empty.
   */
  static async connect(
    bus: Bus,
    subjects: Subjects,
    options: BusPeerOptions = {},
  ): Promise<BusPeer> {
    const peer = new BusPeer(bus, subjects, options);
    await peer.#refresh();
    return peer;
  }

  /** The peer's id, once its merge service answered (empty before). */
  get peerId(): string {
    return this.#peerId;
  }

  async execute(
    statement: string,
    args: Readonly<Record<string, JsonValue>>,
  ): Promise<PeerExecuteResult> {
    const r = await this.#merge.execute(statement, args);
    this.#lastCommit = Math.max(this.#lastCommit, r.commitSeq);
    return r;
  }

  onCommitted(listener: (entry: CommitEntry) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Loads the replica of the statement's collection (before an observer of it starts). */
  async prepareObserve(statement: string): Promise<void> {
    const stmt = parse(statement);
    if (stmt.kind !== 'select') return; // The hub refuses it with the right error.
    const collection = stmt.from.name;
    if (this.#replicas.has(collection)) return;
    await this.#enqueue(() => this.#load(collection));
  }

  readDocuments(collection: string, ids: readonly Uint8Array[]): (Document | undefined)[] {
    if (!this.#replicas.has(collection)) return ids.map(() => undefined);
    return ids.map((id) => [...this.#source.get(collection, [decodeDocId(id) as JsonValue])][0]);
  }

  get source(): DocumentSource {
    return this.#source;
  }

  indexInfo(): IndexInfo[] {
    return []; // The replica has no indexes: observers' plans scan it.
  }

  lastCommit(): number {
    return this.#lastCommit;
  }

  subscriptions(): readonly SubscriptionSpec[] {
    return this.#subscriptions;
  }

  async subscribe(statement: string, args: Readonly<Record<string, JsonValue>>): Promise<void> {
    this.#subscriptions = await this.#merge.subscribe(statement, args);
  }

  async unsubscribe(statement: string, args: Readonly<Record<string, JsonValue>>): Promise<void> {
    this.#subscriptions = await this.#merge.unsubscribe(statement, args);
  }

  syncStatus(): readonly SyncStatus[] {
    return this.#syncStatus;
  }

  presence(): v1.IMuxPresence {
    return this.#presence;
  }

  /** Stops following the peer. */
  close(): void {
    clearInterval(this.#timer);
    for (const f of this.#feeds) f.unsubscribe();
    this.#listeners.clear();
  }

  #enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(step);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #load(collection: string): Promise<void> {
    if (this.#replicas.has(collection)) return; // Loaded while this load waited its turn.
    const maxReplicas = this.#options.maxReplicas ?? 64;
    if (this.#replicas.size >= maxReplicas) {
      throw gatewayError('GATEWAY_LIMIT', `at most ${maxReplicas} observed collections`, {
        collection,
      });
    }
    const max = this.#options.maxReplicaDocuments ?? 200_000;
    const docs: Document[] = [];
    for await (const page of this.#store.pages(`SELECT * FROM \`${collection}\``, {}, 1_000)) {
      docs.push(...(page as Document[]));
      if (docs.length > max) {
        throw gatewayError(
          'GATEWAY_LIMIT',
          `collection ${collection} has more than ${max} documents: too many to observe through ` +
            'a gateway in its own process (compose it with the peer, or raise the limit)',
          { collection },
        );
      }
    }
    for (const d of docs) this.#source.put(collection, d);
    this.#replicas.add(collection);
  }

  #onCommitted(data: Uint8Array): void {
    let event: v1.Committed;
    try {
      event = v1.Committed.decode(data);
    } catch {
      return;
    }
    const entry: CommitEntry = {
      seq: Number(event.commitSeq),
      collections: event.collections.map((c) => ({
        collection: c.collection,
        ids: c.docIds,
      })),
      ...(event.trace?.traceparent
        ? {
            trace: {
              traceparent: event.trace.traceparent,
              ...(event.trace.tracestate ? { tracestate: event.trace.tracestate } : {}),
            },
          }
        : {}),
    } as CommitEntry;
    void this.#enqueue(async () => {
      for (const { collection, ids } of entry.collections) {
        if (this.#replicas.has(collection)) await this.#update(collection, ids);
      }
      this.#lastCommit = Math.max(this.#lastCommit, entry.seq);
      for (const l of [...this.#listeners]) l(entry);
    }).catch((error: unknown) => this.#options.onProblem?.('replica update failed', error));
  }

  /** Reads the documents a commit touched into the replica (their current state). */
  async #update(collection: string, ids: readonly Uint8Array[]): Promise<void> {
    const docIds: DocId[] = ids.map((b) => decodeDocId(b));
    const reply = await this.#store.get(collection, docIds);
    for (const d of reply.docs) {
      if (!d.docId) continue;
      if (d.found && d.value && d.value.length > 0) {
        this.#source.put(collection, decodeValue(d.value) as Document);
      } else {
        this.#source.remove(collection, decodeDocId(d.docId) as JsonValue);
      }
    }
  }

  async #refresh(): Promise<void> {
    try {
      const status = await this.#merge.syncStatus();
      this.#peerId = status.peerId;
      this.#syncStatus = status.peers;
      this.#lastCommit = Math.max(this.#lastCommit, status.lastCommit);
      this.#subscriptions = await this.#merge.subscriptions();
    } catch {
      // The merge service is restarting: keep the last copy.
    }
  }

  #onPresence(data: Uint8Array): void {
    try {
      this.#presence = v1.MuxPresence.toObject(v1.MuxPresence.decode(data), { longs: Number });
    } catch {
      // Not a presence report: ignored.
    }
  }
}
