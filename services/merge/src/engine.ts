/**
 * A peer's merge engine: its clock, its local writer, its subscriptions and one sync session per
 * connected remote peer, all over one store.
 */
import { asPeerId, HybridClock } from '@lattice/crdt';
import type { PeerId } from '@lattice/crdt';
import { validateSubscription } from '@lattice/dql';
import type { JsonValue, Permissions } from '@lattice/dql';
import { v1 } from '@lattice/proto';
import { decodeValue, encodeValue } from '@lattice/store';
import type { DocumentStore } from '@lattice/store';
import type { MessageChannel } from './channel.js';
import { mergeError } from './errors.js';
import { subscriptionsHash, SyncSession, systemTimer } from './session.js';
import type { SessionOptions, SyncStatus } from './session.js';
import type { ExecuteResult } from './writer.js';
import { decodeClockMeta, HLC_META_KEY, LocalWriter } from './writer.js';

/** Metadata key of the peer's persisted subscriptions. */
export const SUBSCRIPTIONS_META_KEY = 'subscriptions';
/** Most subscriptions one peer keeps. */
export const MAX_SUBSCRIPTIONS = 1_000;

/** A subscription as registered. */
export interface SubscriptionSpec {
  readonly statement: string;
  readonly args: Readonly<Record<string, JsonValue>>;
}

/** Options of {@link MergeEngine.open}. */
export interface MergeEngineOptions {
  readonly peerId: string;
  readonly store: DocumentStore;
  /** Wall clock (Unix ms); injected by the simulator. */
  readonly now?: () => number;
  /** Runs `fn` after `ms`, returning what cancels it (default Node's timers); the simulator's run on its ticks. */
  readonly setTimer?: (ms: number, fn: () => void) => () => void;
  readonly newId?: () => string;
  readonly session?: SessionOptions;
  readonly warn?: (message: string, details: Record<string, unknown>) => void;
}

/** One peer's merge engine; see the module comment. */
export class MergeEngine {
  readonly peerId: PeerId;
  readonly store: DocumentStore;
  readonly clock: HybridClock;
  readonly #writer: LocalWriter;
  readonly #now: () => number;
  readonly #options: MergeEngineOptions;
  #subs: SubscriptionSpec[] = [];
  #subsBytes: Uint8Array = v1.SyncSubscriptions.encode({}).finish();
  #subsHash = subscriptionsHash(this.#subsBytes);
  /** The collections the subscriptions read. */
  #subsCollections: readonly string[] = [];
  readonly #sessions = new Map<string, { session: SyncSession; done: Promise<void> }>();
  readonly #finished = new Map<string, SyncStatus>();
  #closed = false;

