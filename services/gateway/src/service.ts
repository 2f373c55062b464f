/**
 * The gateway service: gRPC DQL API, Ditto-compatible HTTP API, WebSocket sync endpoint.
 *
 * @remarks
 * The gateway needs a peer ({@link PeerApi}). {@link startGatewayService} starts it over one —
 * `lattice up` composes it with the in-process peer (`new InProcessPeer(mergeEngine)`). The
 * `gatewayService` definition started on its own (its `main.ts`) has no peer to serve yet (a
 * `PeerApi` over the bus is future work): it then answers bus health only and says so in the
 * health details (`peer: none`).
 */
import { baseConfigSchema, defineService } from '@lattice/service';
import type { ServiceInstance } from '@lattice/service';
import { z } from 'zod';
import { startGateway } from './gateway.js';
import type { Gateway, GatewayOptions } from './gateway.js';
import type { PeerApi } from './peer-api.js';

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
    .describe('API keys, comma-separated; none: playground mode (loopback only)'),
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

/** The {@link GatewayOptions} a configuration asks for. */
export function gatewayOptionsFrom(config: GatewayConfig): GatewayOptions {
  return {
    host: config.host,
    grpcPort: config.grpcPort,
    httpPort: config.httpPort,
    apiKeys: config.apiKey,
    maxBodyBytes: config.maxBodyBytes,
    ...(config.syncEndpoint === 'on' ? { sync: { allowedOrigins: config.allowedOrigins } } : {}),
  };
}

/** A running gateway service. */
export interface GatewayServiceInstance extends ServiceInstance {
  readonly gateway: Gateway;
}

/** Starts the gateway over `peer` with the service's configuration (for `lattice up`). */
export async function startGatewayService(
  peer: PeerApi,
  config: GatewayConfig,
): Promise<GatewayServiceInstance> {
  const gateway = await startGateway(peer, gatewayOptionsFrom(config));
  return {
    gateway,
    health: () => gateway.health(),
    stop: () => gateway.close(),
  };
}

/** The gateway service definition, started by its `main.ts`; see the module comment. */
export const gatewayService = defineService({
  name: 'gateway',
  version: VERSION,
  configSchema: gatewayConfigSchema,
  start() {
    return Promise.resolve({
      health: () => ({
        peer: 'none',
        note: 'no peer to serve: the gateway serves DQL when composed with a peer (lattice up)',
      }),
      async stop() {
        // nothing was started
      },
    });
  },
});
