/**
 * The WebSocket sync endpoint: remote peers (and browsers) that connect become links of the
 * multiplexer, through this {@link LinkDriver}.
 *
 * @remarks
 * Wire format: one multiplexer frame per binary WebSocket message, unchanged (the
 * multiplexer's own handshake and framing run on top, as on every other link). Text messages
 * are a protocol error (close 1003).
 *
 * The same driver accepts connections ({@link WebSocketLinkDriver.attach}, on the gateway's
 * HTTP server, path `/api/v4/sync` by default) and opens them ({@link
 * WebSocketLinkDriver.connect}). Limits on the accepting side: API key during the upgrade
 * (`Authorization: Bearer` or the `lattice-key.<key>` subprotocol for browsers, which cannot set
 * headers), an Origin allow-list for browsers, a cap on connections, a message size limit
 * (`maxFrameBytes`; a larger message closes the connection with 1009) and a message rate
 * limit per connection (a token bucket; a flood closes it with 1008). A key restricted to some
 * documents syncs too: its link reports the key's permissions (`LinkInfo.permissions`), which the
 * multiplexer hands with the peer to its sync session, which sends the peer only what it may
 * read and refuses what it may not write. Its link names the key (`LinkInfo.principal`), so a
 * peer whose mesh has a shared key admits the app on its key alone. A link ends when its key
 * expires or a reload of the
 * keys revokes it. TLS (`wss`) is the HTTP
 * server's business: attach to an `https` server (`startGateway` does with `tls`); `connect`
 * takes a `wss://` URL and, for a private CA, its certificate (`ca`).
 *
 * Backpressure: `send` refuses a frame (returns false) while more than `highWaterBytes` are
 * queued in the socket, and reports `writable` once they are written.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { RawData } from 'ws';
import { asLinkId, muxError } from '@lattice/multiplexer';
import type {
  LinkCapabilities,
  LinkDriver,
  LinkEvent,
  LinkId,
  LinkInfo,
  LinkListener,
} from '@lattice/multiplexer';
import { v1 } from '@lattice/proto';
import { hasCode } from '@lattice/errors';
import { permissionsToProto } from '@lattice/merge';
import type { ApiKeys } from './auth.js';
import { isFullAccess } from './permissions.js';
import type { Principal } from './permissions.js';

/** Options of {@link WebSocketLinkDriver}. */
export interface WebSocketLinkDriverOptions {
  /** Largest frame (one WebSocket message), default 65,536 bytes. */
  readonly maxFrameBytes?: number;
  /** Bytes queued in a socket above which `send` refuses frames (default 1 MiB). */
  readonly highWaterBytes?: number;
  /** Most accepted connections at once (default 1,000). */
  readonly maxConnections?: number;
  /** Sustained messages per second per connection (default 2,000; bursts of twice that). */
  readonly maxMessagesPerSecond?: number;
  /** Origins browsers may connect from; absent: any request without an Origin header only. */
  readonly allowedOrigins?: readonly string[];
}

interface Link {
  readonly info: LinkInfo;
  readonly ws: WebSocket;
  up: boolean;
  refused: boolean;
  queued: number;
}

const SUBPROTOCOL_KEY = 'lattice-key.';

/** A {@link LinkDriver} over WebSocket connections; see the module comment. */
export class WebSocketLinkDriver implements LinkDriver {
  readonly name = 'gateway-ws';
  readonly #links = new Map<LinkId, Link>();
  readonly #listeners = new Set<LinkListener>();
  readonly #servers = new Set<WebSocketServer>();
  readonly #detach: (() => void)[] = [];
  readonly #capabilities: LinkCapabilities;
  readonly #highWater: number;
  readonly #maxConnections: number;
  readonly #rate: number;
  readonly #origins: ReadonlySet<string> | undefined;
  #accepted = 0;
  #next = 0;
  #closed = false;