  private constructor(options: MergeEngineOptions) {
    this.#options = options;
    this.peerId = asPeerId(options.peerId);
    this.store = options.store;
    this.#now = options.now ?? Date.now;
    const hwm = decodeClockMeta(options.store.getMeta(HLC_META_KEY));
    this.clock = new HybridClock({
      peer: this.peerId,
      wallClock: this.#now,
      ...(hwm === undefined ? {} : { highWaterMark: hwm as never }),
    });
    this.#writer = new LocalWriter(options.store, this.clock, {
      now: this.#now,
      system: { syncStatus: () => this.syncStatus() },
      ...(options.newId ? { newId: options.newId } : {}),
    });
  }

  /** Opens the engine over an open store, restoring its clock and subscriptions. */
  static open(options: MergeEngineOptions): MergeEngine {
    const engine = new MergeEngine(options);
    const saved = options.store.getMeta(SUBSCRIPTIONS_META_KEY);
    if (saved) engine.#setSubscriptions(v1.SyncSubscriptions.decode(saved));
    return engine;
  }

  /** Runs a DQL statement locally (reads and writes). */
  execute(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
  ): Promise<ExecuteResult> {
    if (this.#closed)
      return Promise.reject(mergeError('MERGE_CLOSED', 'the merge engine is closed'));
    return this.#writer.execute(statement, args).then((result) => {
      if (result.queryType === 'EVICT' && result.mutatedIds.length > 0) {
        // What we evicted but still subscribe to comes back: every remote offers it again.
        for (const { session } of this.#sessions.values()) session.sendSubscriptions(true);
      }
      return result;
    });
  }

  /** The peer's subscriptions. */
  get subscriptions(): readonly SubscriptionSpec[] {
    return this.#subs;
  }

  /**
   * Adds a subscription (validated as SEMANTICS.md says); it is stored and survives restarts.
   * Every connected peer is told, and sends what newly matches.
   */
  async subscribe(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
  ): Promise<void> {
    validateSubscription(statement, args);
    if (this.#subs.some((s) => s.statement === statement && sameArgs(s.args, args))) return;
    if (this.#subs.length >= MAX_SUBSCRIPTIONS) {
      throw mergeError('MERGE_LIMIT', `a peer keeps at most ${MAX_SUBSCRIPTIONS} subscriptions`);
    }
    await this.#save([...this.#subs, { statement, args }]);
  }

  /** Removes a subscription (documents already here stay, frozen). */
  async unsubscribe(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
  ): Promise<void> {
    await this.#save(
      this.#subs.filter((s) => !(s.statement === statement && sameArgs(s.args, args))),
    );
  }

  async #save(subs: SubscriptionSpec[]): Promise<void> {
    const message = v1.SyncSubscriptions.create({
      queries: subs.map((s) => ({ statement: s.statement, args: encodeValue(s.args) })),
    });
    await this.store.commit({
      writes: [],
      meta: { [SUBSCRIPTIONS_META_KEY]: v1.SyncSubscriptions.encode(message).finish() },
    });
    this.#setSubscriptions(message);
    for (const { session } of this.#sessions.values()) session.sendSubscriptions();
  }

  #setSubscriptions(message: v1.SyncSubscriptions): void {
    this.#subsBytes = v1.SyncSubscriptions.encode(message).finish();
    this.#subsHash = subscriptionsHash(this.#subsBytes);
    this.#subs = message.queries.map((q) => ({
      statement: q.statement ?? '',
      args: (!q.args || q.args.length === 0 ? {} : decodeValue(q.args)) as Record<
        string,
        JsonValue
      >,
    }));
    this.#subsCollections = [
      ...new Set(this.#subs.map((s) => validateSubscription(s.statement, s.args).collection)),
    ];
  }

  /**
   * Starts a sync session with `remotePeer` over `channel`; resolves when the session ends
   * (the channel closed), rejects when the protocol failed. `permissions`: what the remote may
   * read and write when it is a restricted principal (see `SessionOptions.permissions`).
   */
  connect(
    remotePeer: string,
    channel: MessageChannel,
    options: {
      readonly permissions?: Permissions | undefined;
      /** Keep this session id (a session that replaces one the remote restarted: `restartOf`). */
      readonly sessionId?: Uint8Array | undefined;
    } = {},
  ): Promise<void> {
    if (this.#closed)
      return Promise.reject(mergeError('MERGE_CLOSED', 'the merge engine is closed'));
    if (this.#sessions.has(remotePeer)) {
      channel.close();
      return Promise.reject(
        mergeError('MERGE_SESSION_EXISTS', `a session with ${remotePeer} is running`),
      );
    }
    const session = new SyncSession(
      {
        peerId: this.peerId,
        store: this.store,
        clock: this.clock,
        subscriptions: () => ({
          bytes: this.#subsBytes,
          hash: this.#subsHash,
          collections: this.#subsCollections,
        }),
        now: this.#now,
        setTimer: this.#options.setTimer ?? systemTimer,
        warn: this.#options.warn ?? (() => undefined),
      },
      remotePeer,
      channel,
      { ...this.#options.session, permissions: options.permissions, sessionId: options.sessionId },
    );
    const done = session.run().finally(() => {
      this.#finished.set(remotePeer, session.status());
      this.#sessions.delete(remotePeer);
    });
    this.#sessions.set(remotePeer, { session, done });
    return done;
  }

  /** Ends the session with `remotePeer`, if one runs, and waits until it has stopped. */
  async disconnect(remotePeer: string): Promise<void> {
    const running = this.#sessions.get(remotePeer);
    if (!running) return;
    running.session.close();
    await running.done.catch(() => undefined); // its failure was reported to connect()'s caller
  }

  /** Sync status per remote peer, connected or not (`system:data_sync_info`). */
  syncStatus(): SyncStatus[] {
    const out = new Map(this.#finished);
    for (const [peer, { session }] of this.#sessions) out.set(peer, session.status());
    return [...out.values()];
  }

  /** Closes every session (the store stays open: its owner closes it). */
  async close(): Promise<void> {
    this.#closed = true;
    const running = [...this.#sessions.values()];
    for (const { session } of running) session.close();
    await Promise.allSettled(running.map((r) => r.done));
  }
}

function sameArgs(
  a: Readonly<Record<string, JsonValue>>,
  b: Readonly<Record<string, JsonValue>>,
): boolean {
  return Buffer.compare(encodeValue(a), encodeValue(b)) === 0;
}
