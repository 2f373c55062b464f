/**
 * The gateway service: gRPC DQL API, Ditto-compatible HTTP API, WebSocket sync endpoint.
 *
 * @remarks
 * The gateway needs a peer ({@link PeerApi}). {@link startGatewayService} starts it over one —
 * `lattice up` composes it with the in-process peer (`new InProcessPeer(mergeEngine)`). The
 * `gatewayService` definition started on its own (its `main.ts`, `lattice gateway`) serves the
 * peer whose merge service and multiplexer run in other processes: a {@link BusPeer} over the bus
 * (it waits for the merge service at start), and the WebSocket sync endpoint's links served to the
 * multiplexer as transport `gateway` (`serveLinkDriver`).
 */
import { readFileSync } from 'node:fs';
import { baseConfigSchema, defineService } from '@lattice/service';
import type { ServiceContext, ServiceInstance } from '@lattice/service';
import { z } from 'zod';
import { readKeysFile } from './auth.js';
import type { KeysReload } from './auth.js';
import { gatewayError } from './errors.js';
import { startGateway } from './gateway.js';
import type { Gateway, GatewayOptions } from './gateway.js';
import { serveLinkDriver } from '@lattice/multiplexer';
import { BusPeer } from './bus-peer.js';
import type { PeerApi } from './peer-api.js';
import { reflectionAvailable } from './reflection.js';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

const port = (fallback: string) =>
  z
    .string()
    .regex(/^\d{1,5}$/, 'must be a port number')
    .default(fallback)
    .transform(Number)
    .refine((n) => n <= 65_535, 'must be at most 65535');

/** Settings of the gateway service (flags and `LATTICE_*` variables). */
export const gatewayConfigSchema = baseConfigSchema.extend({
  grpcPort: port('50051').describe('gRPC port (0: any free port)'),
  httpPort: port('8080').describe('HTTP port (0: any free port)'),
  host: z.string().min(1).default('127.0.0.1').describe('address the listeners bind to'),
  apiKey: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((k) => k.trim())
        .filter((k) => k.length > 0),
    )
    .describe(
      'API keys with full access, comma-separated; none (and no keys file): playground mode (loopback only)',
    ),
  keysFile: z
    .string()
    .default('')
    .describe('JSON file of keys with per-collection permissions and expiry (see the README)'),
  tlsCert: z
    .string()
    .default('')
    .describe('PEM certificate chain: TLS on both listeners (https, wss, gRPC over TLS)'),
  tlsKey: z.string().default('').describe('PEM private key of --tls-cert'),
  tlsClientCa: z
    .string()
    .default('')
    .describe(
      'PEM CA certificates: mutual TLS, every client (gRPC, HTTPS, wss) must show a certificate they signed',
    ),
  reflection: z
    .enum(['auto', 'on', 'off'])
    .default('auto')
    .describe(
      'serve gRPC server reflection (auto: when the descriptor set was built, which needs protoc)',
    ),
  maxBodyBytes: z
    .string()
    .regex(/^\d+$/, 'must be a whole number of bytes')
    .default(String(1024 * 1024))
    .transform(Number)
    .describe('largest HTTP request body'),
  syncEndpoint: z
    .enum(['on', 'off'])
    .default('off')
    .describe('serve the WebSocket sync endpoint /api/v4/sync (its links go to the multiplexer)'),
  allowedOrigins: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((o) => o.trim())
        .filter((o) => o.length > 0),
    )
    .describe('browser Origins allowed on the sync endpoint, comma-separated'),
});

