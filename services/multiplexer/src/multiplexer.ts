/**
 * The multiplexer: links from any number of drivers, grouped by the authenticated remote peer,
 * each peer one {@link PeerSession} of reliable ordered streams; the API the merge service uses.
 *
 * @remarks
 * A link goes through three states: handshaking (only HELLO/AUTH/REFUSE frames; others are
 * dropped and counted), authenticated (attached to its peer's session), or refused (a link to
 * ourselves, a bad signature, a timeout: the driver is asked to close it). A peer's session
 * outlives its links for `peerLingerMs`, so a link that comes back resumes the streams where they
 * were and nothing is delivered twice; after that the session and everything it buffered are
 * dropped, and the next handshake tells the peer to start over (a new session id).
 */
import { randomBytes } from 'node:crypto';
import { v1 } from '@lattice/proto';
import { SystemClock, type Clock, type Timer } from './clock.js';
import { muxError, type MuxError } from './errors.js';
import {
  ControlType,
  decodeFrame,
  MAX_FRAME_BYTES,
  MAX_WINDOW_BYTES,
  MIN_FRAME_BYTES,
  type DecodeOptions,
} from './frame-codec.js';
import { LinkHandshake, type Identity, type RemoteHello } from './handshake.js';
import { peekRevocations, verifyRevocations, type Revocations } from './certificate.js';
import type { LinkDriver, LinkEvent, LinkId, LinkInfo } from './link-driver.js';
import type { ReassemblyBudget } from './receive-stream.js';
import {
  DEFAULT_SESSION_OPTIONS,
  PeerSession,
  type LinkMetrics,
  type PeerId,
  type PeerMetrics,
  type SessionLinkPort,
  type SessionOptions,
} from './session.js';
import type { MultiplexerPort } from './bus-api.js';

/** Stream numbers by purpose: lower is more urgent. */
export const Priority = {
  /** Small control messages: overtake everything but the multiplexers' own stream. */
  CONTROL: 1,
  /** Sync protocol messages. */
  SYNC: 2,
  /** Bulk transfers (attachments, initial sync). */
  BULK: 6,
} as const;

/**
 * The stream two multiplexers keep for themselves (`MuxControl`: revocation lists), with peers
 * whose hello says so (`MuxHello.control_stream`); applications send on the others.
 */
export const MUX_CONTROL_STREAM = 0;

/** Most revocation lists one `MuxControl` message is read for (one per authority). */
const MAX_CONTROL_LISTS = 16;

/** Options of {@link Multiplexer}. */
export interface MultiplexerOptions {
  readonly identity: Identity;
  readonly clock?: Clock;
  readonly session?: Partial<SessionOptions>;
  /** Give up a handshake after this long (default 10 000 ms). */
  readonly handshakeTimeoutMs?: number;
  /** Re-send handshake messages this often until done (default 500 ms). */
  readonly handshakeRetryMs?: number;
  /** Keep a peer's session this long after its last link went down (default 60 000 ms). */
  readonly peerLingerMs?: number;
  /** Most peers at once (default 1 024). */
  readonly maxPeers?: number;
  /** Out-of-order bytes buffered over all peers (default 64 MiB). */
  readonly maxBufferedBytes?: number;
  /** Streams with out-of-order data over all peers (default 1 024). */
  readonly maxReassemblies?: number;
  /**
   * The mesh's shared key (at least {@link MIN_MESH_KEY_BYTES} bytes): links to peers that do
   * not prove they hold it are refused (`MUX_NOT_IN_MESH`), except links whose transport
   * authenticated the remote itself (`LinkInfo.principal`). Without it, any peer may join.
   */
  readonly meshKey?: Uint8Array | undefined;
  /**
   * Authorities whose identity certificates admit a peer (raw ed25519 public keys): a peer with a
   * valid certificate gets a link, under the certificate's permissions, until it expires; with
   * authorities set, a peer without one (or without the mesh key, when there is one too) is
   * refused. See `certificate.ts`.
   */
  readonly authorities?: readonly Uint8Array[] | undefined;
  /** This peer's own certificate (an encoded `IdentityCertificate`), shown on every link. */
  readonly certificate?: Uint8Array | undefined;
  /** Unix ms, for certificate expiry (default `Date.now`). */
  readonly wallClock?: () => number;
}

/** Shortest mesh key accepted (128 bits). */
export const MIN_MESH_KEY_BYTES = 16;

