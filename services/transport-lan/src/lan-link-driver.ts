/**
 * The LAN link driver: one link per TCP (or TLS) connection, listener and dialer, framed by
 * `lan-codec.ts`.
 *
 * @remarks
 * Life of a connection: both ends send HELLO (instance id, max frame size) at once; when the
 * remote HELLO arrives the link comes up with `maxFrameBytes = min(ours, theirs)`. Then DATA
 * records carry multiplexer frames, PING records keep an idle connection alive, and a BYE says
 * why an end closes. Invariants:
 *
 * - **Dead links**: a connection on which nothing (not even a PING, sent every `keepaliveMs`
 *   of silence) arrived for `idleTimeoutMs` is dropped with `LAN_IDLE_TIMEOUT`, also in the
 *   middle of a record; a HELLO must arrive within the same time (`LAN_HELLO_TIMEOUT`).
 * - **Bad bytes**: a decoder error (garbage, oversized length prefix) drops that connection with
 *   the decoder's typed code; the driver and other links carry on.
 * - **Connection cap**: at `maxConnections` connections (handshaking or up), an accepted socket
 *   gets a BYE `LAN_CONNECTION_LIMIT` and is closed, and no dial starts.
 * - **One link per remote driver**: when a HELLO names an instance that already has a link, both
 *   ends keep the connection dialed by the smaller instance id (if both were dialed by the same
 *   side, the newer one), so a simultaneous dial ends in exactly one link on both sides. The
 *   end that dialed the loser may report it up briefly before the BYE `LAN_DUPLICATE_LINK`.
 * - **Backpressure**: `send` takes a frame while the socket's write buffer is under
 *   `highWaterMark` bytes; once over, it refuses frames until the buffer drains, then emits
 *   `writable`. Outgoing records of small frames are copied into a 1 MiB slab per connection and
 *   what a tick added is written as one buffer (the socket corked until the next tick), so a
 *   burst of frames costs one allocation per MiB and one syscall. Frames of 8 KiB or more are
 *   not copied: the link contract gives a frame to the driver once `send` took it (see
 *   `LinkDriver.send`), so the socket writes the caller's bytes after the header.
 * - **Receive**: a record inside one socket read is handed out as a view of it; one split across
 *   reads (every 64 KiB frame) is assembled in one buffer per connection, reused for the next, so
 *   a frame event's data is valid only during the event (as the link contract says).
 * - **Reconnect**: a static or discovered peer is redialed after its connection ends, with
 *   exponential backoff and jitter, reset by a successful HELLO; a peer whose instance already
 *   has a link (it dialed us) is not redialed until that link goes down.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import net from 'node:net';
import tls from 'node:tls';
import type { LatticeError } from '@lattice/errors';
import {
  asLinkId,
  muxError,
  type LinkCapabilities,
  type LinkDriver,
  type LinkEvent,
  type LinkId,
  type LinkInfo,
  type LinkListener,
} from '@lattice/multiplexer';
import { lanError } from './errors.js';
import {
  decodeBye,
  decodeHello,
  DEFAULT_MAX_FRAME_BYTES,
  encodeBye,
  encodeHello,
  encodeRecord,
  LAN_PROTOCOL_VERSION,
  RECORD_HEADER_BYTES,
  RecordDecoder,
  RecordType,
} from './lan-codec.js';

/** Default TCP port. */
export const DEFAULT_LAN_PORT = 4040;
/** Size of the slab outgoing records are copied into (one per connection at a time). */
const SLAB_BYTES = 1024 * 1024;
/**
 * Frames from this size on are handed to the socket as they are (the link contract gives the
 * driver the frame once `send` took it); smaller ones are copied into the slab, where a burst
 * costs one write instead of one per frame.
 */
const ZERO_COPY_BYTES = 8 * 1024;

/** Default cap on connections (as Ditto). */
export const DEFAULT_MAX_CONNECTIONS = 6;

