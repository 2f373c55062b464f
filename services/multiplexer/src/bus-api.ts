/**
 * The multiplexer's message API on the bus, so a merge service in another process syncs through
 * it: {@link serveMultiplexerMessages} on the multiplexer's side, {@link MultiplexerClient} on the
 * merge service's side. Both sides see a {@link MultiplexerPort}, the part of the multiplexer a
 * sync needs, so the merge service's code is the same in one process and across the bus.
 *
 * @remarks
 * Subjects (messages of `lattice/v1/mux.proto`):
 * - `multiplexer.req.send` (`MuxSendRequest` → `MuxSendReply`): answered once the multiplexer
 *   queued the message; while a peer's send buffer is full the answer waits, which is the
 *   backpressure. The client sends one request at a time per peer, so messages keep their order.
 * - `multiplexer.evt.inbound` (`MuxInbound`): every message received and every peer event, in
 *   order, numbered per run of the multiplexer (`instance`, `seq`). Core NATS delivers in order but
 *   drops for a slow subscriber or across a reconnect: the client sees the gap in `seq` and resets
 *   the sessions of every connected peer (the sync protocol then starts over from its durable
 *   checkpoints). An empty item is published every `heartbeatMs`, so a loss is noticed even when
 *   nothing follows it. A new `instance` means the multiplexer restarted and every session with
 *   it ended.
 * - `multiplexer.req.peers` (`MuxPeersRequest` → `MuxPeers`): the connected peers and the `seq`
 *   they are current at, for a client that starts (or restarts) while the multiplexer runs. The
 *   snapshot has the peers but not the messages before it, so a client that has read the feed
 *   from its first item (it started first) replays the items instead.
 *
 * Messages travel whole on the bus, so the NATS server must accept payloads as large as the
 * largest sync message (the configurations in `deploy/nats` allow 8 MB).
 */
import { randomBytes } from 'node:crypto';
import { serve, type Bus, type Server } from '@lattice/bus';
import { v1, type Subjects } from '@lattice/proto';
import { muxError } from './errors.js';
import type { InboundMessage, MultiplexerEvent } from './multiplexer.js';
import type { PeerId } from './session.js';

/** What a sync needs of a multiplexer: implemented by `Multiplexer` and {@link MultiplexerClient}. */
export interface MultiplexerPort {
  readonly peerId: PeerId;
  /** Queues a message for a peer; resolves when queued (waits while the peer's buffer is full). */
  send(
    peerId: PeerId | string,
    data: Uint8Array,
    options?: { readonly stream?: number; readonly signal?: AbortSignal },
  ): Promise<void>;
  /** Peer and link events; returns an unsubscribe function. */
  on(listener: (event: MultiplexerEvent) => void): () => void;
  /** Every message received, synchronously and in order per peer and stream. */
  onMessage(listener: (message: InboundMessage) => void): () => void;
  /**
   * The peers with a session, whether a link reaches them now, and what they may read and write
   * (undefined: everything; see `LinkInfo.permissions`).
   */
  peers(): readonly {
    readonly peerId: PeerId;
    readonly connected: boolean;
    readonly permissions?: v1.IPermissions | undefined;
  }[];
}

/** Items held while waiting for a peers snapshot; beyond this the sessions start over. */
const MAX_HELD_ITEMS = 10_000;

/** Largest message carried on the bus by default (NATS servers in `deploy/nats` allow 8 MB). */
export const DEFAULT_BUS_MESSAGE_BYTES = 8 * 1024 * 1024;

const PEER_EVENT_TYPES = {
  'peer-up': v1.MuxPeerEventType.MUX_PEER_EVENT_TYPE_UP,
  'peer-down': v1.MuxPeerEventType.MUX_PEER_EVENT_TYPE_DOWN,
  'session-reset': v1.MuxPeerEventType.MUX_PEER_EVENT_TYPE_RESET,
} as const;

/**
 * Serves a multiplexer's messages on the bus (see the module comment).
 * @returns a function that stops serving.
 */