/** A message from a remote peer. */
export interface InboundMessage {
  readonly peerId: PeerId;
  readonly stream: number;
  readonly data: Uint8Array;
}

/** What happens to peers and links, as a discriminated union. */
export type MultiplexerEvent =
  | {
      readonly type: 'peer-up';
      readonly peerId: PeerId;
      /** What the peer may read and write (see `LinkInfo.permissions`); undefined: everything. */
      readonly permissions?: v1.IPermissions | undefined;
    }
  | { readonly type: 'peer-down'; readonly peerId: PeerId }
  | { readonly type: 'link-up'; readonly peerId: PeerId; readonly link: LinkInfo }
  | { readonly type: 'link-down'; readonly peerId: PeerId | undefined; readonly linkId: LinkId }
  | {
      readonly type: 'link-refused';
      readonly linkId: LinkId;
      readonly error: MuxError;
      readonly local: boolean;
    }
  | {
      readonly type: 'session-reset';
      readonly peerId: PeerId;
      readonly permissions?: v1.IPermissions | undefined;
    }
  /**
   * A revocation list later than the one held of its authority was adopted (see
   * {@link Multiplexer.adoptRevocations}); `bytes` is the signed list, to keep.
   */
  | {
      readonly type: 'revocations-adopted';
      readonly revocations: Revocations;
      readonly bytes: Uint8Array;
      /** The peer it came from; undefined: given locally. */
      readonly from: PeerId | undefined;
    };

/** Counters of the multiplexer as a whole. */
export interface MultiplexerCounters {
  malformedFrames: number;
  unauthenticatedFrames: number;
  handshakesFailed: number;
  sessionResets: number;
  /** Revocation lists from peers that did not verify here (another authority, bad signature). */
  revocationsRefused: number;
  /** `MuxControl` messages that did not decode. */
  malformedControl: number;
}

/** One peer as {@link Multiplexer.peers} reports it. */
export interface PeerReport {
  readonly peerId: PeerId;
  readonly connected: boolean;
  /** What the peer may read and write (see `LinkInfo.permissions`); undefined: everything. */
  readonly permissions?: v1.IPermissions;
  readonly metrics: Readonly<PeerMetrics>;
  readonly links: readonly (Readonly<LinkMetrics> & {
    readonly linkId: LinkId;
    readonly transport: string;
  })[];
}

interface LinkState {
  readonly key: LinkId;
  readonly driver: LinkDriver;
  /** The links of the same driver by the driver's link id (a frame's lookup builds no key). */
  readonly siblings: Map<LinkId, LinkState>;
  readonly decodeOptions: DecodeOptions;
  readonly info: LinkInfo;
  readonly crc: boolean;
  readonly handshake: LinkHandshake;
  readonly control: Uint8Array[];
  writable: boolean;
  peer: PeerEntry | undefined;
  refused: boolean;
  retry: Timer | undefined;
  deadline: Timer | undefined;
  /** Closes the link when the certificate that admitted its peer expires. */
  expiry: Timer | undefined;
}

interface PeerEntry {
  readonly peerId: PeerId;
  /** From the link that authenticated the peer first (all its links must agree). */
  permissions: v1.IPermissions | undefined;
  session: PeerSession;
  readonly localSessionId: Uint8Array;
  remoteSessionId: Uint8Array | undefined;
  /** Whether the remote takes `MuxControl` on {@link MUX_CONTROL_STREAM} (its hello says). */
  controlStream: boolean;
  readonly links: Set<LinkState>;
  linger: Timer | undefined;
}

/** See the module comment. */
export class Multiplexer implements MultiplexerPort {
  readonly identity: Identity;
  readonly clock: Clock;
  readonly counters: MultiplexerCounters = {
    malformedFrames: 0,
    unauthenticatedFrames: 0,
    handshakesFailed: 0,
    sessionResets: 0,
    revocationsRefused: 0,
    malformedControl: 0,
  };
  readonly #options: Required<
    Omit<
      MultiplexerOptions,
      'identity' | 'clock' | 'session' | 'meshKey' | 'authorities' | 'certificate' | 'wallClock'
    >
  >;
  readonly #session: SessionOptions;
  readonly #meshKey: Uint8Array | undefined;
  readonly #authorities: readonly Uint8Array[];
  #certificate: Uint8Array | undefined;
  readonly #wallClock: () => number;
  /** Peers a trusted authority revoked: refused, whatever they show. */
  #revoked: ReadonlySet<string> = new Set();
  /** The latest revocation list held of each trusted authority (by its key in hex). */
  readonly #revocationLists = new Map<
    string,
    { readonly bytes: Uint8Array; readonly list: Revocations }
  >();
  readonly #budget: ReassemblyBudget;
  readonly #links = new Map<LinkId, LinkState>();
  readonly #peers = new Map<PeerId, PeerEntry>();
  readonly #drivers = new Map<LinkDriver, { index: number; stop: () => void }>();
  readonly #listeners = new Set<(event: MultiplexerEvent) => void>();
  readonly #messageListeners = new Set<(message: InboundMessage) => void>();
  readonly #inbox: { message: InboundMessage; endOffset: number }[] = [];
  readonly #inboxWaiters: (() => void)[] = [];
  #driverSeq = 0;
  #closed = false;

