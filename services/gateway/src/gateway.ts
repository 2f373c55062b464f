/**
 * A running gateway: the gRPC DQL API (with health checking and server reflection) and the HTTP
 * API over one peer, optionally with TLS on both (and so `wss` on the sync endpoint).
 */
import type { AddressInfo } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ApiKeys, assertPlaygroundAllowed } from './auth.js';
import type { KeyEntry, KeysReload } from './auth.js';
import { addReflection, reflectionAvailable } from './reflection.js';
import { addDqlService, DQL_SERVICE_NAME } from './grpc-server.js';
import { createHttpApi } from './http-server.js';
import { ObserverHub } from './observers.js';
import type { ObserverStats } from './observers.js';
import type { PeerApi } from './peer-api.js';
import { WebSocketLinkDriver } from './ws-link-driver.js';
import type { WebSocketLinkDriverOptions } from './ws-link-driver.js';

/** TLS settings of the gateway's listeners (PEM). */
export interface GatewayTls {
  /** Certificate chain. */
  readonly cert: string | Buffer;
  /** Private key of {@link cert}. */
  readonly key: string | Buffer;
  /**
   * Mutual TLS: clients must show a certificate signed by one of these CA certificates (gRPC,
   * HTTPS and `wss` alike), or the TLS handshake fails. Absent: any client may connect (API keys
   * still apply).
   */
  readonly clientCa?: string | Buffer;
}

/** Options of {@link startGateway}. */
export interface GatewayOptions {
  /** Address both listeners bind to (default 127.0.0.1). */
  readonly host?: string;
  /** gRPC port (default 50051; 0: any free port). */
  readonly grpcPort?: number;
  /** HTTP port (default 8080; 0: any free port). */
  readonly httpPort?: number;
  /** API keys with full access; with no `keys` either: playground mode, loopback only. */
  readonly apiKeys?: readonly string[];
  /** Keys with permissions and expiry (a keys file's entries, `readKeysFile`). */
  readonly keys?: readonly KeyEntry[];
  /** TLS for both listeners (gRPC over TLS, HTTPS, `wss` sync endpoint). Absent: plaintext. */
  readonly tls?: GatewayTls;
  /**
   * Serves gRPC server reflection: true requires the descriptor set, `auto` (the default) serves
   * it when it was built (`pnpm gen` with protoc installed).
   */
  readonly reflection?: boolean | 'auto';
  /** Largest HTTP request body (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** Largest gRPC message received (default 4 MiB). */
  readonly maxMessageBytes?: number;
  /** Default and largest queue of unsent batches per observer (default 64). */
  readonly maxQueuedBatches?: number;
  /** Most observers at once (default 10,000). */
  readonly maxObservers?: number;
  /** How often observers of system collections (`system:data_sync_info`) re-read them (ms). */
  readonly systemPollMs?: number;
  /** How often Presence streams look for changes (ms, default 1000). */
  readonly presenceIntervalMs?: number;
  /**
   * Serves the WebSocket sync endpoint (`/api/v4/sync` on the HTTP port) with these limits;
   * absent: no endpoint. Its links reach the multiplexer through {@link Gateway.links}.
   */
  readonly sync?: WebSocketLinkDriverOptions;
}

/** A started gateway. */
export interface Gateway {
  readonly host: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Whether both listeners use TLS (`https`, `wss`, gRPC over TLS). */
  readonly tls: boolean;
  /** The WebSocket sync endpoint's links (hand to the `Multiplexer`), when `sync` was set. */
  readonly links: WebSocketLinkDriver | undefined;
  /** Counters of the open observers. */
  observerStats(): ObserverStats[];
  /** Facts for health replies. */
  health(): Readonly<Record<string, string>>;
  /**
   * Replaces the keys (a reload of the keys file, see `ApiKeys.replace`): new requests use the
   * new keys at once; streams and sync links of a removed or changed key end.
   * @throws `GATEWAY_BAD_CONFIG` when no key would be left.
   */
  reloadKeys(apiKeys: readonly string[], entries: readonly KeyEntry[]): KeysReload;
  /** Ends every stream, stops both listeners, stops observing the peer. */
  close(): Promise<void>;
}

