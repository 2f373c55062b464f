/**
 * One sync session with one remote peer, over an ordered reliable {@link MessageChannel}.
 *
 * Protocol (messages `lattice.v1.SyncMessage`, proto/lattice/v1/sync.proto), symmetric — each
 * side sends to the other what the other subscribed to:
 *
 * ```
 *  A                                              B
 *  Hello{peer A, version 3, session a}           →
 *                                                ← Hello{peer B, session b}
 *  Hello{session a, seen b, resume_from: cpA[B]} →      (cpA[B]: how far A holds B's commits)
 *  Subscriptions{A's queries}                    →
 *                                                ← Hello{session b, seen a, …}, Subscriptions{…}
 *                                                ← Offer{batch n, [(coll, id, vv, tombstone)]}
 *  Need{batch n, [(wanted, A's vv)]}             →
 *                                                ← Deltas{batch n, [delta vs A's vv], through, hash}
 *  (A merges, commits with cpA[B] = through — durable — then)
 *  Ack{batch n, through}                         →
 *                                                ← Deltas{batch m, [delta vs known vv], through}
 *  Ack{batch m, through}                         →      (a push: no offer, no need)
 * ```
 *
 * - The handshake: each session has a random id. A session answers the remote's first hello
 *   with a hello that names the remote's session, and sends nothing else before it; it takes the
 *   remote's other messages only after a hello that names its own session. So what arrives
 *   before (the end of the remote's previous session, or what it sent before it knew this one)
 *   is skipped, and a hello lost on the way (a bus feed that dropped it before this session
 *   existed) costs nothing: the remote answers this session's hello with another, and a session
 *   that gets messages but no hello naming it asks for one (`answer`, on the first and every
 *   16th skipped message), which the remote answers without the flag (no loop). A hello from a
 *   new session of the remote ends this one; the replacement keeps this session's id, so the
 *   remote does not start over in turn (no restart ping-pong).
 * - Lost first messages: until the remote's hello naming it arrives, a session sends its hello
 *   again with `answer` after `helloRetryMs` (1 s, doubling to 30 s), followed by its
 *   subscriptions once it knows the remote's session, so a new link that lost both hellos, or a
 *   hello and what followed it, still gets going. A session answering `answer` sends its
 *   subscriptions again too; one that had already taken the remote's hello naming it (and so
 *   may have sent data the remote dropped) starts over instead, keeping its id and resuming from
 *   the remote's checkpoint.
 *
 * Any message but the hello may travel packed (`SyncPacked`: the message raw-deflated, see
 * `message-codec.ts`) when it is at least 256 bytes and that makes it smaller.
 *
 * - The sender walks its change log from the receiver's `resume_from` (or scans the subscribed
 *   collections when starting from 0, when its log no longer reaches back that far, and whenever
 *   the receiver's subscriptions change), and offers every document that matches one of the
 *   receiver's subscriptions, plus every tombstone of a subscribed collection. The receiver
 *   answers with its own version vectors; the sender sends each wanted document as a delta
 *   against that vector, so a receiver never gets a field it already has and a new document
 *   arrives whole. A tombstone is wanted only by a receiver that has the document; a document
 *   that stops matching is no longer offered and stays frozen on the receiver.
 * - Pushes: a document whose version the remote is known to hold (from its needs, its acks and
 *   what it sent us; bounded memory, forgotten when its subscriptions change) goes as a delta
 *   against that version without an offer, or not at all when the remote has all of it. A
 *   document's full state (the delta against nothing) is the encoding the store holds: the
 *   sender sends those bytes as they are, and a receiver that did not have the document stores
 *   them as they came (after merging them, which checks them). The receiver commits a full state
 *   without reading the document first, expecting it absent; when it arrived meanwhile from
 *   elsewhere the commit conflicts, and the receiver reads and merges instead (and, for the rest
 *   of the session, reads first).
 * - `through` says how far the sender's commits are covered once the batch is applied; the
 *   receiver stores it as its checkpoint for the sender in the same commit as the batch's
 *   documents, and acknowledges only after that commit is durable. The checkpoint is tagged with
 *   the hash of the subscriptions it was made under; a peer that subscribes differently next
 *   time resumes from 0. Deltas carry that hash only when it differs from the one in the
 *   session's previous deltas (so always in the first); an empty hash means "the same".
 * - Up to `window` batches are in flight (offered or sent, not yet acknowledged), each up to
 *   `batchSize` documents: a high-latency link stays busy, and a slow receiver stalls the sender
 *   instead of growing its memory.
 * - What a peer receives becomes its own commits, which its other sessions offer in turn: data
 *   relays across several hops. Offers of what the other side just sent are answered "not
 *   wanted" (equal version vectors).
 * - A remote that is a restricted principal (an app behind the gateway's sync endpoint, whose key
 *   says what it may read and write: `SessionOptions.permissions`) is offered and sent only the
 *   documents it may read, tombstones included; what it may not write is answered "not wanted"
 *   when offered and refused on arrival when pushed or relayed (`MERGE_PERMISSION_DENIED`,
 *   counted in `documentsRefused`). Its local edits outside its permission stay on it.
 *
 * Versions: 1 sent every message plain and every hash; 2 packs messages and elides repeated
 * hashes; 3 (this one) adds session ids to the handshake. A peer refuses a hello of another
 * version: peers of different versions do not sync with each other.
 */
import { createHash, randomBytes } from 'node:crypto';
import { CrdtDocument, decodeDelta, decodeDocId, encodeDelta } from '@lattice/crdt';
import type { DocDelta, DocId, HybridClock, PeerId, VersionVector } from '@lattice/crdt';
import { permits, validateSubscription } from '@lattice/dql';
import type { JsonValue, Permissions, Subscription } from '@lattice/dql';
import { extractTraceContext, withSpan } from '@lattice/bus';
import { hasCode } from '@lattice/errors';
import { context, SpanKind, trace as otel } from '@opentelemetry/api';
import { v1 } from '@lattice/proto';
import { decodeValue } from '@lattice/store';
import type {
  CommitWrite,
  DocumentStore,
  Expectation,
  StoredDocument,
  TraceParent,
} from '@lattice/store';
import type { MessageChannel } from './channel.js';
import { mergeError } from './errors.js';
import { decodeSyncMessage, encodeSyncMessage } from './message-codec.js';
import {
  activeTrace,
  encodeClockMeta,
  HLC_META_KEY,
  loadDocument,
  persistDocument,
} from './writer.js';