  constructor(options: MultiplexerOptions) {
    if (options.meshKey !== undefined && options.meshKey.length < MIN_MESH_KEY_BYTES) {
      throw new RangeError(`a mesh key has at least ${MIN_MESH_KEY_BYTES} bytes`);
    }
    this.#meshKey = options.meshKey;
    this.#authorities = options.authorities ?? [];
    this.#certificate = options.certificate;
    this.#wallClock = options.wallClock ?? Date.now;
    this.identity = options.identity;
    this.clock = options.clock ?? new SystemClock();
    this.#session = { ...DEFAULT_SESSION_OPTIONS, ...options.session };
    if (this.#session.receiveWindowBytes > MAX_WINDOW_BYTES) {
      throw new RangeError(`receiveWindowBytes must be ≤ ${MAX_WINDOW_BYTES}`);
    }
    if (this.#session.maxMessageBytes + 8 > this.#session.receiveWindowBytes) {
      throw new RangeError(
        'maxMessageBytes must leave room in receiveWindowBytes (a message is delivered whole)',
      );
    }
    this.#options = {
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      handshakeRetryMs: options.handshakeRetryMs ?? 500,
      peerLingerMs: options.peerLingerMs ?? 60_000,
      maxPeers: options.maxPeers ?? 1024,
      maxBufferedBytes: options.maxBufferedBytes ?? 64 * 2 ** 20,
      maxReassemblies: options.maxReassemblies ?? 1024,
    };
    this.#budget = {
      bufferedBytes: 0,
      maxBufferedBytes: this.#options.maxBufferedBytes,
      reassemblies: 0,
      maxReassemblies: this.#options.maxReassemblies,
    };
  }

  /** Our own peer id. */
  get peerId(): PeerId {
    return this.identity.peerId;
  }

  /** Starts using a driver's links; returns a function that stops (its links go away). */
  attach(driver: LinkDriver): () => void {
    if (this.#closed) throw muxError('MUX_CLOSED', 'multiplexer closed');
    const index = this.#driverSeq++;
    const links = new Map<LinkId, LinkState>();
    const stop = driver.listen((event) => this.#onLinkEvent(driver, index, links, event));
    this.#drivers.set(driver, { index, stop });
    return () => {
      stop();
      this.#drivers.delete(driver);
      for (const link of [...this.#links.values()])
        if (link.driver === driver) this.#linkDown(link);
    };
  }

  /** Subscribes to peer and link events; returns the unsubscribe function. */
  on(listener: (event: MultiplexerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Receives every message synchronously as it is delivered (messages are then taken at once for
   * flow control). While a listener is set, {@link messages} gets nothing.
   */
  onMessage(listener: (message: InboundMessage) => void): () => void {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  /**
   * Messages from every peer, in order per peer and stream, each once. A slow reader holds back
   * the senders (their window stays shut while messages wait here).
   */
  async *messages(signal?: AbortSignal): AsyncGenerator<InboundMessage> {
    while (!this.#closed) {
      const next = this.#inbox.shift();
      if (next !== undefined) {
        this.#peers.get(next.message.peerId)?.session.consume(next.message.stream, next.endOffset);
        yield next.message;
        continue;
      }
      if (signal?.aborted === true) {
        throw muxError('MUX_CANCELLED', 'receive cancelled', {}, signal.reason);
      }
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.#inboxWaiters.indexOf(wake);
          if (i >= 0) this.#inboxWaiters.splice(i, 1);
          reject(muxError('MUX_CANCELLED', 'receive cancelled', {}, signal?.reason));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#inboxWaiters.push(wake);
      });
    }
  }

  /**
   * Sends a message to a peer on a stream (default {@link Priority.SYNC}); resolves when queued,
   * waiting while the peer's send buffer is full.
   * @throws MuxError MUX_PEER_UNREACHABLE (no session with the peer), MUX_MESSAGE_TOO_LARGE,
   *   MUX_CANCELLED, MUX_CLOSED.
   */
  async send(
    peerId: PeerId | string,
    data: Uint8Array,
    options: { readonly stream?: number; readonly signal?: AbortSignal } = {},
  ): Promise<void> {
    if (options.stream === MUX_CONTROL_STREAM) {
      throw muxError('MUX_BAD_REQUEST', `stream ${MUX_CONTROL_STREAM} is the multiplexer's own`, {
        stream: String(MUX_CONTROL_STREAM),
      });
    }
    const peer = this.#peers.get(peerId as PeerId);
    if (peer === undefined) {
      throw muxError('MUX_PEER_UNREACHABLE', `no link reaches peer ${peerId}`, { peerId });
    }
    await peer.session.send(data, options.stream ?? Priority.SYNC, options.signal);
  }

  /** Peers with a session (connected, or lingering after their last link). */
  peers(): PeerReport[] {
    return [...this.#peers.values()].map((p) => ({
      peerId: p.peerId,
      connected: p.links.size > 0,
      ...(p.permissions === undefined ? {} : { permissions: p.permissions }),
      metrics: { ...p.session.metrics },
      links: [...p.session.linkMetrics()].map(([linkId, m]) => ({
        ...m,
        linkId: (this.#links.get(linkId)?.info.id ?? linkId) as LinkId,
      })),
    }));
  }

  /** The presence report for the gateway's mesh graph. */
  presence(): v1.MuxPresence {
    return v1.MuxPresence.create({
      peerId: this.peerId,
      peers: this.peers().map((p) => ({
        peerId: p.peerId,
        payloadBytesSent: p.metrics.payloadBytesSent,
        payloadBytesReceived: p.metrics.payloadBytesReceived,
        messagesSent: p.metrics.messagesSent,
        messagesReceived: p.metrics.messagesReceived,
        links: p.links.map((l) => ({
          linkId: l.linkId,
          transport: l.transport,
          rttUs: Math.round(l.srttMs * 1000),
          bytesSent: l.bytesSent,
          bytesReceived: l.bytesReceived,
          framesSent: l.framesSent,
          framesReceived: l.framesReceived,
          retransmittedBytes: l.retransmittedBytes,
          goodputBytesPerS: Math.round(l.goodputBytesPerS),
        })),
      })),
    });
  }

  /** State held, for leak checks. */
  footprint(): {
    links: number;
    peers: number;
    bufferedBytes: number;
    reassemblies: number;
    segments: number;
    inbox: number;
  } {
    let segments = 0;
    for (const p of this.#peers.values()) segments += p.session.footprint.segments;
    return {
      links: this.#links.size,
      peers: this.#peers.size,
      bufferedBytes: this.#budget.bufferedBytes,
      reassemblies: this.#budget.reassemblies,
      segments,
      inbox: this.#inbox.length,
    };
  }

  /** The session with a peer (tests and metrics). */
  session(peerId: PeerId | string): PeerSession | undefined {
    return this.#peers.get(peerId as PeerId)?.session;
  }

  /** Stops: every session closes, drivers are released (not closed: the caller owns them). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const { stop } of this.#drivers.values()) stop();
    this.#drivers.clear();
    for (const link of this.#links.values()) this.#clearLinkTimers(link);
    this.#links.clear();
    for (const p of this.#peers.values()) {
      p.linger?.cancel();
      p.session.close();
    }
    this.#peers.clear();
    for (const w of this.#inboxWaiters.splice(0)) w();
  }

  // ——— links ———

  #onLinkEvent(
    driver: LinkDriver,
    index: number,
    links: Map<LinkId, LinkState>,
    event: LinkEvent,
  ): void {
    if (this.#closed) return;
    if (event.type === 'up') {
      this.#linkUp(driver, index, links, event.link);
      return;
    }
    const link = links.get(event.linkId);
    if (link === undefined) return;
    if (event.type === 'frame') this.#onFrame(link, event.data);
    else if (event.type === 'down') this.#linkDown(link);
    else this.#onWritable(link);
  }

  #linkUp(
    driver: LinkDriver,
    index: number,
    siblings: Map<LinkId, LinkState>,
    info: LinkInfo,
  ): void {
    const key = `${index}/${info.id}` as LinkId;
    if (this.#links.has(key)) return;
    const maxFrame = info.capabilities.maxFrameBytes;
    const crc = !info.capabilities.checksummed;
    if (maxFrame < MIN_FRAME_BYTES || maxFrame > MAX_FRAME_BYTES) {
      driver.closeLink(info.id, 'MUX_FRAME_TOO_LARGE', `unsupported max frame size ${maxFrame}`);
      return;
    }
    const link: LinkState = {
      key,
      driver,
      siblings,
      decodeOptions: { requireCrc: crc, maxFrameBytes: maxFrame },
      info,
      crc,
      control: [],
      writable: true,
      peer: undefined,
      refused: false,
      retry: undefined,
      deadline: undefined,
      expiry: undefined,
      handshake: new LinkHandshake({
        identity: this.identity,
        maxFrameBytes: maxFrame,
        crc,
        receiveWindowBytes: this.#session.receiveWindowBytes,
        maxMessageBytes: this.#session.maxMessageBytes,
        meshKey: this.#meshKey,
        authorities: this.#authorities,
        certificate: this.#certificate,
        wallClock: this.#wallClock,
        requireMembership:
          (this.#meshKey !== undefined || this.#authorities.length > 0) && !info.principal,
        hooks: {
          send: (frame) => this.#sendControl(link, frame),
          sessionIdFor: (peerId) => this.#sessionIdFor(peerId),
          done: (remote) => this.#authenticated(link, remote),
          failed: (error, local) => this.#refused(link, error, local),
        },
      }),
    };
    this.#links.set(key, link);
    siblings.set(info.id, link);
    link.deadline = this.clock.setTimer(this.#options.handshakeTimeoutMs, () => {
      link.deadline = undefined;
      if (link.peer === undefined && !link.refused) {
        link.handshake.refuse(
          muxError('MUX_HANDSHAKE_TIMEOUT', 'handshake did not finish', { linkId: info.id }),
        );
      }
    });
    const retry = (): void => {
      link.retry = undefined;
      if (link.refused || !this.#links.has(key)) return;
      link.handshake.kick();
      if (!link.handshake.isDone)
        link.retry = this.clock.setTimer(this.#options.handshakeRetryMs, retry);
    };
    retry();
  }

  #linkDown(link: LinkState): void {
    if (!this.#links.delete(link.key)) return;
    if (link.siblings.get(link.info.id) === link) link.siblings.delete(link.info.id);
    this.#clearLinkTimers(link);
    const peer = link.peer;
    this.#emit({ type: 'link-down', peerId: peer?.peerId, linkId: link.info.id });
    if (peer === undefined) return;
    peer.links.delete(link);
    peer.session.removeLink(link.key);
    if (peer.links.size === 0) {
      this.#emit({ type: 'peer-down', peerId: peer.peerId });
      peer.linger = this.clock.setTimer(this.#options.peerLingerMs, () => {
        peer.linger = undefined;
        if (peer.links.size > 0) return;
        peer.session.close();
        this.#peers.delete(peer.peerId);
        this.#purgeInbox(peer.peerId);
      });
    }
  }

  #clearLinkTimers(link: LinkState): void {
    link.retry?.cancel();
    link.deadline?.cancel();
    link.retry = link.deadline = undefined;
    link.expiry?.cancel();
    link.expiry = undefined;
    link.control.length = 0;
  }

  #onWritable(link: LinkState): void {
    link.writable = true;
    this.#flushControl(link);
    if (link.writable && link.peer !== undefined) link.peer.session.onWritable(link.key);
  }

  #sendControl(link: LinkState, frame: Uint8Array): void {
    if (link.control.length >= 64) return; // the handshake re-sends; never grow without bound
    link.control.push(frame);
    this.#flushControl(link);
  }

  #flushControl(link: LinkState): void {
    while (link.writable && link.control.length > 0) {
      if (!this.#links.has(link.key)) return;
      if (!link.driver.send(link.info.id, link.control[0] as Uint8Array)) {
        link.writable = false;
        return;
      }
      link.control.shift();
    }
  }

  #onFrame(link: LinkState, data: Uint8Array): void {
    let frame;
    try {
      frame = decodeFrame(data, link.decodeOptions);
    } catch {
      // A bad frame is counted and dropped: the sender re-sends what mattered.
      this.counters.malformedFrames++;
      return;
    }
    if (
      frame.kind === 'control' &&
      (frame.type === ControlType.HELLO ||
        frame.type === ControlType.AUTH ||
        frame.type === ControlType.REFUSE)
    ) {
      if (link.refused) return;
      try {
        link.handshake.onControl(frame.type, frame.body);
      } catch {
        // Undecodable handshake chunks (or protobuf) are counted; the handshake times out.
        this.counters.malformedFrames++;
      }
      return;
    }
    if (link.peer === undefined) {
      this.counters.unauthenticatedFrames++;
      return;
    }
    link.peer.session.onFrame(link.key, frame, data.length);
  }

  #sessionIdFor(peerId: PeerId): Uint8Array {
    return this.#peers.get(peerId)?.localSessionId ?? this.#pendingSessionId(peerId);
  }

  readonly #pendingIds = new Map<PeerId, Uint8Array>();

  #pendingSessionId(peerId: PeerId): Uint8Array {
    // A peer without a session yet: the id is fixed now so every link's AUTH names the same one.
    let id = this.#pendingIds.get(peerId);
    if (id === undefined) {
      // Bounded: forgetting an id costs at most one needless session reset with that peer.
      if (this.#pendingIds.size >= this.#options.maxPeers) this.#pendingIds.clear();
      id = new Uint8Array(randomBytes(16));
      this.#pendingIds.set(peerId, id);
    }
    return id;
  }

  /**
   * Shows `certificate` on the links authenticated from now on (a renewed certificate, before
   * the current one expires); links already up keep going until the old one expires.
   */
  setCertificate(certificate: Uint8Array | undefined): void {
    this.#certificate = certificate;
  }

  /**
   * Adopts a revocation list (an encoded `SignedRevocations`) signed by a trusted authority when
   * it is later than the list held of that authority: the peers on it are refused from then on,
   * the links of those connected are closed (`MUX_PEER_REVOKED`), and the list goes on to every
   * peer whose multiplexer takes control messages (`MuxControl`), which does the same — so a
   * revocation given to one peer crosses the mesh hop by hop, through peers that trust the
   * authority. A list no later than the one held changes nothing and is not verified again.
   * @param from the peer the list came from (it is not sent back); undefined: given locally.
   * @returns the list when it was adopted, undefined when it was not later.
   * @throws MuxError MUX_CERTIFICATE_INVALID when it does not verify here.
   */
  adoptRevocations(bytes: Uint8Array, from?: PeerId): Revocations | undefined {
    const claimed = peekRevocations(bytes);
    const held = claimed && this.#revocationLists.get(claimed.authority);
    if (claimed && held && held.list.issuedAtMs >= claimed.issuedAtMs) return undefined;
    const list = verifyRevocations(bytes, this.#authorities);
    const mine = this.#revocationLists.get(list.authority);
    if (mine !== undefined && mine.list.issuedAtMs >= list.issuedAtMs) return undefined;
    const kept = bytes.slice();
    this.#revocationLists.set(list.authority, { bytes: kept, list });
    this.#revoked = new Set([...this.#revocationLists.values()].flatMap((l) => l.list.peerIds));
    for (const link of [...this.#links.values()]) {
      const peerId = link.peer?.peerId;
      if (peerId === undefined || !this.#revoked.has(peerId)) continue;
      const error = muxError('MUX_PEER_REVOKED', `${peerId} was revoked by its authority`, {
        peerId,
      });
      this.#emit({ type: 'link-refused', linkId: link.info.id, error, local: true });
      link.driver.closeLink(link.info.id, error.code, error.message);
    }
    this.#emit({ type: 'revocations-adopted', revocations: list, bytes: kept, from });
    const control = v1.MuxControl.encode({ revocations: [kept] }).finish();
    for (const peer of this.#peers.values()) {
      if (peer.peerId !== from && !this.#revoked.has(peer.peerId))
        this.#sendPeerControl(peer, control);
    }
    return list;
  }

  /** How many peers the revocation lists held revoke. */
  get revokedPeers(): number {
    return this.#revoked.size;
  }

  /** The revocation lists held, one per authority (encoded `SignedRevocations`). */
  revocationLists(): Uint8Array[] {
    return [...this.#revocationLists.values()].map((l) => l.bytes);
  }

  /** Sends a `MuxControl` to `peer` when its multiplexer takes them (best effort). */
  #sendPeerControl(peer: PeerEntry, control: Uint8Array): void {
    if (!peer.controlStream) return;
    // The session retransmits until the peer has it; a closed session drops it, and the next
    // one starts with every list held (see #attach).
    peer.session.send(control, MUX_CONTROL_STREAM).catch(() => undefined);
  }

  /** A `MuxControl` from `peerId`: adopts what is later than held (see adoptRevocations). */
  #onControl(peerId: PeerId, data: Uint8Array): void {
    let control: v1.MuxControl;
    try {
      control = v1.MuxControl.decode(data);
    } catch {
      this.counters.malformedControl++;
      return;
    }
    for (const bytes of control.revocations.slice(0, MAX_CONTROL_LISTS)) {
      try {
        this.adoptRevocations(bytes, peerId);
      } catch {
        this.counters.revocationsRefused++;
      }
    }
  }

  #authenticated(link: LinkState, remote: RemoteHello): void {
    if (!this.#links.has(link.key)) return;
    link.retry?.cancel();
    link.deadline?.cancel();
    link.retry = link.deadline = undefined;
    if (this.#revoked.has(remote.peerId)) {
      link.handshake.refuse(
        muxError('MUX_PEER_REVOKED', `${remote.peerId} was revoked by its authority`, {
          peerId: remote.peerId,
        }),
      );
      return;
    }
    // The transport's word on the remote first (an app's key), else its certificate's.
    const permissions = link.info.principal
      ? link.info.permissions
      : (link.info.permissions ?? remote.certified?.permissions);
    const certified = remote.certified;
    if (certified !== undefined) {
      link.expiry = this.clock.setTimer(certified.notAfterMs - this.#wallClock(), () => {
        link.expiry = undefined;
        const error = muxError(
          'MUX_CERTIFICATE_EXPIRED',
          `the identity certificate of ${remote.peerId} expired`,
          { peerId: remote.peerId },
        );
        this.#emit({ type: 'link-refused', linkId: link.info.id, error, local: true });
        link.driver.closeLink(link.info.id, error.code, error.message);
      });
    }
    let peer = this.#peers.get(remote.peerId);
    let stale: LinkState[] = [];
    const samePermissions =
      peer === undefined || keyOfPermissions(peer.permissions) === keyOfPermissions(permissions);
    let permissionsChanged = false;
    /** Whether the peer's session starts here (it then gets every revocation list held). */
    let fresh = false;
    if (
      peer !== undefined &&
      peer.links.size > 0 &&
      sameBytes(peer.remoteSessionId, remote.sessionId) &&
      !samePermissions
    ) {
      // One peer, one set of permissions: a second link may not claim others while the first
      // is up (a restricted app may not widen its rights over another transport).
      link.handshake.refuse(
        muxError(
          'MUX_PERMISSIONS_MISMATCH',
          'the peer is already connected with other permissions on another link',
          { peerId: remote.peerId },
        ),
      );
      return;
    }
    if (peer === undefined) {
      if (this.#peers.size >= this.#options.maxPeers) {
        link.handshake.refuse(
          muxError('MUX_TOO_MANY_PEERS', 'too many peers', { peerId: remote.peerId }),
        );
        return;
      }
      const localSessionId = this.#pendingSessionId(remote.peerId);
      this.#pendingIds.delete(remote.peerId);
      fresh = true;
      peer = {
        peerId: remote.peerId,
        permissions: permissions,
        session: this.#newSession(remote),
        localSessionId,
        remoteSessionId: remote.sessionId,
        controlStream: remote.controlStream,
        links: new Set(),
        linger: undefined,
      };
      this.#peers.set(remote.peerId, peer);
    } else if (!sameBytes(peer.remoteSessionId, remote.sessionId)) {
      // The other side started over: so do we. Links authenticated by its previous run lead to
      // no one now (a restarted multiplexer does not know them): they are closed below, so their
      // transports reconnect and the new run authenticates them again.
      this.counters.sessionResets++;
      peer.session.close();
      this.#purgeInbox(peer.peerId);
      peer.session = this.#newSession(remote);
      fresh = true;
      peer.remoteSessionId = remote.sessionId;
      peer.controlStream = remote.controlStream;
      stale = [...peer.links];
      peer.links.clear();
      for (const l of stale) l.peer = undefined;
      peer.permissions = permissions;
      this.#emit({ type: 'session-reset', peerId: peer.peerId, permissions: peer.permissions });
    } else if (!samePermissions) {
      // Back while its session lingered, under other permissions (the app's key changed): the
      // streams go on, but sync sessions start over under the new permissions.
      peer.permissions = permissions;
      permissionsChanged = true;
    }
    peer.linger?.cancel();
    peer.linger = undefined;
    const first = peer.links.size === 0;
    link.peer = peer;
    peer.links.add(link);
    if (first && stale.length === 0) {
      this.#emit({ type: 'peer-up', peerId: peer.peerId, permissions: peer.permissions });
    }
    if (permissionsChanged) {
      this.#emit({ type: 'session-reset', peerId: peer.peerId, permissions: peer.permissions });
    }
    this.#emit({ type: 'link-up', peerId: peer.peerId, link: link.info });
    peer.session.addLink(this.#port(link));
    if (fresh && this.#revocationLists.size > 0) {
      this.#sendPeerControl(
        peer,
        v1.MuxControl.encode({ revocations: this.revocationLists() }).finish(),
      );
    }
    for (const l of stale) {
      l.driver.closeLink(l.info.id, 'MUX_SESSION_RESET', 'the peer started over on another link');
    }
  }

  #newSession(remote: RemoteHello): PeerSession {
    const peerId = remote.peerId;
    const session: PeerSession = new PeerSession({
      peerId,
      clock: this.clock,
      options: this.#session,
      remoteWindowBytes: Math.min(remote.receiveWindowBytes, MAX_WINDOW_BYTES),
      globalBudget: this.#budget,
      hooks: {
        deliver: (m) => {
          if (m.stream === MUX_CONTROL_STREAM && remote.controlStream) {
            session.consume(m.stream, m.endOffset);
            this.#onControl(peerId, m.data);
            return;
          }
          const message: InboundMessage = { peerId, stream: m.stream, data: m.data };
          if (this.#messageListeners.size > 0) {
            session.consume(m.stream, m.endOffset);
            for (const l of [...this.#messageListeners]) l(message);
            return;
          }
          this.#inbox.push({ message, endOffset: m.endOffset });
          for (const w of this.#inboxWaiters.splice(0)) w();
        },
        protocolError: () => {
          // The peer broke the stream format: start over with it (both sides reset).
          const peer = this.#peers.get(peerId);
          if (peer === undefined || peer.session !== session) return;
          this.counters.sessionResets++;
          for (const l of [...peer.links]) {
            l.driver.closeLink(l.info.id, 'MUX_FRAME_MALFORMED', 'peer broke the stream format');
          }
        },
      },
    });
    return session;
  }

  #port(link: LinkState): SessionLinkPort {
    const caps = link.info.capabilities;
    return {
      id: link.key,
      transport: link.info.transport,
      maxFrameBytes: caps.maxFrameBytes,
      crc: link.crc,
      ordered: caps.ordered,
      bandwidthBytesPerS: caps.bandwidthBytesPerS,
      latencyMs: caps.latencyMs,
      send: (frame) => {
        if (link.control.length > 0 || !link.writable) {
          this.#flushControl(link);
          if (link.control.length > 0) return false;
        }
        if (!this.#links.has(link.key)) return false;
        const ok = link.driver.send(link.info.id, frame);
        if (!ok) link.writable = false;
        return ok;
      },
    };
  }

  #refused(link: LinkState, error: MuxError, local: boolean): void {
    if (link.refused) return;
    link.refused = true;
    this.counters.handshakesFailed++;
    link.retry?.cancel();
    link.deadline?.cancel();
    link.retry = link.deadline = undefined;
    this.#emit({ type: 'link-refused', linkId: link.info.id, error, local });
    if (link.peer !== undefined) this.#linkDown(link);
    // Let the REFUSE leave before the transport closes the link.
    this.clock.setTimer(0, () => link.driver.closeLink(link.info.id, error.code, error.message));
  }

  #purgeInbox(peerId: PeerId): void {
    for (let i = this.#inbox.length - 1; i >= 0; i--) {
      if (this.#inbox[i]?.message.peerId === peerId) this.#inbox.splice(i, 1);
    }
  }

  #emit(event: MultiplexerEvent): void {
    for (const l of [...this.#listeners]) l(event);
  }
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Compares permissions by their encoding ('' for none: a trusted mesh member). */
function keyOfPermissions(p: v1.IPermissions | undefined): string {
  return p === undefined ? '' : Buffer.from(v1.Permissions.encode(p).finish()).toString('base64');
}