/** The settings of {@link gatewayConfigSchema}. */
export type GatewayConfig = ReturnType<typeof gatewayConfigSchema.parse>;

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw gatewayError(
      'GATEWAY_BAD_CONFIG',
      `${what} ${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { path },
      cause,
    );
  }
}

/**
 * The {@link GatewayOptions} a configuration asks for; reads the keys file and TLS files.
 * @throws `GATEWAY_BAD_CONFIG` for a bad keys file, an unreadable PEM file, only one of
 * `--tls-cert` and `--tls-key`, or `--tls-client-ca` without them.
 */
export function gatewayOptionsFrom(config: GatewayConfig): GatewayOptions {
  if ((config.tlsCert === '') !== (config.tlsKey === '')) {
    throw gatewayError('GATEWAY_BAD_CONFIG', 'TLS needs both --tls-cert and --tls-key');
  }
  if (config.tlsClientCa !== '' && config.tlsCert === '') {
    throw gatewayError('GATEWAY_BAD_CONFIG', '--tls-client-ca needs --tls-cert and --tls-key');
  }
  return {
    host: config.host,
    grpcPort: config.grpcPort,
    httpPort: config.httpPort,
    apiKeys: config.apiKey,
    ...(config.keysFile === '' ? {} : { keys: readKeysFile(config.keysFile) }),
    ...(config.tlsCert === ''
      ? {}
      : {
          tls: {
            cert: readPem(config.tlsCert, '--tls-cert'),
            key: readPem(config.tlsKey, '--tls-key'),
            ...(config.tlsClientCa === ''
              ? {}
              : { clientCa: readPem(config.tlsClientCa, '--tls-client-ca') }),
          },
        }),
    reflection: config.reflection === 'auto' ? 'auto' : config.reflection === 'on',
    maxBodyBytes: config.maxBodyBytes,
    ...(config.syncEndpoint === 'on' ? { sync: { allowedOrigins: config.allowedOrigins } } : {}),
  };
}

/** A running gateway service. */
export interface GatewayServiceInstance extends ServiceInstance {
  readonly gateway: Gateway;
}

/**
 * Reads the keys file again and hands the keys to the gateway (`SIGHUP`, see
 * {@link startGatewayService}). A bad file changes nothing.
 * @throws `GATEWAY_BAD_CONFIG` for a bad file, or one that would leave no key.
 */
export function reloadKeysFile(gateway: Gateway, config: GatewayConfig): KeysReload {
  return gateway.reloadKeys(
    config.apiKey,
    config.keysFile === '' ? [] : readKeysFile(config.keysFile),
  );
}

/**
 * Starts the gateway over `peer` with the service's configuration (for `lattice up`). With a
 * keys file, `SIGHUP` reloads it (`systemctl reload`): new requests use the new keys, streams
 * and sync links of a removed or changed key end; a bad file is logged and changes nothing.
 */
export async function startGatewayService(
  peer: PeerApi,
  config: GatewayConfig,
  logger?: ServiceContext['logger'],
): Promise<GatewayServiceInstance> {
  const gateway = await startGateway(peer, gatewayOptionsFrom(config));
  const onHangup = (): void => {
    try {
      const r = reloadKeysFile(gateway, config);
      logger?.info({ ...r, keysFile: config.keysFile }, 'keys reloaded');
    } catch (err) {
      logger?.error(
        { err, keysFile: config.keysFile },
        'keys file not reloaded: keeping the old keys',
      );
    }
  };
  if (config.keysFile !== '') process.on('SIGHUP', onHangup);
  return {
    gateway,
    health: () => gateway.health(),
    stop: () => {
      process.off('SIGHUP', onHangup);
      return gateway.close();
    },
  };
}

/** The gateway service definition, started by its `main.ts`; see the module comment. */
export const gatewayService = defineService({
  name: 'gateway',
  version: VERSION,
  configSchema: gatewayConfigSchema,
  async start({ bus, config, logger, subjects }) {
    const peer = await BusPeer.connect(bus, subjects, {
      onProblem: (message, err) => logger.warn({ err }, message),
    });
    if (config.reflection === 'auto' && !reflectionAvailable()) {
      logger.warn('gRPC reflection is off: the descriptor set was not built (needs protoc)');
    }
    const instance = await startGatewayService(peer, config, logger);
    const links = instance.gateway.links
      ? serveLinkDriver(bus, subjects, 'gateway', instance.gateway.links)
      : undefined;
    logger.info({ peerId: peer.peerId }, 'gateway serving the peer over the bus');
    return {
      health: () => ({
        ...instance.gateway.health(),
        peer: peer.peerId === '' ? 'waiting for the merge service' : peer.peerId,
      }),
      async stop() {
        await links?.close();
        await instance.stop();
        peer.close();
      },
    };
  },
});