const tracer = otel.getTracer('@lattice/merge');

/** The longest wait between two hellos of a session the remote has not answered. */
const MAX_HELLO_RETRY_MS = 30_000;

/**
 * The protocol version this code speaks; a peer refuses a hello with another one.
 * @remarks 2: packed (deflated) messages and `subscriptions_hash` elided in deltas after the first
 * of a session; 3: session ids in the hello. Peers of different versions do not sync with each
 * other (upgrade a fleet together).
 */
export const SYNC_PROTOCOL_VERSION = 3;

/** What a session reports about its remote peer (`system:data_sync_info`). */
export interface SyncStatus {
  readonly remotePeer: string;
  readonly state: 'connecting' | 'syncing' | 'idle' | 'closed';
  /** The latest local commit the remote has acknowledged holding (durably). */
  readonly ackedThrough: number;
  /** The remote's commit we hold everything of (our checkpoint for it). */
  readonly receivedThrough: number;
  /** When the last message from the remote arrived (Unix ms), 0 if none yet. */
  readonly lastReceivedAt: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly documentsSent: number;
  readonly documentsReceived: number;
  /** Deltas this peer refused (too large, clock too far ahead, undecodable). */
  readonly documentsRefused: number;
}

/** A {@link SyncStatus} as the `PeerSyncStatus` message (merge service, gateway). */
export function encodeSyncStatus(s: SyncStatus): v1.IPeerSyncStatus {
  return {
    remotePeer: s.remotePeer,
    state: s.state,
    ackedThrough: s.ackedThrough,
    receivedThrough: s.receivedThrough,
    lastReceivedAtMs: s.lastReceivedAt,
    bytesSent: s.bytesSent,
    bytesReceived: s.bytesReceived,
    documentsSent: s.documentsSent,
    documentsReceived: s.documentsReceived,
    documentsRefused: s.documentsRefused,
  };
}

/** The inverse of {@link encodeSyncStatus}. */
export function decodeSyncStatus(p: v1.IPeerSyncStatus): SyncStatus {
  return {
    remotePeer: p.remotePeer ?? '',
    state: (p.state ?? 'closed') as SyncStatus['state'],
    ackedThrough: p.ackedThrough ?? 0,
    receivedThrough: p.receivedThrough ?? 0,
    lastReceivedAt: p.lastReceivedAtMs ?? 0,
    bytesSent: p.bytesSent ?? 0,
    bytesReceived: p.bytesReceived ?? 0,
    documentsSent: p.documentsSent ?? 0,
    documentsReceived: p.documentsReceived ?? 0,
    documentsRefused: p.documentsRefused ?? 0,
  };
}

/** What a session needs from its peer. */
export interface SessionHost {
  readonly peerId: string;
  readonly store: DocumentStore;
  readonly clock: HybridClock;
  /** The peer's current subscriptions message (encoded), its hash, and the collections read. */
  subscriptions(): {
    readonly bytes: Uint8Array;
    readonly hash: string;
    readonly collections: readonly string[];
  };
  /** Wall clock (Unix ms). */
  now(): number;
  /** Runs `fn` after `ms` (the hello retry); returns what cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
  /** Reports a problem that does not end the session (a refused document, a bad query). */
  warn(message: string, details: Record<string, unknown>): void;
}

/** The host timer of a {@link SessionHost}: Node's, not keeping the process alive. */
export function systemTimer(ms: number, fn: () => void): () => void {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
}

/** Options of {@link SyncSession}. */
export interface SessionOptions {
  /**
   * Documents per batch (default 100). A scan reads `batchSize × window` documents at a time (at
   * most 10,000): what may be in flight anyway.
   */
  readonly batchSize?: number;
  /** Batches in flight (default 4). */
  readonly window?: number;
  /**
   * Until the remote's hello naming this session arrives, the hello is sent again (asking for an
   * answer) after this many ms, then after twice that, up to 30 s (default 1,000): a session
   * whose hello and the remote's answer were both lost would otherwise wait forever.
   */
  readonly helloRetryMs?: number;
  /**
   * Deflate messages of at least 256 bytes when that makes them smaller (default true). The
   * receiver reads both forms; turn it off where bytes cost nothing (peers in one process).
   */
  readonly pack?: boolean;
  /**
   * What the remote peer may read and write (SEMANTICS.md § Permissions), when it is a
   * restricted principal (an app that connected with a restricted key); undefined: everything.
   * The session offers and sends only documents the remote may read, and refuses (counts, logs,
   * never asks for) documents it may not write, also when they are relayed from elsewhere.
   */
  readonly permissions?: Permissions | undefined;
  /**
   * The id of the session this one replaces because the remote started over (`restartOf`);
   * absent: a new random id.
   */
  readonly sessionId?: Uint8Array | undefined;
}

interface Outstanding {
  readonly batch: number;
  /** The batch's documents; `key` is their {@link keyOf}. */
  readonly entries: { collection: string; idBytes: Uint8Array; key: string }[];
  /**
   * The entries' documents as read when the batch was made, and the store's `lastSeq` then: while
   * no commit has happened since, they are what a second read would return (until sent).
   */
  held: readonly StoredDocument[] | undefined;
  readonly readAt: number;
  readonly through: number;
  readonly subsHash: string;
  readonly trace: TraceParent | undefined;
  /** `offered`: waiting for the need; `ready`: deltas known, waiting for earlier batches; `sent`. */
  state: 'offered' | 'ready' | 'sent';
  /** For each entry, the version vector the remote is known to hold (once known). */
  since: (VersionVector | undefined)[];
  /** For each entry, whether it goes out (an offer the remote did not want does not). */
  wanted: boolean[];
}