export function serveMultiplexerMessages(
  bus: Bus,
  subjects: Subjects,
  mux: MultiplexerPort,
  options: { readonly maxMessageBytes?: number; readonly heartbeatMs?: number } = {},
): { stop(): Promise<void> } {
  const instance = new Uint8Array(randomBytes(8));
  const inboundSubject = subjects.event('multiplexer', 'inbound');
  let seq = 0;
  const publish = (item: v1.IMuxInbound): void => {
    seq += 1;
    const bytes = v1.MuxInbound.encode({
      ...item,
      instance,
      seq,
      localPeerId: mux.peerId,
    }).finish();
    try {
      bus.publish(inboundSubject, bytes);
    } catch {
      // A closed bus or an oversized message: the item is lost, the reader sees the gap.
    }
  };
  const offMessages = mux.onMessage((m) =>
    publish({ message: { peerId: m.peerId, stream: m.stream, data: m.data } }),
  );
  const offEvents = mux.on((event) => {
    if (event.type === 'peer-up' || event.type === 'peer-down' || event.type === 'session-reset') {
      const permissions = event.type === 'peer-down' ? undefined : event.permissions;
      publish({
        event: {
          peerId: event.peerId,
          type: PEER_EVENT_TYPES[event.type],
          ...(permissions === undefined ? {} : { permissions }),
        },
      });
    }
  });
  const heartbeat = setInterval(() => publish({}), options.heartbeatMs ?? 2_000);
  heartbeat.unref();
  const servers: Server[] = [
    serve(
      bus,
      subjects.request('multiplexer', 'send'),
      async (request, { signal }) => {
        const req = decode(v1.MuxSendRequest, request.data);
        await mux.send(req.peerId, req.data, { stream: req.stream, signal });
        return v1.MuxSendReply.encode({}).finish();
      },
      {
        service: 'multiplexer',
        queue: 'multiplexer',
        maxRequestBytes: (options.maxMessageBytes ?? DEFAULT_BUS_MESSAGE_BYTES) + 1024,
        // One request in flight per client and peer: this bounds the peers served at once.
        maxConcurrent: 1024,
      },
    ),
    serve(
      bus,
      subjects.request('multiplexer', 'peers'),
      (request) => {
        decode(v1.MuxPeersRequest, request.data);
        const connected = mux.peers().filter((p) => p.connected);
        return v1.MuxPeers.encode({
          instance,
          seq,
          localPeerId: mux.peerId,
          connected: connected.map((p) => p.peerId),
          restricted: connected.flatMap((p) =>
            p.permissions === undefined ? [] : [{ peerId: p.peerId, permissions: p.permissions }],
          ),
        }).finish();
      },
      { service: 'multiplexer', queue: 'multiplexer' },
    ),
  ];
  return {
    async stop() {
      clearInterval(heartbeat);
      offMessages();
      offEvents();
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** Options of {@link MultiplexerClient}. */
export interface MultiplexerClientOptions {
  readonly bus: Bus;
  readonly subjects: Subjects;
  /** This peer's id: the multiplexer on the bus must have the same identity. */
  readonly peerId: PeerId | string;
  /** Deadline of one send request, queueing included (default 60 000 ms). */
  readonly sendTimeoutMs?: number;
  /** Longest wait between attempts to reach the multiplexer (default 5 000 ms). */
  readonly maxRetryMs?: number;
  /** Told about conditions that stop the sync (another identity on the bus, a feed gap). */
  readonly onProblem?: (message: string, details: Record<string, unknown>) => void;
}

/** Counters of a {@link MultiplexerClient}. */
export interface MultiplexerClientCounters {
  /** Feed items missed (seq gaps): each reset the sessions of the connected peers. */
  missedItems: number;
  /** Multiplexer restarts seen. */
  instances: number;
  /** Items refused because the multiplexer has another identity. */
  foreignItems: number;
}

/**
 * A {@link MultiplexerPort} over the bus, for a merge service whose multiplexer runs in another
 * process. Peer events are replayed from the feed; a gap in it, or a restart of the multiplexer,
 * shows up as `session-reset` or `peer-down` events so sessions start over.
 */
export class MultiplexerClient implements MultiplexerPort {
  readonly peerId: PeerId;
  readonly counters: MultiplexerClientCounters = { missedItems: 0, instances: 0, foreignItems: 0 };
  readonly #bus: Bus;
  readonly #subjects: Subjects;
  readonly #options: MultiplexerClientOptions;
  readonly #listeners = new Set<(event: MultiplexerEvent) => void>();
  readonly #messageListeners = new Set<(message: InboundMessage) => void>();
  /** Connected peers and their permissions (undefined: everything). */
  readonly #connected = new Map<PeerId, v1.IPermissions | undefined>();
  readonly #sendChains = new Map<PeerId, Promise<unknown>>();
  readonly #subscription;
  readonly #stop = new AbortController();
  #instance: string | undefined;
  #seq = 0;
  #refreshing = false;
  /** Items held while a peers snapshot is awaited (after joining a run of the multiplexer late). */
  #held: v1.MuxInbound[] | undefined = [];
  #heldOverflow = false;

  constructor(options: MultiplexerClientOptions) {
    this.#options = options;
    this.#bus = options.bus;
    this.#subjects = options.subjects;
    this.peerId = options.peerId as PeerId;
    this.#subscription = this.#bus.subscribe(this.#subjects.event('multiplexer', 'inbound'), {
      maxPending: 100_000,
    });
    void this.#read();
    void this.#refresh();
  }

  on(listener: (event: MultiplexerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onMessage(listener: (message: InboundMessage) => void): () => void {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  peers(): {
    readonly peerId: PeerId;
    readonly connected: boolean;
    readonly permissions?: v1.IPermissions | undefined;
  }[] {
    return [...this.#connected].map(([peerId, permissions]) => ({
      peerId,
      connected: true,
      ...(permissions === undefined ? {} : { permissions }),
    }));
  }

  /** Sends one message; messages to one peer go one after another, in call order. */
  send(
    peerId: PeerId | string,
    data: Uint8Array,
    options: { readonly stream?: number; readonly signal?: AbortSignal } = {},
  ): Promise<void> {
    const peer = peerId as PeerId;
    const previous = this.#sendChains.get(peer) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        if (this.#stop.signal.aborted) throw muxError('MUX_CLOSED', 'the client is closed');
        await this.#bus.request(
          this.#subjects.request('multiplexer', 'send'),
          v1.MuxSendRequest.encode({ peerId: peer, stream: options.stream ?? 2, data }).finish(),
          {
            timeoutMs: this.#options.sendTimeoutMs ?? 60_000,
            ...(options.signal ? { signal: options.signal } : {}),
          },
        );
      });
    this.#sendChains.set(peer, next);
    void next.then(
      () => this.#forget(peer, next),
      () => this.#forget(peer, next),
    );
    return next;
  }

  /** Stops reading the feed; pending sends fail. */
  close(): void {
    this.#stop.abort();
    this.#subscription.unsubscribe();
  }

  #forget(peer: PeerId, chain: Promise<unknown>): void {
    if (this.#sendChains.get(peer) === chain) this.#sendChains.delete(peer);
  }

  async #read(): Promise<void> {
    for await (const m of this.#subscription) {
      let item: v1.MuxInbound;
      try {
        item = v1.MuxInbound.decode(m.data);
      } catch {
        continue;
      }
      this.#apply(item);
    }
  }

  /** Whether a multiplexer with another identity answered (counted, told once, ignored). */
  #foreign(multiplexerPeerId: string): boolean {
    if (multiplexerPeerId === this.peerId) return false;
    this.counters.foreignItems += 1;
    if (this.counters.foreignItems === 1) {
      this.#options.onProblem?.('the multiplexer on the bus has another peer id: not syncing', {
        multiplexer: multiplexerPeerId,
        merge: this.peerId,
      });
    }
    return true;
  }

  #apply(item: v1.MuxInbound): void {
    if (this.#foreign(item.localPeerId)) return;
    if (this.#held !== undefined) {
      if (this.#held.length < MAX_HELD_ITEMS) this.#held.push(item);
      else this.#heldOverflow = true;
      return;
    }
    const instance = Buffer.from(item.instance).toString('hex');
    const seq = Number(item.seq);
    if (instance !== this.#instance) {
      this.#newInstance(instance);
      if (seq !== 1) {
        // Joined this run late: what came before is in the peers snapshot, so wait for it.
        this.#held = [item];
        void this.#refresh();
        return;
      }
    } else if (seq <= this.#seq) {
      return; // Already covered by a peers snapshot.
    } else if (seq > this.#seq + 1) {
      this.counters.missedItems += seq - this.#seq - 1;
      this.#options.onProblem?.('missed multiplexer feed items: restarting sessions', {
        missed: seq - this.#seq - 1,
      });
      for (const [peerId, permissions] of this.#connected) {
        this.#emit({ type: 'session-reset', peerId, permissions });
      }
    }
    this.#seq = seq;
    if (item.message) {
      const message: InboundMessage = {
        peerId: (item.message.peerId ?? '') as PeerId,
        stream: item.message.stream ?? 0,
        data: item.message.data ?? new Uint8Array(0),
      };
      for (const l of this.#messageListeners) l(message);
    } else if (item.event) {
      const peerId = item.event.peerId as PeerId;
      const permissions = item.event.permissions ?? undefined;
      switch (item.event.type) {
        case v1.MuxPeerEventType.MUX_PEER_EVENT_TYPE_UP:
          this.#connected.set(peerId, permissions);
          this.#emit({ type: 'peer-up', peerId, permissions });
          break;
        case v1.MuxPeerEventType.MUX_PEER_EVENT_TYPE_DOWN:
          this.#connected.delete(peerId);
          this.#emit({ type: 'peer-down', peerId });
          break;
        case v1.MuxPeerEventType.MUX_PEER_EVENT_TYPE_RESET:
          if (this.#connected.has(peerId)) this.#connected.set(peerId, permissions);
          this.#emit({ type: 'session-reset', peerId, permissions });
          break;
        default:
          break;
      }
    }
  }

  /** A new multiplexer run: every session with the old one ended. */
  #newInstance(instance: string): void {
    if (this.#instance !== undefined) this.counters.instances += 1;
    this.#instance = instance;
    this.#seq = 0;
    for (const peerId of [...this.#connected.keys()]) {
      this.#connected.delete(peerId);
      this.#emit({ type: 'peer-down', peerId });
    }
  }

  /** Asks the multiplexer for its connected peers until it answers. */
  async #refresh(): Promise<void> {
    if (this.#refreshing) return;
    this.#refreshing = true;
    let delay = 100;
    try {
      while (!this.#stop.signal.aborted) {
        try {
          const reply = await this.#bus.request(
            this.#subjects.request('multiplexer', 'peers'),
            v1.MuxPeersRequest.encode({}).finish(),
            { timeoutMs: 2_000, signal: this.#stop.signal },
          );
          this.#adopt(v1.MuxPeers.decode(reply.data));
          return;
        } catch {
          await new Promise((r) => setTimeout(r, delay).unref());
          delay = Math.min(delay * 2, this.#options.maxRetryMs ?? 5_000);
        }
      }
    } finally {
      this.#refreshing = false;
    }
  }

  #adopt(snapshot: v1.MuxPeers): void {
    if (this.#foreign(snapshot.localPeerId)) {
      this.#held = undefined;
      return;
    }
    const held = this.#held;
    const overflow = this.#heldOverflow;
    this.#held = undefined;
    this.#heldOverflow = false;
    const instance = Buffer.from(snapshot.instance).toString('hex');
    const seq = Number(snapshot.seq);
    if (held === undefined && instance === this.#instance && seq <= this.#seq) return; // Stale.
    const first = held?.[0];
    if (
      !overflow &&
      first !== undefined &&
      Number(first.seq) === 1 &&
      Buffer.from(first.instance).toString('hex') === instance
    ) {
      // This client has read the multiplexer's feed from its first item: the items themselves
      // say more than the snapshot (which has the peers, but not the messages before it, such as
      // a remote's hello).
      for (const item of held ?? []) this.#apply(item);
      return;
    }
    if (instance !== this.#instance) this.#newInstance(instance);
    this.#seq = seq;
    const restricted = new Map(
      snapshot.restricted.map((r) => [r.peerId as PeerId, r.permissions ?? undefined] as const),
    );
    const connected = new Set(snapshot.connected as PeerId[]);
    for (const peerId of [...this.#connected.keys()]) {
      if (!connected.has(peerId)) {
        this.#connected.delete(peerId);
        this.#emit({ type: 'peer-down', peerId });
      }
    }
    for (const peerId of connected) {
      const permissions = restricted.get(peerId);
      if (!this.#connected.has(peerId)) {
        this.#connected.set(peerId, permissions);
        this.#emit({ type: 'peer-up', peerId, permissions });
      } else if (overflow) {
        this.#connected.set(peerId, permissions);
        this.#emit({ type: 'session-reset', peerId, permissions });
      }
    }
    // Items the snapshot already covers are skipped by their seq.
    for (const item of held ?? []) this.#apply(item);
  }

  #emit(event: MultiplexerEvent): void {
    for (const l of this.#listeners) l(event);
  }
}

function decode<T>(type: { decode(b: Uint8Array): T }, data: Uint8Array): T {
  try {
    return type.decode(data);
  } catch (err) {
    throw muxError('MUX_BAD_REQUEST', 'malformed request', {}, err);
  }
}