  constructor(options: WebSocketLinkDriverOptions = {}) {
    this.#capabilities = {
      maxFrameBytes: options.maxFrameBytes ?? 65_536,
      kind: v1.LinkKind.LINK_KIND_DATAGRAM,
      reliable: true,
      ordered: true,
      bandwidthBytesPerS: 0,
      latencyMs: 0,
      checksummed: false,
    };
    this.#highWater = options.highWaterBytes ?? 1024 * 1024;
    this.#maxConnections = options.maxConnections ?? 1_000;
    this.#rate = options.maxMessagesPerSecond ?? 2_000;
    this.#origins = options.allowedOrigins ? new Set(options.allowedOrigins) : undefined;
  }

  /** Open links (accepted and opened). */
  get size(): number {
    return this.#links.size;
  }

  listen(listener: LinkListener): () => void {
    for (const l of this.#links.values()) if (l.up) listener({ type: 'up', link: l.info });
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: LinkEvent): void {
    if (this.#closed) return;
    for (const l of [...this.#listeners]) l(event);
  }

  /**
   * Accepts WebSocket upgrades on `path` of `server`, checking `keys` during the upgrade.
   * @returns a function that stops accepting (open links stay).
   */
  attach(server: HttpServer | HttpsServer, keys: ApiKeys, path = '/api/v4/sync'): () => void {
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.#capabilities.maxFrameBytes,
      handleProtocols: (protocols) => {
        for (const p of protocols) if (p.startsWith(SUBPROTOCOL_KEY)) return p;
        return protocols.values().next().value ?? false;
      },
    });
    this.#servers.add(wss);
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      if ((req.url ?? '').split('?')[0] !== path) return; // another endpoint's upgrade
      const refuse = (status: number, reason: string): void => {
        socket.end(
          `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
        );
      };
      const origin = req.headers.origin;
      if (origin !== undefined && !this.#origins?.has(origin)) {
        refuse(403, 'Forbidden');
        return;
      }
      const fromProtocol = (req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((p) => p.trim())
        .find((p) => p.startsWith(SUBPROTOCOL_KEY));
      let principal: Principal;
      try {
        principal = keys.check(
          req.headers.authorization ??
            (fromProtocol ? `Bearer ${fromProtocol.slice(SUBPROTOCOL_KEY.length)}` : undefined),
        );
      } catch {
        // The refusal is the answer; the error carries nothing the client does not know.
        refuse(401, 'Unauthorized');
        return;
      }
      if (this.#accepted >= this.#maxConnections || this.#closed) {
        refuse(503, 'Service Unavailable');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        this.#accepted++;
        // A link outlives neither its key's expiry nor a reload that revokes the key.
        const unwatch = keys.watch(principal, (error) => {
          ws.close(1008, hasCode(error, 'GATEWAY_KEY_REVOKED') ? 'key revoked' : 'token expired');
        });
        ws.once('close', () => {
          this.#accepted--;
          unwatch();
        });
        // A restricted key's peer syncs under its permissions: the link carries them to the
        // multiplexer, whose peer events hand them to the sync session that enforces them. The
        // key's name is the link's principal: the key admits the peer, not a mesh key.
        this.#adopt(
          ws,
          `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`,
          true,
          isFullAccess(principal) ? undefined : permissionsToProto(principal.spec ?? {}),
          principal.name,
        );
      });
    };
    server.on('upgrade', onUpgrade);
    const detach = (): void => {
      server.off('upgrade', onUpgrade);
    };
    this.#detach.push(detach);
    return detach;
  }

  /**
   * Opens a link to a gateway's sync endpoint (`ws://host:port/api/v4/sync`, or `wss://`: `ca`
   * to trust, `cert` and `key` to show a client certificate to a gateway with mutual TLS).
   * @returns the link once it is up.
   */
  connect(
    url: string,
    options: {
      apiKey?: string;
      signal?: AbortSignal;
      ca?: string | Buffer;
      cert?: string | Buffer;
      key?: string | Buffer;
    } = {},
  ): Promise<LinkId> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        maxPayload: this.#capabilities.maxFrameBytes,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(options.cert === undefined ? {} : { cert: options.cert }),
        ...(options.key === undefined ? {} : { key: options.key }),
        ...(options.apiKey ? { headers: { authorization: `Bearer ${options.apiKey}` } } : {}),
      });
      const abort = (): void => ws.terminate();
      options.signal?.addEventListener('abort', abort, { once: true });
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => {
        reject(new Error(`sync endpoint refused the upgrade: HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.once('open', () => {
        options.signal?.removeEventListener('abort', abort);
        ws.off('error', reject);
        resolve(this.#adopt(ws, url, false));
      });
    });
  }

  #adopt(
    ws: WebSocket,
    remoteAddress: string,
    limited: boolean,
    permissions?: v1.IPermissions,
    principal?: string,
  ): LinkId {
    const id = asLinkId(`ws-${++this.#next}`);
    const link: Link = {
      info: {
        id,
        transport: 'ws',
        capabilities: this.#capabilities,
        remoteAddress,
        ...(permissions === undefined ? {} : { permissions }),
        ...(principal === undefined ? {} : { principal }),
      },
      ws,
      up: true,
      refused: false,
      queued: 0,
    };
    this.#links.set(id, link);
    let tokens = this.#rate * 2;
    let refilled = Date.now();
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!link.up) return;
      if (limited) {
        const now = Date.now();
        tokens = Math.min(this.#rate * 2, tokens + ((now - refilled) * this.#rate) / 1000);
        refilled = now;
        if (tokens < 1) {
          ws.close(1008, 'message rate limit');
          this.#down(link, 'GATEWAY_LIMIT', 'message rate limit');
          return;
        }
        tokens--;
      }
      if (!isBinary) {
        ws.close(1003, 'binary frames only');
        this.#down(link, 'MUX_FRAME_MALFORMED', 'text message on a sync link');
        return;
      }
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : data instanceof ArrayBuffer
          ? Buffer.from(data)
          : data;
      this.#emit({ type: 'frame', linkId: id, data: new Uint8Array(bytes) });
    });
    ws.on('close', (code, reason) =>
      this.#down(
        link,
        code === 1009 ? 'MUX_FRAME_TOO_LARGE' : 'MUX_CLOSED',
        `closed ${code} ${reason.toString()}`,
      ),
    );
    ws.on('error', (error: Error & { code?: string }) => {
      // 'close' follows every 'error' on a ws socket; only an oversized message needs its
      // own reason (the close code the peer sees is 1009).
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        this.#down(link, 'MUX_FRAME_TOO_LARGE', error.message);
      }
    });
    this.#emit({ type: 'up', link: link.info });
    return id;
  }

  #down(link: Link, reasonCode: string, reason: string): void {
    if (!link.up) return;
    link.up = false;
    this.#links.delete(link.info.id);
    this.#emit({ type: 'down', linkId: link.info.id, reasonCode, reason });
  }

  send(linkId: LinkId, frame: Uint8Array): boolean {
    const link = this.#links.get(linkId);
    if (frame.length > this.#capabilities.maxFrameBytes) {
      throw muxError('MUX_FRAME_TOO_LARGE', `frame of ${frame.length} bytes on a ws link`, {
        size: String(frame.length),
        max: String(this.#capabilities.maxFrameBytes),
      });
    }
    if (!link?.up || link.ws.readyState !== WebSocket.OPEN) return false;
    if (link.queued > this.#highWater) {
      link.refused = true;
      return false;
    }
    link.queued += frame.length;
    link.ws.send(frame, { binary: true }, () => {
      link.queued -= frame.length;
      if (link.refused && link.queued <= this.#highWater / 2 && link.up) {
        link.refused = false;
        this.#emit({ type: 'writable', linkId });
      }
    });
    return true;
  }

  closeLink(linkId: LinkId, reasonCode: string, reason: string): void {
    const link = this.#links.get(linkId);
    if (!link) return;
    link.ws.close(1000, reasonCode.slice(0, 100));
    this.#down(link, reasonCode, reason);
  }

  /** Cuts a link without a closing handshake (tests: a dropped connection). */
  terminate(linkId: LinkId): void {
    this.#links.get(linkId)?.ws.terminate();
  }

  async close(): Promise<void> {
    for (const d of this.#detach.splice(0)) d();
    for (const l of [...this.#links.values()]) l.ws.terminate();
    this.#closed = true;
    this.#links.clear();
    this.#listeners.clear();
    await Promise.all([...this.#servers].map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.#servers.clear();
  }
}