/** What a session that ends because the remote started over hands the one that replaces it. */
export interface SessionRestart {
  /** The remote's new hello: deliver it first to the new session. */
  readonly hello: Uint8Array;
  /** The ended session's id: the new session keeps it (`SessionOptions.sessionId`). */
  readonly sessionId: Uint8Array;
}

const restarts = new WeakMap<object, SessionRestart>();

/** What a `MERGE_REMOTE_RESTARTED` failure carries for the session that replaces the failed one. */
export function restartOf(err: unknown): SessionRestart | undefined {
  return typeof err === 'object' && err !== null ? restarts.get(err) : undefined;
}

/** Length of a session id. */
const SESSION_ID_BYTES = 8;

/** The hash that tags checkpoints: SHA-256 of the subscriptions message bytes. */
export function subscriptionsHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Reads a stored checkpoint for a remote peer. */
export function readCheckpoint(
  store: DocumentStore,
  remote: string,
): { through: number; hash: string } {
  const b = store.getCheckpoint(remote);
  if (!b) return { through: 0, hash: '' };
  const c = v1.SyncCheckpoint.decode(b);
  return { through: c.throughCommit, hash: c.subscriptionsHash };
}

/** One sync session; see the module comment for the protocol. */
export class SyncSession {
  readonly #host: SessionHost;
  readonly #channel: MessageChannel;
  readonly #batchSize: number;
  readonly #permissions: Permissions | undefined;
  /**
   * Collections the remote held nothing of when its session started (its hello): the first scan
   * sends their documents whole without offers. Consumed by that scan.
   */
  #remoteEmpty = new Set<string>();
  readonly #window: number;
  readonly #pack: boolean;
  #remote = '';
  /** This session's id (see `SyncHello.session_id`). */
  readonly #id: Uint8Array;
  /** The remote's session, from its first hello. */
  #remoteSession: Uint8Array | undefined;
  /** Whether a hello naming the remote's session went out: only then may other messages. */
  #introduced = false;
  /** Messages skipped before the handshake completed (every 16th asks for a hello). */
  #skipped = 0;
  readonly #helloRetryMs: number;
  #cancelHelloRetry: () => void = () => undefined;
  #state: SyncStatus['state'] = 'connecting';
  /** Set by the remote's hello that names this session: from then on its messages count. */
  #resumeFrom: number | undefined;
  #remoteSubs: Subscription[] = [];
  #remoteSubsHash = '';
  #subsVersion = 0;
  #batch = 0;
  #ackedThrough = 0;
  #receivedThrough = 0;
  #lastReceivedAt = 0;
  #bytesSent = 0;
  #bytesReceived = 0;
  #docsSent = 0;
  #docsReceived = 0;
  #docsRefused = 0;
  readonly #outstanding = new Map<number, Outstanding>();
  /**
   * What the remote is known to hold, per document (learned from needs, acks and what it sent
   * us): a document it is known to hold is pushed as a delta without an offer, or skipped when
   * it already has everything. Bounded; what falls out goes through offers again.
   */
  readonly #known = new Map<string, VersionVector>();
  /** Version vectors of what each sent batch carried, recorded as known once acknowledged. */
  readonly #sentVersions = new Map<number, [string, VersionVector][]>();
  #wake: (() => void) | undefined;
  #closed = false;
  #sentSubsHash = '';
  /** The subscriptions hash of the last deltas sent (later ones with the same hash omit it). */
  #lastSentDeltasHash = '';
  /** The subscriptions hash of the last deltas received (an empty one means this one). */
  #lastReceivedDeltasHash = '';
  /**
   * Whether a batch's first commit attempt takes full states as new documents without reading
   * them (see `#apply`); off after the first such attempt that conflicted.
   */
  #blindFullStates = true;

  /**
   * @param remotePeer - the peer at the other end, as the link's handshake established it; its
   * hello must name the same peer.
   */
  constructor(
    host: SessionHost,
    remotePeer: string,
    channel: MessageChannel,
    options: SessionOptions = {},
  ) {
    if (remotePeer === host.peerId)
      throw mergeError('MERGE_SESSION_EXISTS', 'refusing a sync session with this peer itself');
    this.#host = host;
    this.#remote = remotePeer;
    this.#channel = channel;
    this.#batchSize = options.batchSize ?? 100;
    this.#window = options.window ?? 4;
    this.#pack = options.pack ?? true;
    this.#helloRetryMs = options.helloRetryMs ?? 1_000;
    this.#permissions = options.permissions;
    this.#id = options.sessionId ?? new Uint8Array(randomBytes(SESSION_ID_BYTES));
  }

  /** The remote peer id. */
  get remotePeer(): string {
    return this.#remote;
  }

  /** The session's status. */
  status(): SyncStatus {
    return {
      remotePeer: this.#remote,
      state: this.#state,
      ackedThrough: this.#ackedThrough,
      receivedThrough: this.#receivedThrough,
      lastReceivedAt: this.#lastReceivedAt,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#bytesReceived,
      documentsSent: this.#docsSent,
      documentsReceived: this.#docsReceived,
      documentsRefused: this.#docsRefused,
    };
  }