/** A peer to dial, parsed from `tcp://host:port`. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `tcp://host:port` (IPv6 hosts in brackets: `tcp://[::1]:4040`).
 * @throws LanError LAN_BAD_ADDRESS otherwise.
 */
export function parsePeerAddress(text: string): PeerAddress {
  const m = /^tcp:\/\/(\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  const host = m?.[2] ?? m?.[3];
  const port = Number(m?.[4]);
  if (
    host === undefined ||
    !(port > 0 && port < 65_536) ||
    (m?.[2] !== undefined && isIP(host) !== 6)
  ) {
    throw lanError('LAN_BAD_ADDRESS', `peer address must be tcp://host:port, got ${text}`, {
      address: text,
    });
  }
  return { host, port };
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** TLS material (PEM). */
export interface LanTlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /**
   * Certificates to trust. When given, both ends must present a certificate it signed; when
   * absent, TLS encrypts but does not authenticate (the multiplexer handshake does).
   */
  readonly ca?: string | Buffer;
}

/** Reconnect backoff: `min(maxMs, initialMs · 2^attempt)`, less up to `jitter` of it at random. */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** 0..1: the fraction of the delay that is random (0.5 by default). */
  readonly jitter: number;
}

/** Settings of a {@link LanLinkDriver}. */
export interface LanLinkDriverOptions {
  /** 32 hex digits; random when absent. */
  readonly instanceId?: string;
  /** Port to listen on (default 4040; 0 picks a free one); `false` listens nowhere. */
  readonly port?: number | false;
  /** Address to bind (default `::`, which also takes IPv4 where the OS allows). */
  readonly host?: string;
  /** Peers to keep connected (`tcp://host:port`). */
  readonly peers?: readonly string[];
  readonly maxConnections?: number;
  readonly maxFrameBytes?: number;
  /** Send a PING after this long without sending (default 1 000 ms). */
  readonly keepaliveMs?: number;
  /** Drop a connection after this long without receiving (default 3 000 ms). */
  readonly idleTimeoutMs?: number;
  /** Bytes queued in a socket above which `send` refuses (default 256 KiB). */
  readonly highWaterMark?: number;
  readonly backoff?: Partial<BackoffOptions>;
  readonly tls?: LanTlsOptions;
  /** For jitter (tests pass a seeded one). */
  readonly random?: () => number;
}

/** Diagnostics of a {@link LanLinkDriver}, for logs and tests. */
export type LanDriverEvent =
  | {
      readonly type: 'connection-closed';
      readonly remoteAddress: string;
      readonly code: string;
      readonly reason: string;
      /** Whether the remote side said so (BYE) rather than we decided or the socket failed. */
      readonly byRemote: boolean;
      readonly linkId?: LinkId;
    }
  | {
      readonly type: 'dial-scheduled';
      readonly peer: string;
      readonly attempt: number;
      readonly delayMs: number;
    }
  | { readonly type: 'refused'; readonly remoteAddress: string; readonly code: string };

/** Counters of a {@link LanLinkDriver}. */
export interface LanDriverCounters {
  accepted: number;
  dialed: number;
  refused: number;
  duplicates: number;
  decodeErrors: number;
  idleTimeouts: number;
  framesSent: number;
  framesReceived: number;
  pingsSent: number;
}

interface Target {
  readonly key: string;
  readonly address: PeerAddress;
  readonly source: 'static' | 'discovered';
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  conn: Connection | undefined;
  instanceId: string | undefined;
}

