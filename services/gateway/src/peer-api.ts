/**
 * The gateway's view of its peer: a small interface, and its in-process implementation over a
 * {@link MergeEngine} and its store.
 *
 * @remarks
 * The gateway never reaches into the merge engine or the store directly: everything it needs
 * goes through {@link PeerApi}, so a peer composed differently (over the bus, in a test double)
 * plugs in the same way. Reads are synchronous because observers maintain their results inside
 * the store's commit notification, in commit order; an implementation over a remote store would
 * keep a local read replica.
 */
import type { DocId } from '@lattice/crdt';
import { decodeDocId } from '@lattice/crdt';
import type { Document, DocumentSource, IndexInfo, JsonValue } from '@lattice/dql';
import type { MergeEngine, SubscriptionSpec, SyncStatus } from '@lattice/merge';
import { v1 } from '@lattice/proto';
import type { CommitEntry } from '@lattice/store';

/** The outcome of one statement (as `MergeEngine.execute` answers). */
export interface PeerExecuteResult {
  readonly items: readonly JsonValue[];
  readonly mutatedIds: readonly JsonValue[];
  readonly commitSeq: number;
  readonly warnings: readonly string[];
}

/** Everything the gateway asks of its peer. */
export interface PeerApi {
  readonly peerId: string;
  /** Runs one DQL statement (reads and writes). */
  execute(statement: string, args: Readonly<Record<string, JsonValue>>): Promise<PeerExecuteResult>;
  /** Calls `listener` after each durable commit that wrote documents; returns an unsubscribe. */
  onCommitted(listener: (entry: CommitEntry) => void): () => void;
  /** The current values of documents by canonical `_id` bytes (undefined: absent or deleted). */
  readDocuments(collection: string, ids: readonly Uint8Array[]): (Document | undefined)[];
  /** A DQL source over the current state, for (re-)running live queries. */
  readonly source: DocumentSource;
  /** Ready indexes of a collection, for planning live queries. */
  indexInfo(collection: string): IndexInfo[];
  /** The latest commit. */
  lastCommit(): number;
  subscriptions(): readonly SubscriptionSpec[];
  subscribe(statement: string, args: Readonly<Record<string, JsonValue>>): Promise<void>;
  unsubscribe(statement: string, args: Readonly<Record<string, JsonValue>>): Promise<void>;
  /** Sync status per remote peer (`system:data_sync_info`). */
  syncStatus(): readonly SyncStatus[];
  /** The mesh graph as this peer sees it. */
  presence(): v1.IMuxPresence;
  /**
   * Makes what an observer of `statement` reads available to the synchronous reads above; a peer
   * in another process loads it (the in-process peer reads its store and needs nothing).
   */
  prepareObserve?(statement: string): Promise<void>;
}

/** Options of {@link InProcessPeer}. */
export interface InProcessPeerOptions {
  /**
   * The mesh graph (a `Multiplexer`'s `presence()`); without it, the graph lists the remote
   * peers of the engine's sync sessions, without links.
   */
  readonly presence?: () => v1.IMuxPresence;
}

/** {@link PeerApi} over a {@link MergeEngine} and its `DocumentStore` in this process. */
export class InProcessPeer implements PeerApi {
  readonly #engine: MergeEngine;
  readonly #presence: (() => v1.IMuxPresence) | undefined;

  constructor(engine: MergeEngine, options: InProcessPeerOptions = {}) {
    this.#engine = engine;
    this.#presence = options.presence;
  }

  get peerId(): string {
    return this.#engine.peerId;
  }

  execute(
    statement: string,
    args: Readonly<Record<string, JsonValue>>,
  ): Promise<PeerExecuteResult> {
    return this.#engine.execute(statement, args);
  }

  onCommitted(listener: (entry: CommitEntry) => void): () => void {
    return this.#engine.store.onCommitted(listener);
  }

  readDocuments(collection: string, ids: readonly Uint8Array[]): (Document | undefined)[] {
    const docIds: DocId[] = ids.map((b) => decodeDocId(b));
    const found = new Map<string, Document | undefined>();
    for (const d of this.#engine.store.get(collection, docIds)) {
      found.set(Buffer.from(d.idBytes).toString('latin1'), d.tombstone ? undefined : d.value);
    }
    return ids.map((b) => found.get(Buffer.from(b).toString('latin1')));
  }

  get source(): DocumentSource {
    return this.#engine.store.source;
  }

  indexInfo(collection: string): IndexInfo[] {
    return this.#engine.store.indexInfo(collection);
  }

  lastCommit(): number {
    return this.#engine.store.lastSeq;
  }

  subscriptions(): readonly SubscriptionSpec[] {
    return this.#engine.subscriptions;
  }

  subscribe(statement: string, args: Readonly<Record<string, JsonValue>>): Promise<void> {
    return this.#engine.subscribe(statement, args);
  }

  unsubscribe(statement: string, args: Readonly<Record<string, JsonValue>>): Promise<void> {
    return this.#engine.unsubscribe(statement, args);
  }

  syncStatus(): readonly SyncStatus[] {
    return this.#engine.syncStatus();
  }

  presence(): v1.IMuxPresence {
    if (this.#presence) return this.#presence();
    return v1.MuxPresence.create({
      peerId: this.#engine.peerId,
      peers: this.#engine
        .syncStatus()
        .filter((s) => s.state !== 'closed')
        .map((s) => ({ peerId: s.remotePeer, links: [] })),
    });
  }
}