  /** Runs the session until the channel closes (resolves) or the protocol fails (rejects). */
  async run(): Promise<void> {
    const unsubscribe = this.#host.store.onCommitted(() => this.#notify());
    const pump = this.#pumpWhenReady().catch((err: unknown) => {
      // A closed channel ends the pump as it ends the session; anything else is a failure.
      if (!hasCode(err, 'MERGE_CHANNEL_CLOSED')) throw err;
    });
    try {
      const cp = readCheckpoint(this.#host.store, this.#remote);
      this.#receivedThrough = cp.hash === this.#host.subscriptions().hash ? cp.through : 0;
      await this.#sendHello();
      this.#retryHello(this.#helloRetryMs);
      for await (const bytes of this.#channel.messages) {
        this.#bytesReceived += bytes.length;
        this.#lastReceivedAt = this.#host.now();
        const msg = decodeSyncMessage(bytes);
        if (msg.body === 'hello') await this.#hello(msg.hello as v1.SyncHello, bytes);
        else if (this.#resumeFrom !== undefined) await this.#receive(msg);
        // Before the remote's hello that names this session, a message is the trailing end of
        // an earlier session, or was sent before the remote knew this one: not for us. Or the
        // remote's hello to us was lost: ask for one (now and then, not for every message).
        else if (this.#skipped++ % 16 === 0) await this.#sendHello(true);
      }
    } catch (err) {
      if (!hasCode(err, 'MERGE_CHANNEL_CLOSED')) throw err;
    } finally {
      this.#closed = true;
      this.#state = 'closed';
      this.#cancelHelloRetry();
      unsubscribe();
      this.#notify();
      this.#channel.close();
      await pump;
    }
  }

  /**
   * Sends this peer's current subscriptions (after a change); with `again`, also unchanged ones,
   * which makes the remote offer everything that matches once more (after a local EVICT, so
   * evicted documents that still match come back).
   */
  sendSubscriptions(again = false): void {
    if (!this.#introduced) return; // Sent once the remote's session is known.
    const subs = this.#host.subscriptions();
    if (subs.hash === this.#sentSubsHash && !again) return;
    this.#sentSubsHash = subs.hash;
    void this.#send({ subscriptions: v1.SyncSubscriptions.decode(subs.bytes) }).catch(
      () => undefined,
    );
  }

  /** Closes the session. */
  close(): void {
    this.#closed = true;
    this.#channel.close();
    this.#notify();
  }

  async #send(body: v1.ISyncMessage): Promise<void> {
    const d = body.deltas;
    if (d) {
      // Encoded (and queued) in the order of the calls, so the receiver reads the hashes in the
      // order they were elided: only a change of hash is spelled out.
      if (d.subscriptionsHash === this.#lastSentDeltasHash)
        body = { ...body, deltas: { ...d, subscriptionsHash: '' } };
      else this.#lastSentDeltasHash = d.subscriptionsHash ?? '';
    }
    const bytes = encodeSyncMessage(body, { pack: this.#pack });
    this.#bytesSent += bytes.length;
    await this.#channel.send(bytes);
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Waits for a notification; never sleeps once the session is closing (nobody would wake it). */
  #sleep(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((r) => (this.#wake = r));
  }

  /**
   * Sends the hello again (asking for an answer) after `ms` while the remote's hello naming this
   * session has not come, doubling the wait each time up to 30 s.
   */
  #retryHello(ms: number): void {
    this.#cancelHelloRetry = this.#host.setTimer(ms, () => {
      if (this.#closed || this.#resumeFrom !== undefined) return;
      // The remote missed our hello, so also what followed it: the subscriptions go again
      // (once the remote's session is known). A closed channel ends the session anyway.
      this.#sendHello(true)
        .then(() => this.sendSubscriptions(true))
        .catch(() => undefined);
      this.#retryHello(Math.min(2 * ms, MAX_HELLO_RETRY_MS));
    });
  }

  /** Sends this session's hello, naming the remote's session once known. */
  async #sendHello(answer = false): Promise<void> {
    await this.#send({
      hello: {
        peerId: this.#host.peerId,
        protocolVersion: SYNC_PROTOCOL_VERSION,
        resumeFrom: this.#receivedThrough,
        emptyCollections: this.#host
          .subscriptions()
          .collections.filter((c) => this.#host.store.records(c, { limit: 1 }).length === 0),
        sessionId: this.#id,
        ...(this.#remoteSession ? { seenSessionId: this.#remoteSession } : {}),
        ...(answer ? { answer } : {}),
      },
    });
  }

  // --- receiving -------------------------------------------------------------------------------

  /**
   * The handshake (see `SyncHello.session_id`): the remote's first hello is answered with a hello
   * that names its session, and only then do other messages go out; the remote's messages count
   * from its hello that names this session. A hello from another session of the remote ends
   * this one (`MERGE_REMOTE_RESTARTED`, see {@link restartOf}); the replacement keeps this id,
   * so the remote has no reason to start over in turn. A lost hello (a feed that dropped it
   * before this session existed) thus costs nothing: the remote answers this session's own.
   */
  async #hello(h: v1.SyncHello, bytes: Uint8Array): Promise<void> {
    if (h.protocolVersion !== SYNC_PROTOCOL_VERSION) {
      throw mergeError(
        'MERGE_PROTOCOL_VERSION',
        `remote speaks sync protocol ${h.protocolVersion}, this peer ${SYNC_PROTOCOL_VERSION}`,
      );
    }
    if (h.peerId !== this.#remote) {
      throw mergeError(
        'MERGE_PROTOCOL',
        `expected peer ${this.#remote}, the hello names ${h.peerId}`,
      );
    }
    if (h.sessionId.length !== SESSION_ID_BYTES) {
      throw mergeError('MERGE_PROTOCOL', `a hello's session id is ${SESSION_ID_BYTES} bytes`);
    }
    if (this.#remoteSession === undefined) {
      this.#remoteSession = h.sessionId;
      await this.#sendHello();
      this.#introduced = true;
      this.sendSubscriptions();
    } else if (sameBytes(h.sessionId, this.#remoteSession)) {
      // The remote's hello naming us was lost on the way: it asks again. It is not listening to
      // this session yet, so what followed that hello was lost too: the subscriptions go again,
      // and a session that already sent data starts over (same id, from the remote's
      // checkpoint), as for a remote restart — the remote keeps its session.
      if (h.answer) {
        if (this.#resumeFrom !== undefined) {
          const err = mergeError(
            'MERGE_REMOTE_RESTARTED',
            `${this.#remote} missed this session's hello: starting over`,
          );
          restarts.set(err, { hello: bytes, sessionId: this.#id });
          throw err;
        }
        await this.#sendHello();
        this.sendSubscriptions(true);
      }
    } else {
      const err = mergeError(
        'MERGE_REMOTE_RESTARTED',
        `${this.#remote} restarted its sync session`,
      );
      restarts.set(err, { hello: bytes, sessionId: this.#id });
      throw err;
    }
    if (this.#resumeFrom === undefined && sameBytes(h.seenSessionId, this.#id)) {
      // A number: a hello without the field reads the generated prototype's default, a `Long`
      // zero (made before `@lattice/proto` turned `Long` off), which would ride along as the
      // cursor into every batch's `through_commit`.
      this.#resumeFrom = Number(h.resumeFrom);
      this.#cancelHelloRetry();
      this.#remoteEmpty = new Set(h.emptyCollections.slice(0, MAX_EMPTY_COLLECTIONS));
      this.#state = 'syncing';
      this.#notify();
    }
  }

  async #receive(msg: v1.SyncMessage): Promise<void> {
    switch (msg.body) {
      case 'subscriptions': {
        const s = msg.subscriptions as v1.SyncSubscriptions;
        const subs: Subscription[] = [];
        for (const q of s.queries) {
          try {
            const args =
              !q.args || q.args.length === 0
                ? {}
                : (decodeValue(q.args) as Record<string, JsonValue>);
            subs.push(validateSubscription(q.statement ?? '', args));
          } catch (err) {
            this.#host.warn('ignoring an invalid subscription from a remote peer', {
              remote: this.#remote,
              statement: q.statement,
              err,
            });
          }
        }
        this.#remoteSubs = subs;
        // A new subscription set (or a resend after an eviction over there) is answered with a
        // full rescan through offers: forget what the remote was known to hold.
        this.#known.clear();
        this.#remoteSubsHash = subscriptionsHash(v1.SyncSubscriptions.encode(s).finish());
        this.#subsVersion++;
        this.#notify();
        return;
      }
      case 'offer':
        await this.#answerOffer(msg.offer as v1.SyncOffer);
        return;
      case 'need':
        await this.#answerNeed(msg.need as v1.SyncNeed);
        return;
      case 'deltas': {
        const d = msg.deltas as v1.SyncDeltas;
        if (d.subscriptionsHash === '') {
          if (this.#lastReceivedDeltasHash === '')
            throw mergeError('MERGE_PROTOCOL', 'the first deltas of a session carry no hash');
          d.subscriptionsHash = this.#lastReceivedDeltasHash;
        } else {
          this.#lastReceivedDeltasHash = d.subscriptionsHash;
        }
        // Continue the trace of the write that produced these changes on the sending peer.
        const tp = msg.trace?.traceparent;
        const parent = tp
          ? extractTraceContext({
              traceparent: tp,
              ...(msg.trace?.tracestate ? { tracestate: msg.trace.tracestate } : {}),
            })
          : context.active();
        await withSpan(
          tracer,
          'sync apply',
          { kind: SpanKind.CONSUMER, attributes: { 'lattice.peer.remote': this.#remote } },
          parent,
          () => this.#apply(d),
        );
        return;
      }
      case 'ack': {
        const a = msg.ack as v1.SyncAck;
        this.#outstanding.delete(a.batch);
        for (const [key, vv] of this.#sentVersions.get(a.batch) ?? []) this.#learn(key, vv);
        this.#sentVersions.delete(a.batch);
        if (a.throughCommit > this.#ackedThrough) this.#ackedThrough = a.throughCommit;
        this.#notify();
        return;
      }
      default:
        throw mergeError('MERGE_PROTOCOL', 'sync message without a body');
    }
  }

  async #answerOffer(offer: v1.SyncOffer): Promise<void> {
    const store = this.#host.store;
    const byCollection = new Map<string, number[]>();
    offer.entries.forEach((e, i) => {
      const list = byCollection.get(e.collection ?? '') ?? [];
      list.push(i);
      byCollection.set(e.collection ?? '', list);
    });
    const entries: v1.ISyncNeedEntry[] = offer.entries.map(() => ({ wanted: false }));
    for (const [collection, idx] of byCollection) {
      const ids = idx.map((i) => decodeDocId((offer.entries[i] as v1.SyncOfferEntry).docId));
      const have = new Map(
        store.get(collection, ids).map((d) => [Buffer.from(d.idBytes).toString('latin1'), d]),
      );
      idx.forEach((i, k) => {
        const e = offer.entries[i] as v1.SyncOfferEntry;
        if (!this.#mayWrite(collection, ids[k] as DocId)) {
          return; // not wanted: the remote may not write it (see #apply)
        }
        const local = have.get(Buffer.from(e.docId).toString('latin1'));
        if (!local) {
          entries[i] = { wanted: !e.tombstone };
          return;
        }
        const wanted = e.versionVector.some(
          (v) => (v.counter ?? 0) > (local.versionVector.get(v.peer as PeerId) ?? -1),
        );
        entries[i] = { wanted, versionVector: vvEntries(local.versionVector) };
      });
    }
    await this.#send({ need: { batch: offer.batch, entries } });
  }

  async #answerNeed(need: v1.SyncNeed): Promise<void> {
    const out = this.#outstanding.get(need.batch);
    if (!out || out.state !== 'offered')
      throw mergeError('MERGE_PROTOCOL', `need for unknown batch ${need.batch}`);
    if (need.entries.length !== out.entries.length) {
      throw mergeError(
        'MERGE_PROTOCOL',
        `need answers ${need.entries.length} of ${out.entries.length} offered entries`,
      );
    }
    out.entries.forEach((e, i) => {
      const n = need.entries[i];
      const vv: VersionVector = new Map(
        (n?.versionVector ?? []).map((v) => [v.peer as PeerId, v.counter ?? 0]),
      );
      out.wanted[i] = n?.wanted === true;
      out.since[i] = vv;
      if (vv.size > 0) this.#learn(e.key, vv);
    });
    out.state = 'ready';
    await this.#flushReady();
  }

  /** Sends the deltas of every ready batch, in batch order, up to the first still offered. */
  async #flushReady(): Promise<void> {
    for (const out of this.#outstanding.values()) {
      if (out.state === 'sent') continue;
      if (out.state === 'offered') return;
      out.state = 'sent';
      const deltas: v1.ISyncDelta[] = [];
      const versions: [string, VersionVector][] = [];
      // The documents as they are now, not as offered: one may have changed since (a deletion
      // the remote was offered as a tombstone it did not want, not having the document yet, must
      // reach it). Unless nothing was committed since the batch was read.
      const held = out.readAt === this.#host.store.lastSeq ? out.held : undefined;
      out.held = undefined;
      const picked = out.entries.map((e, i) => ({ e, i })).filter(({ i }) => out.wanted[i]);
      for (const [collection, list] of groupBy(picked, ({ e }) => e.collection)) {
        let stored: ReadonlyMap<string, StoredDocument> | undefined;
        if (!held) {
          stored = new Map(
            this.#host.store
              .get(
                collection,
                list.map(({ e }) => decodeDocId(e.idBytes)),
              )
              .map((d) => [keyOf(collection, d.idBytes), d] as const),
          );
        }
        for (const { e, i } of list) {
          const s = held ? held[i] : stored?.get(e.key);
          if (!s) continue; // evicted since it was offered
          const since = out.since[i];
          if (since === undefined || since.size === 0) {
            // The delta against nothing is the full state, whose canonical encoding is what the
            // store holds: send it as is instead of decoding and encoding it again.
            deltas.push({ collection, delta: s.state });
            // The read's own vector (nothing changes it): recorded as known once acknowledged.
            versions.push([e.key, s.versionVector]);
            continue;
          }
          const doc = loadDocument(s.id, s);
          deltas.push({ collection, delta: encodeDelta(doc.delta(since)) });
          versions.push([e.key, new Map(doc.versionVector)]);
        }
      }
      this.#sentVersions.set(out.batch, versions);
      this.#docsSent += deltas.length;
      const send = (): Promise<void> =>
        this.#send({
          ...(out.trace ? { trace: { ...out.trace } } : {}),
          deltas: {
            batch: out.batch,
            deltas,
            throughCommit: out.through,
            subscriptionsHash: out.subsHash,
          },
        });
      if (out.trace === undefined) {
        await send();
      } else {
        // Sending continues the write's trace, so the hop to the multiplexer (and on) is in it.
        const trace = out.trace;
        const parent = extractTraceContext({
          traceparent: trace.traceparent,
          ...(trace.tracestate ? { tracestate: trace.tracestate } : {}),
        });
        await withSpan(
          tracer,
          'sync send',
          { kind: SpanKind.PRODUCER, attributes: { 'lattice.peer.remote': this.#remote } },
          parent,
          send,
        );
      }
    }
  }

  /** Records that the remote holds at least `vv` of a document. */
  #learn(key: string, vv: VersionVector): void {
    const have = this.#known.get(key);
    // `vv` is the caller's to give (never changed afterwards): kept as it is when nothing was
    // known; a known vector is replaced, never changed (a batch may hold it as its `since`).
    let merged = vv;
    if (have !== undefined) {
      const m = new Map(have);
      for (const [p, t] of vv) if ((m.get(p) ?? -1) < t) m.set(p, t);
      merged = m;
      this.#known.delete(key); // re-insert: the map's order is its age
    }
    this.#known.set(key, merged);
    if (this.#known.size > KNOWN_LIMIT) {
      const oldest = this.#known.keys().next().value;
      if (oldest !== undefined) this.#known.delete(oldest);
    }
  }

  async #apply(d: v1.SyncDeltas): Promise<void> {
    const store = this.#host.store;
    // The checkpoint only moves forward under one subscription set; another set starts over.
    const before = readCheckpoint(store, this.#remote);
    const advanced =
      before.hash === d.subscriptionsHash
        ? Math.max(before.through, d.throughCommit)
        : d.throughCommit;
    const checkpoint = v1.SyncCheckpoint.encode({
      throughCommit: advanced,
      subscriptionsHash: d.subscriptionsHash,
    }).finish();
    for (let attempt = 0; ; attempt++) {
      const writes: CommitWrite[] = [];
      const expect: Expectation[] = [];
      const byCollection = groupBy(d.deltas, (x) => x.collection ?? '');
      for (const [collection, list] of byCollection) {
        const decoded: { delta: DocDelta; bytes: Uint8Array }[] = [];
        for (const x of list) {
          try {
            const bytes = x.delta ?? new Uint8Array(0);
            decoded.push({ delta: decodeDelta(bytes), bytes });
          } catch (err) {
            this.#refuse('undecodable delta', collection, err);
          }
        }
        // A full state (a delta against nothing) comes for a document the sender knows we lack
        // (our hello or our need said so): the first attempt does not read it, and its commit
        // expects it absent (seq 0). One that arrived meanwhile (from another peer) fails the
        // commit with STORE_CONFLICT; every later attempt, and this session's later batches,
        // read everything.
        const blind = attempt === 0 && this.#blindFullStates;
        const toRead = blind ? decoded.filter((x) => x.delta.since.size > 0) : decoded;
        const stored = new Map(
          (toRead.length === 0
            ? []
            : store.get(
                collection,
                toRead.map((x) => x.delta.id),
              )
          ).map((s) => [keyOf(collection, s.idBytes), s] as const),
        );
        const docs = new Map<
          string,
          {
            doc: CrdtDocument;
            stored: StoredDocument | undefined;
            changed: boolean;
            /** The encoding of `doc` when it is exactly one full state received (see below). */
            state: Uint8Array | undefined;
          }
        >();
        for (const { delta, bytes } of decoded) {
          // The new document's canonical key doubles as the batch's key (`keyOf` of its id
          // bytes): one encoding of the id instead of two.
          const empty = CrdtDocument.create(delta.id);
          const key = keyPrefix(collection) + empty.key;
          let entry = docs.get(key);
          const fresh = entry === undefined;
          if (!entry) {
            const s = stored.get(key);
            entry = {
              doc: s ? loadDocument(delta.id, s) : empty,
              stored: s,
              changed: false,
              state: undefined,
            };
            docs.set(key, entry);
          }
          if (!this.#mayWrite(collection, delta.id)) {
            // Pushed without an offer, or relayed: the remote may not write this document.
            this.#refuse(
              'document the remote may not write',
              collection,
              mergeError('MERGE_PERMISSION_DENIED', 'not permitted'),
            );
            continue;
          }
          if (!entry.stored && delta.since.size > 0 && !entry.changed) {
            // A delta against versions we do not hold (we evicted the document meanwhile):
            // merging it would make a partial document. Refuse it; the rescan our resent
            // subscriptions trigger brings the document whole.
            this.#refuse(
              'partial delta for a missing document',
              collection,
              mergeError('MERGE_PROTOCOL', 'partial delta'),
            );
            continue;
          }
          try {
            const r = entry.doc.merge(delta, { clock: this.#host.clock });
            if (r.changed) entry.changed = true;
            // A new document made of one full state is that state, and the bytes it came in are
            // its canonical encoding (the decoder accepts nothing else): store a copy of them
            // (not a view of the channel's buffer) instead of encoding the document again.
            entry.state =
              fresh && !entry.stored && delta.since.size === 0 && r.changed
                ? bytes.slice()
                : undefined;
            // The remote holds at least what it just sent us: no need to offer it back.
            this.#learn(key, delta.versionVector);
          } catch (err) {
            this.#refuse('delta refused', collection, err);
          }
        }
        for (const entry of docs.values()) {
          if (!entry.changed) continue;
          writes.push(persistDocument(collection, entry.doc, this.#host.now(), entry.state));
          expect.push({ collection, id: entry.doc.id as DocId, seq: entry.stored?.seq ?? 0 });
        }
      }
      try {
        const trace = activeTrace();
        await store.commit({
          writes,
          expect,
          checkpoints: { [this.#remote]: checkpoint },
          meta: { [HLC_META_KEY]: encodeClockMeta(this.#host.clock) },
          ...(trace ? { trace } : {}),
        });
        this.#docsReceived += writes.length;
        break;
      } catch (err) {
        if (!hasCode(err, 'STORE_CONFLICT') || attempt >= 16) throw err;
        if (attempt === 0) this.#blindFullStates = false;
      }
    }
    if (d.subscriptionsHash === this.#host.subscriptions().hash) this.#receivedThrough = advanced;
    await this.#send({ ack: { batch: d.batch, throughCommit: d.throughCommit } });
  }

  #refuse(what: string, collection: string, err: unknown): void {
    this.#docsRefused++;
    this.#host.warn(`sync: ${what}`, {
      remote: this.#remote,
      collection,
      code: (err as { code?: string }).code ?? String(err),
    });
  }

  // --- sending ---------------------------------------------------------------------------------

  async #pumpWhenReady(): Promise<void> {
    while (!this.#closed && (this.#resumeFrom === undefined || this.#subsVersion === 0))
      await this.#sleep();
    if (this.#closed) return;
    let cursor = this.#resumeFrom ?? 0;
    // Resuming (cursor > 0) means the receiver's checkpoint was made under the subscriptions it
    // just sent: tail the change log from there instead of scanning.
    let scannedVersion = cursor > 0 ? this.#subsVersion : -1;
    let advertised = cursor;
    const store = this.#host.store;
    while (!this.#closed) {
      // Scan when the subscriptions are new (or changed), and when the change log no longer
      // reaches back to the cursor; otherwise tail the log.
      if (this.#subsVersion !== scannedVersion || cursor + 1 < store.oldestLogSeq) {
        scannedVersion = this.#subsVersion;
        const through = store.lastSeq;
        await this.#scan(cursor, through);
        cursor = through;
        advertised = through;
        continue;
      }
      const page = store.changes(cursor, { limit: this.#batchSize });
      if (page.commits.length === 0) {
        if (advertised < cursor) {
          // Nothing matched since the last batch: still let the receiver's checkpoint advance.
          await this.#offer([], cursor, advertised);
          advertised = cursor;
        }
        if (this.#outstanding.size === 0) this.#state = 'idle';
        await this.#sleep();
        continue;
      }
      this.#state = 'syncing';
      // Group whole commits until a batch is full, so the receiver's checkpoint advances commit
      // by commit instead of once per page.
      const candidates = new Map<string, { collection: string; idBytes: Uint8Array }>();
      let trace: TraceParent | undefined;
      let through = cursor;
      const flush = async (): Promise<void> => {
        const entries = this.#matching([...candidates.values()]);
        candidates.clear();
        if (entries.length > 0) {
          // The batch continues the trace of the newest write in it that had one.
          await this.#offer(entries, through, advertised, trace);
          advertised = through;
        }
        trace = undefined;
      };
      for (const c of page.commits) {
        for (const { collection, ids } of c.collections) {
          if (!this.#remoteSubs.some((s) => s.collection === collection)) continue;
          for (const idBytes of ids)
            candidates.set(keyOf(collection, idBytes), { collection, idBytes });
        }
        trace = c.trace ?? trace;
        through = c.seq;
        if (candidates.size >= this.#batchSize) await flush();
      }
      await flush();
      cursor = through;
    }
  }

  /** Offers every matching document and tombstone of the subscribed collections. */
  async #scan(cursor: number, through: number): Promise<void> {
    const collections = [...new Set(this.#remoteSubs.map((s) => s.collection))];
    // A page fills the window (what may be in flight anyway): one read of the store per window
    // instead of per batch. A store's range read can cost more than its page (an iterator's
    // setup, or the whole rest of the range in the memory engine).
    const pageSize = Math.min(this.#batchSize * this.#window, MAX_SCAN_PAGE);
    for (const collection of collections) {
      let after: Uint8Array | undefined;
      for (;;) {
        if (this.#closed) return;
        const page = this.#host.store.records(collection, {
          ...(after ? { after } : {}),
          limit: pageSize,
        });
        if (page.length === 0) break;
        after = page.at(-1)?.idBytes;
        // The page's records are what is offered: no second read of the same documents.
        // A remote that held nothing of the collection gets them whole, without offers (and
        // no tombstones: it never had those documents).
        const empty = this.#remoteEmpty.has(collection);
        const entries = page.filter((r) => this.#wants(r) && !(empty && r.tombstone));
        if (entries.length > 0) await this.#offer(entries, cursor, cursor, undefined, empty);
        if (page.length < pageSize) break;
      }
    }
    // Whatever the remote holds now came from this scan or from elsewhere: offers again.
    this.#remoteEmpty.clear();
    await this.#offer([], through, cursor);
  }

  /** Whether the remote may read the document `id` of `collection`. */
  #mayRead(collection: string, id: DocId): boolean {
    return this.#permissions === undefined || permits(this.#permissions.read, collection, id);
  }

  /** Whether the remote may write (create, change, delete) the document `id` of `collection`. */
  #mayWrite(collection: string, id: DocId): boolean {
    return this.#permissions === undefined || permits(this.#permissions.write, collection, id);
  }

  #wants(r: StoredDocument): boolean {
    if (!this.#mayRead(r.collection, r.id)) return false;
    // A subscription without WHERE takes every document of its collection: no need to decode
    // the value to know (the store decodes it on first read).
    if (this.#remoteSubs.some((s) => s.collection === r.collection && s.where === undefined))
      return true;
    if (r.tombstone || !r.value) return this.#remoteSubs.some((s) => s.collection === r.collection);
    return this.#remoteSubs.some(
      (s) => s.collection === r.collection && s.matches(r.value as Record<string, JsonValue>),
    );
  }

  /** The stored documents among `candidates` that match the remote's subscriptions. */
  #matching(candidates: { collection: string; idBytes: Uint8Array }[]): StoredDocument[] {
    const out: StoredDocument[] = [];
    for (const [collection, list] of groupBy(candidates, (c) => c.collection)) {
      const stored = this.#host.store.get(
        collection,
        list.map((c) => decodeDocId(c.idBytes)),
      );
      for (const s of stored) if (this.#wants(s)) out.push(s);
    }
    return out;
  }

  /**
   * Offers the stored documents `stored` (just read) in batches (waiting for room in the
   * window). The last batch carries `through`, earlier ones `floor` (they do not cover `through`
   * yet). An empty offer still goes through need and deltas, so the receiver's checkpoint never
   * overtakes an earlier batch.
   */
  async #offer(
    stored: readonly StoredDocument[],
    through: number,
    floor: number,
    trace?: TraceParent,
    remoteEmpty = false,
  ): Promise<void> {
    // Documents the remote is known to hold go as deltas right away (or not at all when it has
    // everything); the others are offered first.
    const readAt = this.#host.store.lastSeq;
    const offers: { doc: StoredDocument; key: string }[] = [];
    const pushes: { doc: StoredDocument; key: string; since: VersionVector }[] = [];
    for (const d of stored) {
      const key = keyOf(d.collection, d.idBytes);
      const known = this.#known.get(key) ?? (remoteEmpty ? NOTHING : undefined);
      if (!known) offers.push({ doc: d, key });
      else if (!covers(known, d.versionVector)) pushes.push({ doc: d, key, since: known });
    }
    const batches: {
      kind: 'offer' | 'push';
      items: { doc: StoredDocument; key: string }[];
      since: VersionVector[];
    }[] = [];
    for (let i = 0; i < offers.length; i += this.#batchSize) {
      batches.push({ kind: 'offer', items: offers.slice(i, i + this.#batchSize), since: [] });
    }
    for (let i = 0; i < pushes.length; i += this.#batchSize) {
      const chunk = pushes.slice(i, i + this.#batchSize);
      batches.push({ kind: 'push', items: chunk, since: chunk.map((p) => p.since) });
    }
    // An empty batch still goes out: it lets the receiver's checkpoint advance, in order.
    if (batches.length === 0) batches.push({ kind: 'push', items: [], since: [] });
    for (const [n, b] of batches.entries()) {
      while (!this.#closed && this.#outstanding.size >= this.#window) await this.#sleep();
      if (this.#closed) return;
      const batch = ++this.#batch;
      const last = n === batches.length - 1;
      const out: Outstanding = {
        batch,
        entries: b.items.map(({ doc, key }) => ({
          collection: doc.collection,
          idBytes: doc.idBytes,
          key,
        })),
        held: b.items.map((i) => i.doc),
        readAt,
        through: last ? through : floor,
        subsHash: this.#remoteSubsHash,
        trace,
        state: b.kind === 'offer' ? 'offered' : 'ready',
        since: b.kind === 'offer' ? [] : b.since,
        wanted: b.items.map(() => b.kind === 'push'),
      };
      this.#outstanding.set(batch, out);
      if (b.kind === 'offer') {
        await this.#send({
          offer: {
            batch,
            entries: b.items.map(({ doc: d }) => ({
              collection: d.collection,
              docId: d.idBytes,
              versionVector: vvEntries(d.versionVector),
              tombstone: d.tombstone,
            })),
          },
        });
      } else {
        await this.#flushReady();
      }
    }
  }
}

const KNOWN_LIMIT = 100_000;

/** Most documents one scan reads at once (the store's own cap on a page of records). */
const MAX_SCAN_PAGE = 10_000;

/** The version vector of a document the remote does not hold. */
const NOTHING: VersionVector = new Map();

/** Empty collections a hello may name (more are ignored: they go through offers). */
const MAX_EMPTY_COLLECTIONS = 1_000;

/** Whether `a` holds everything `b` does. */
function covers(a: VersionVector, b: VersionVector): boolean {
  for (const [p, t] of b) if ((a.get(p) ?? -1) < t) return false;
  return true;
}

/**
 * A document's key in the session's maps: its collection and canonical id bytes (as latin1, which
 * is also `CrdtDocument.key`).
 */
function keyOf(collection: string, idBytes: Uint8Array): string {
  // `fromCharCode` over the bytes skips the Buffer a `toString` needs (ids are short; a long one
  // goes through a Buffer, not a huge argument list).
  return (
    keyPrefix(collection) +
    (idBytes.length <= 256
      ? String.fromCharCode.apply(null, idBytes as unknown as number[])
      : Buffer.from(idBytes.buffer, idBytes.byteOffset, idBytes.byteLength).toString('latin1'))
  );
}

function keyPrefix(collection: string): string {
  return collection + '\u0000';
}

function vvEntries(vv: VersionVector): v1.IVersionEntry[] {
  return [...vv].map(([peer, counter]) => ({ peer, counter }));
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