interface Connection {
  readonly socket: net.Socket;
  readonly dialed: boolean;
  readonly target: Target | undefined;
  readonly remoteAddress: string;
  readonly decoder: RecordDecoder;
  readonly openedAt: number;
  state: 'hello' | 'up' | 'closed';
  remoteInstance: string | undefined;
  info: LinkInfo | undefined;
  received: boolean;
  sent: boolean;
  lastReceived: number;
  lastSent: number;
  corked: boolean;
  /** The batch being filled this tick, and how much of it is used. */
  batch: Buffer | undefined;
  batchStart: number;
  batchUsed: number;
  blocked: boolean;
  wantWritable: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** See the module comment. */
export class LanLinkDriver implements LinkDriver {
  readonly name = 'transport-lan';
  readonly instanceId: string;
  readonly counters: LanDriverCounters = {
    accepted: 0,
    dialed: 0,
    refused: 0,
    duplicates: 0,
    decodeErrors: 0,
    idleTimeouts: 0,
    framesSent: 0,
    framesReceived: 0,
    pingsSent: 0,
  };
  readonly #options: LanLinkDriverOptions;
  readonly #maxFrameBytes: number;
  readonly #maxConnections: number;
  readonly #keepaliveMs: number;
  readonly #idleTimeoutMs: number;
  readonly #highWaterMark: number;
  readonly #backoff: BackoffOptions;
  readonly #random: () => number;
  readonly #listeners = new Set<LinkListener>();
  /** The listener when there is exactly one (the usual case: no copy of the set per event). */
  #onlyListener: LinkListener | undefined;
  readonly #diagnostics = new Set<(event: LanDriverEvent) => void>();
  readonly #connections = new Set<Connection>();
  readonly #links = new Map<LinkId, Connection>();
  readonly #targets = new Map<string, Target>();
  readonly #closing = new Set<Promise<void>>();
  #server: net.Server | undefined;
  #nextLink = 0;
  #closed = false;