/**
 * Starts the gateway over `peer`.
 * @throws `GATEWAY_INSECURE_CONFIG` for playground mode on a non-loopback host; listen errors.
 */
export async function startGateway(peer: PeerApi, options: GatewayOptions = {}): Promise<Gateway> {
  const host = options.host ?? '127.0.0.1';
  const keys = new ApiKeys(options.apiKeys ?? [], options.keys ?? []);
  assertPlaygroundAllowed(keys, [host]);
  const hub = new ObserverHub(peer, {
    ...(options.maxQueuedBatches === undefined ? {} : { maxQueued: options.maxQueuedBatches }),
    ...(options.maxObservers === undefined ? {} : { maxObservers: options.maxObservers }),
    ...(options.systemPollMs === undefined ? {} : { systemPollMs: options.systemPollMs }),
  });
  const maxMessage = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': maxMessage,
  });
  const closeStreams = addDqlService(grpcServer, {
    peer,
    hub,
    keys,
    ...(options.presenceIntervalMs === undefined
      ? {}
      : { presenceIntervalMs: options.presenceIntervalMs }),
  });
  const health = new HealthImplementation({ '': 'SERVING', [DQL_SERVICE_NAME]: 'SERVING' });
  health.addToServer(grpcServer);
  const reflection = options.reflection ?? 'auto';
  if (reflection === true || (reflection === 'auto' && reflectionAvailable())) {
    addReflection(grpcServer);
  }

  let http: HttpServer | HttpsServer | undefined;
  try {
    const grpcPort = await new Promise<number>((resolve, reject) => {
      grpcServer.bindAsync(
        `${host.includes(':') ? `[${host}]` : host}:${options.grpcPort ?? 50051}`,
        options.tls
          ? grpc.ServerCredentials.createSsl(
              options.tls.clientCa === undefined ? null : Buffer.from(options.tls.clientCa),
              [
                {
                  cert_chain: Buffer.from(options.tls.cert),
                  private_key: Buffer.from(options.tls.key),
                },
              ],
              options.tls.clientCa !== undefined,
            )
          : grpc.ServerCredentials.createInsecure(),
        (error, port) => (error ? reject(error) : resolve(port)),
      );
    });
    const httpServer = createHttpApi({
      peer,
      keys,
      ...(options.maxBodyBytes === undefined ? {} : { maxBodyBytes: options.maxBodyBytes }),
      ...(options.tls ? { tls: options.tls } : {}),
    });
    http = httpServer;
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(options.httpPort ?? 8080, host, () => {
        httpServer.off('error', reject);
        resolve();
      });
    });
    const httpPort = (httpServer.address() as AddressInfo).port;
    const links = options.sync ? new WebSocketLinkDriver(options.sync) : undefined;
    links?.attach(httpServer, keys);
    let closed: Promise<void> | undefined;
    return {
      host,
      grpcPort,
      httpPort,
      tls: options.tls !== undefined,
      links,
      observerStats: () => hub.stats(),
      health: () => ({
        peer: peer.peerId,
        grpc: `${host}:${grpcPort}`,
        http: `${host}:${httpPort}`,
        observers: String(hub.size),
        syncLinks: links ? String(links.size) : 'off',
        auth: keys.playground ? 'playground' : 'api-keys',
        tls: options.tls ? (options.tls.clientCa === undefined ? 'on' : 'mutual') : 'off',
      }),
      reloadKeys: (apiKeys, entries) => keys.replace(apiKeys, entries),
      close() {
        closed ??= (async () => {
          health.setStatus('', 'NOT_SERVING');
          health.setStatus(DQL_SERVICE_NAME, 'NOT_SERVING');
          closeStreams();
          hub.close();
          await links?.close();
          await Promise.all([
            new Promise<void>((resolve) => {
              grpcServer.tryShutdown(() => resolve());
              // Calls that do not finish promptly are cut.
              setTimeout(() => grpcServer.forceShutdown(), 2_000).unref();
            }),
            new Promise<void>((resolve) => {
              httpServer.close(() => resolve());
              httpServer.closeAllConnections();
            }),
          ]);
        })();
        return closed;
      },
    };
  } catch (error) {
    hub.close();
    grpcServer.forceShutdown();
    http?.close();
    throw error;
  }
}