  private constructor(options: LanLinkDriverOptions) {
    this.#options = options;
    this.instanceId = options.instanceId ?? randomBytes(16).toString('hex');
    if (!/^[0-9a-f]{32}$/.test(this.instanceId))
      throw new RangeError('instanceId must be 32 lowercase hex digits');
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.#keepaliveMs = options.keepaliveMs ?? 1_000;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 3_000;
    this.#highWaterMark = options.highWaterMark ?? 256 * 1024;
    this.#backoff = {
      initialMs: options.backoff?.initialMs ?? 250,
      maxMs: options.backoff?.maxMs ?? 30_000,
      jitter: options.backoff?.jitter ?? 0.5,
    };
    this.#random = options.random ?? Math.random;
    if (!(this.#maxConnections >= 1)) throw new RangeError('maxConnections must be at least 1');
    if (!(this.#keepaliveMs < this.#idleTimeoutMs))
      throw new RangeError('keepaliveMs must be shorter than idleTimeoutMs');
  }

  /**
   * Starts a driver: binds the listener (unless `port: false`) and starts dialing the peers.
   * @throws LanError LAN_LISTEN_FAILED when the port cannot be bound; LAN_BAD_ADDRESS for a peer.
   */
  static async start(options: LanLinkDriverOptions = {}): Promise<LanLinkDriver> {
    const driver = new LanLinkDriver(options);
    const peers = (options.peers ?? []).map(parsePeerAddress);
    if (options.port !== false) await driver.#listen(options.port ?? DEFAULT_LAN_PORT);
    for (const p of peers) driver.addPeer(p, 'static');
    return driver;
  }

  /** The bound listener's port (undefined when not listening). */
  get port(): number | undefined {
    const a = this.#server?.address();
    return typeof a === 'object' && a !== null ? a.port : undefined;
  }

  /** Links currently up. */
  get links(): readonly LinkInfo[] {
    return [...this.#links.values()].flatMap((c) => (c.info === undefined ? [] : [c.info]));
  }

  /** Connections open (handshaking or up). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** The instance id of the remote driver of a link (undefined when the link is not up). */
  remoteInstanceOf(linkId: LinkId): string | undefined {
    return this.#links.get(linkId)?.remoteInstance;
  }

  /** Instance ids of the remote drivers with a link up. */
  get connectedInstances(): readonly string[] {
    return [...this.#links.values()].flatMap((c) =>
      c.remoteInstance === undefined ? [] : [c.remoteInstance],
    );
  }

  listen(listener: LinkListener): () => void {
    this.#listeners.add(listener);
    this.#onListenersChanged();
    for (const c of this.#links.values())
      if (c.info !== undefined) listener({ type: 'up', link: c.info });
    return () => {
      this.#listeners.delete(listener);
      this.#onListenersChanged();
    };
  }

  #onListenersChanged(): void {
    this.#onlyListener =
      this.#listeners.size === 1 ? this.#listeners.values().next().value : undefined;
  }

  /** Subscribes to diagnostics (connections closed and why, dials scheduled, refusals). */
  onDiagnostic(listener: (event: LanDriverEvent) => void): () => void {
    this.#diagnostics.add(listener);
    return () => this.#diagnostics.delete(listener);
  }

  send(linkId: LinkId, frame: Uint8Array): boolean {
    const c = this.#links.get(linkId);
    if (c === undefined || c.state !== 'up' || c.info === undefined) return false;
    if (frame.length > c.info.capabilities.maxFrameBytes) {
      throw muxError('MUX_FRAME_TOO_LARGE', `frame of ${frame.length} bytes on link ${linkId}`, {
        linkId,
        bytes: String(frame.length),
        max: String(c.info.capabilities.maxFrameBytes),
      });
    }
    if (c.blocked) {
      c.wantWritable = true;
      return false;
    }
    this.#writeData(c, frame);
    this.counters.framesSent++;
    if (c.socket.writableLength + this.#pending(c) >= this.#highWaterMark) {
      // Hand the batch to the socket now so write() has returned false (our mark is above the
      // socket's own) and 'drain' is sure to follow.
      this.#flushBatch(c);
      c.blocked = true;
    }
    return true;
  }

  closeLink(linkId: LinkId, reasonCode: string, reason: string): void {
    const c = this.#links.get(linkId);
    if (c !== undefined) this.#drop(c, reasonCode, reason, { bye: true, byRemote: false });
  }

  /**
   * Keeps a peer connected (dialing it now and after each disconnect).
   * @returns the key to {@link removePeer} it with.
   */
  addPeer(
    address: PeerAddress,
    source: 'static' | 'discovered' = 'static',
    instanceId?: string,
  ): string {
    const key =
      source === 'discovered' && instanceId !== undefined
        ? `mdns:${instanceId}`
        : `tcp://${formatHostPort(address.host, address.port)}`;
    if (this.#closed || this.#targets.has(key)) return key;
    const target: Target = {
      key,
      address,
      source,
      attempt: 0,
      timer: undefined,
      conn: undefined,
      instanceId,
    };
    this.#targets.set(key, target);
    this.#dial(target);
    return key;
  }

  /** Stops redialing a peer (its link, if up, stays until it fails). */
  removePeer(key: string): void {
    const t = this.#targets.get(key);
    if (t === undefined) return;
    clearTimeout(t.timer);
    this.#targets.delete(key);
  }

  /** Peers being kept connected. */
  get peers(): readonly string[] {
    return [...this.#targets.keys()];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#onListenersChanged();
    for (const t of this.#targets.values()) clearTimeout(t.timer);
    this.#targets.clear();
    const server = this.#server;
    const stopped =
      server === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => server.close(() => resolve()));
    for (const c of [...this.#connections])
      this.#drop(c, 'LAN_CLOSED', 'driver closed', { bye: true, byRemote: false });
    await Promise.all([stopped, ...this.#closing]);
    this.#diagnostics.clear();
  }

  async #listen(port: number): Promise<void> {
    const t = this.#options.tls;
    const server =
      t === undefined
        ? net.createServer()
        : tls.createServer({
            cert: t.cert,
            key: t.key,
            ...(t.ca === undefined
              ? {}
              : { ca: t.ca, requestCert: true, rejectUnauthorized: true }),
          });
    server.on(t === undefined ? 'connection' : 'secureConnection', (socket: net.Socket) =>
      this.#accept(socket),
    );
    // A failed TLS handshake (a plaintext client, a bad certificate) concerns that socket only.
    server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => {
      this.counters.decodeErrors++;
      this.#diag({
        type: 'connection-closed',
        remoteAddress: remoteOf(socket),
        code: 'LAN_FRAME_MALFORMED',
        reason: `TLS handshake failed: ${error.message}`,
        byRemote: false,
      });
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (cause) =>
        reject(
          lanError(
            'LAN_LISTEN_FAILED',
            `cannot listen on port ${port}`,
            { port: String(port) },
            cause,
          ),
        ),
      );
      server.listen({ port, host: this.#options.host ?? '::' }, () => resolve());
    });
    server.on('error', () => {
      // After a successful bind, errors belong to single sockets and reach their own handlers.
    });
    this.#server = server;
  }

  #accept(socket: net.Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (this.#connections.size >= this.#maxConnections) {
      this.counters.refused++;
      const remoteAddress = remoteOf(socket);
      this.#diag({ type: 'refused', remoteAddress, code: 'LAN_CONNECTION_LIMIT' });
      socket.on('error', () => {
        // The refused client may reset first; nothing depends on this socket any more.
      });
      const bye = encodeRecord(
        RecordType.BYE,
        encodeBye({
          code: 'LAN_CONNECTION_LIMIT',
          reason: `this peer accepts at most ${this.#maxConnections} connections`,
        }),
      );
      socket.end(bye);
      const kill = setTimeout(() => socket.destroy(), 1_000);
      kill.unref();
      socket.once('close', () => clearTimeout(kill));
      return;
    }
    this.counters.accepted++;
    this.#open(socket, false, undefined);
  }

  #dial(target: Target): void {
    if (this.#closed || target.conn !== undefined || target.timer !== undefined) return;
    if (target.instanceId !== undefined && this.#hasLinkTo(target.instanceId)) return;
    if (this.#connections.size >= this.#maxConnections) {
      this.#scheduleDial(target);
      return;
    }
    const t = this.#options.tls;
    const { host, port } = target.address;
    const socket =
      t === undefined
        ? net.connect({ host, port })
        : tls.connect({
            host,
            port,
            cert: t.cert,
            key: t.key,
            ...(t.ca === undefined ? { rejectUnauthorized: false } : { ca: t.ca }),
            ...(isIP(host) === 0 ? { servername: host } : {}),
          });
    this.counters.dialed++;
    target.conn = this.#open(socket, true, target);
  }

  #scheduleDial(target: Target): void {
    if (this.#closed || target.timer !== undefined || !this.#targets.has(target.key)) return;
    const { initialMs, maxMs, jitter } = this.#backoff;
    const full = Math.min(maxMs, initialMs * 2 ** target.attempt);
    const delayMs = Math.round(full * (1 - jitter * this.#random()));
    target.attempt = Math.min(target.attempt + 1, 30);
    this.#diag({ type: 'dial-scheduled', peer: target.key, attempt: target.attempt, delayMs });
    target.timer = setTimeout(() => {
      target.timer = undefined;
      this.#dial(target);
    }, delayMs);
    target.timer.unref();
  }

  #hasLinkTo(instanceId: string): boolean {
    for (const c of this.#links.values()) if (c.remoteInstance === instanceId) return true;
    return false;
  }

  #open(socket: net.Socket, dialed: boolean, target: Target | undefined): Connection {
    const now = Date.now();
    const c: Connection = {
      socket,
      dialed,
      target,
      remoteAddress:
        target === undefined
          ? remoteOf(socket)
          : formatHostPort(target.address.host, target.address.port),
      decoder: new RecordDecoder(this.#maxFrameBytes),
      openedAt: now,
      state: 'hello',
      remoteInstance: undefined,
      info: undefined,
      received: false,
      sent: false,
      lastReceived: now,
      lastSent: now,
      corked: false,
      batch: undefined,
      batchStart: 0,
      batchUsed: 0,
      blocked: false,
      wantWritable: false,
      timer: undefined,
    };
    this.#connections.add(c);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.#keepaliveMs);
    const onRecord = (type: RecordType, payload: Uint8Array): void =>
      this.#onRecord(c, type, payload);
    socket.on('data', (chunk: Buffer) => {
      if (c.state === 'closed') return;
      c.received = true;
      try {
        c.decoder.push(chunk, onRecord);
      } catch (error) {
        this.counters.decodeErrors++;
        const e = error as LatticeError;
        this.#drop(c, e.code, e.message, { bye: true, byRemote: false });
      }
    });
    socket.on('drain', () => {
      if (!c.blocked) return;
      c.blocked = false;
      if (c.wantWritable && c.info !== undefined) {
        c.wantWritable = false;
        this.#emit({ type: 'writable', linkId: c.info.id });
      }
    });
    socket.on('error', (error) => {
      this.#drop(c, 'LAN_CONNECTION_LOST', error.message, { bye: false, byRemote: false });
    });
    socket.on('close', () => {
      this.#drop(c, 'LAN_CONNECTION_LOST', 'connection closed by the remote side', {
        bye: false,
        byRemote: false,
      });
    });
    const tick = Math.max(10, Math.floor(Math.min(this.#keepaliveMs, this.#idleTimeoutMs / 3) / 2));
    c.timer = setInterval(() => this.#tick(c), tick);
    c.timer.unref();
    this.#write(
      c,
      encodeRecord(
        RecordType.HELLO,
        encodeHello({
          version: LAN_PROTOCOL_VERSION,
          maxFrameBytes: this.#maxFrameBytes,
          instanceId: this.instanceId,
        }),
      ),
    );
    return c;
  }

  #tick(c: Connection): void {
    const now = Date.now();
    if (c.received) {
      c.received = false;
      c.lastReceived = now;
    }
    if (c.sent) {
      c.sent = false;
      c.lastSent = now;
    }
    if (now - c.lastReceived >= this.#idleTimeoutMs) {
      const hello = c.state === 'hello';
      if (!hello) this.counters.idleTimeouts++;
      this.#drop(
        c,
        hello ? 'LAN_HELLO_TIMEOUT' : 'LAN_IDLE_TIMEOUT',
        `nothing received for ${now - c.lastReceived} ms${c.decoder.midRecord ? ' (in the middle of a record)' : ''}`,
        { bye: true, byRemote: false },
      );
      return;
    }
    if (c.state === 'up' && now - c.lastSent >= this.#keepaliveMs) {
      this.counters.pingsSent++;
      this.#write(c, encodeRecord(RecordType.PING));
    }
  }

  #cork(c: Connection): void {
    c.sent = true;
    if (c.corked) return;
    c.corked = true;
    c.socket.cork();
    process.nextTick(() => {
      c.corked = false;
      if (c.socket.writableEnded || c.socket.destroyed) return;
      this.#flushBatch(c);
      c.socket.uncork();
    });
  }

  #write(c: Connection, bytes: Uint8Array): void {
    this.#cork(c);
    this.#flushBatch(c);
    c.socket.write(bytes);
  }

  /**
   * Copies a DATA record into the connection's slab; what was added since the last flush is
   * written as one buffer at the end of the tick (or when the slab is full, or at the mark).
   * A frame of {@link ZERO_COPY_BYTES} or more is not copied: its header goes into the slab and
   * the frame itself to the socket, which is corked, so both leave in the same `writev`.
   */
  #writeData(c: Connection, frame: Uint8Array): void {
    const length = frame.length;
    const large = length >= ZERO_COPY_BYTES;
    const n = RECORD_HEADER_BYTES + (large ? 0 : length);
    this.#cork(c);
    let b = c.batch;
    if (b === undefined || c.batchUsed + n > b.length) {
      this.#flushBatch(c);
      b = c.batch = Buffer.allocUnsafeSlow(SLAB_BYTES);
      c.batchStart = 0;
      c.batchUsed = 0;
    }
    const at = c.batchUsed;
    b[at] = RecordType.DATA;
    b[at + 1] = length >>> 24;
    b[at + 2] = (length >>> 16) & 0xff;
    b[at + 3] = (length >>> 8) & 0xff;
    b[at + 4] = length & 0xff;
    c.batchUsed = at + n;
    if (large) {
      this.#flushBatch(c);
      c.socket.write(frame);
    } else {
      b.set(frame, at + RECORD_HEADER_BYTES);
    }
  }

  /** Bytes copied into the slab and not yet handed to the socket. */
  #pending(c: Connection): number {
    return c.batchUsed - c.batchStart;
  }

  #flushBatch(c: Connection): void {
    const b = c.batch;
    if (b === undefined || c.batchUsed === c.batchStart) return;
    // The socket keeps a view of the written part, which is never touched again; later records
    // go after it in the same slab, and a full slab is replaced, not reused.
    c.socket.write(b.subarray(c.batchStart, c.batchUsed));
    c.batchStart = c.batchUsed;
  }

  #onRecord(c: Connection, type: RecordType, payload: Uint8Array): void {
    if (c.state === 'closed') return;
    if (type === RecordType.DATA && c.state === 'up' && c.info !== undefined) {
      this.counters.framesReceived++;
      // `payload` is a plain Uint8Array view of the received chunk, or of the decoder's assembly
      // buffer, which the next record split across reads overwrites: the link contract makes a
      // frame event's data valid only during the event.
      this.#emit({ type: 'frame', linkId: c.info.id, data: payload });
      return;
    }
    try {
      switch (type) {
        case RecordType.HELLO:
          if (c.state !== 'hello')
            throw lanError('LAN_FRAME_MALFORMED', 'a second HELLO on one connection');
          this.#onHello(c, payload);
          return;
        case RecordType.PING:
          return;
        case RecordType.BYE: {
          const bye = decodeBye(payload);
          if (bye.code === 'LAN_CONNECTION_LIMIT') {
            this.counters.refused++;
            this.#diag({ type: 'refused', remoteAddress: c.remoteAddress, code: bye.code });
          }
          this.#drop(c, bye.code, `remote: ${bye.reason}`, { bye: false, byRemote: true });
          return;
        }
        default:
          throw lanError('LAN_FRAME_MALFORMED', 'DATA before HELLO');
      }
    } catch (error) {
      this.counters.decodeErrors++;
      const e = error as LatticeError;
      this.#drop(c, e.code, e.message, { bye: true, byRemote: false });
    }
  }

  #onHello(c: Connection, payload: Uint8Array): void {
    const hello = decodeHello(payload);
    if (hello.version !== LAN_PROTOCOL_VERSION) {
      throw lanError('LAN_VERSION_MISMATCH', `remote speaks LAN protocol ${hello.version}`, {
        version: String(hello.version),
      });
    }
    if (hello.instanceId === this.instanceId) {
      if (c.target !== undefined) c.target.instanceId = hello.instanceId;
      throw lanError('LAN_SELF_CONNECTION', 'this connection reaches ourselves');
    }
    if (hello.maxFrameBytes < 20) {
      throw lanError('LAN_FRAME_MALFORMED', `remote max frame ${hello.maxFrameBytes} is below 20`);
    }
    c.remoteInstance = hello.instanceId;
    if (c.target !== undefined) {
      c.target.instanceId = hello.instanceId;
      c.target.attempt = 0;
    }
    const existing = [...this.#links.values()].find((l) => l.remoteInstance === hello.instanceId);
    if (existing !== undefined) {
      this.counters.duplicates++;
      const smaller = this.instanceId < hello.instanceId ? 'self' : 'remote';
      const dialer = (x: Connection): 'self' | 'remote' => (x.dialed ? 'self' : 'remote');
      // Both ends compute the same answer: prefer the connection the smaller id dialed; between
      // two dialed by the same side, the newer one (the old one is likely half-dead).
      const keepNew = dialer(c) === smaller || dialer(existing) !== smaller;
      const loser = keepNew ? existing : c;
      this.#drop(loser, 'LAN_DUPLICATE_LINK', 'another connection to this peer was kept', {
        bye: true,
        byRemote: false,
      });
      if (!keepNew) return;
    }
    const id = asLinkId(`${this.instanceId.slice(0, 8)}-${this.#nextLink++}`);
    const capabilities: LinkCapabilities = {
      maxFrameBytes: Math.min(this.#maxFrameBytes, hello.maxFrameBytes),
      kind: 2, // LINK_KIND_STREAM: TCP, framed by lan-codec
      reliable: true,
      ordered: true,
      bandwidthBytesPerS: 0,
      latencyMs: 0,
      // TLS records carry a MAC; plain TCP's 16-bit checksum is too weak to count.
      checksummed: this.#options.tls !== undefined,
    };
    c.info = { id, transport: 'lan', capabilities, remoteAddress: c.remoteAddress };
    c.state = 'up';
    this.#links.set(id, c);
    this.#emit({ type: 'up', link: c.info });
  }

  #drop(
    c: Connection,
    code: string,
    reason: string,
    how: { readonly bye: boolean; readonly byRemote: boolean },
  ): void {
    if (c.state === 'closed') return;
    const wasUp = c.state === 'up';
    c.state = 'closed';
    clearInterval(c.timer);
    this.#connections.delete(c);
    if (code === 'LAN_IDLE_TIMEOUT' || code === 'LAN_HELLO_TIMEOUT') {
      c.socket.destroy();
    } else if (how.bye && !c.socket.destroyed) {
      this.#flushBatch(c); // frames already taken go before the BYE
      c.socket.end(encodeRecord(RecordType.BYE, encodeBye({ code, reason })));
      const kill = setTimeout(() => c.socket.destroy(), 1_000);
      kill.unref();
      c.socket.once('close', () => clearTimeout(kill));
    } else {
      c.socket.destroy();
    }
    if (!c.socket.closed) {
      const closed = new Promise<void>((resolve) => c.socket.once('close', () => resolve()));
      this.#closing.add(closed);
      void closed.then(() => this.#closing.delete(closed));
    }
    this.#diag({
      type: 'connection-closed',
      remoteAddress: c.remoteAddress,
      code,
      reason,
      byRemote: how.byRemote,
      ...(c.info === undefined ? {} : { linkId: c.info.id }),
    });
    if (wasUp && c.info !== undefined) {
      this.#links.delete(c.info.id);
      this.#emit({ type: 'down', linkId: c.info.id, reasonCode: code, reason });
    }
    const t = c.target;
    if (t !== undefined && t.conn === c) {
      t.conn = undefined;
      this.#scheduleDial(t);
    }
    // A peer that reached us by dialing may have to be dialed by us now.
    if (wasUp && c.remoteInstance !== undefined && !this.#closed) {
      for (const other of this.#targets.values()) {
        if (other !== t && other.instanceId === c.remoteInstance && other.conn === undefined)
          this.#scheduleDial(other);
      }
    }
  }

  #emit(event: LinkEvent): void {
    if (this.#closed) return;
    const only = this.#onlyListener;
    if (only !== undefined) {
      only(event);
      return;
    }
    for (const l of [...this.#listeners]) l(event);
  }

  #diag(event: LanDriverEvent): void {
    for (const l of [...this.#diagnostics]) l(event);
  }
}

function remoteOf(socket: net.Socket): string {
  const host = socket.remoteAddress ?? '?';
  return formatHostPort(host.startsWith('::ffff:') ? host.slice(7) : host, socket.remotePort ?? 0);
}
