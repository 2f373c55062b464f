/**
 * The transport-lan service: a {@link LanLinkDriver} (and mDNS discovery) published on the bus as
 * the link contract the multiplexer's `BusLinkDriver` consumes.
 *
 * @remarks
 * Bus surface: the link contract, served by the multiplexer's `serveLinkDriver` (link up/down,
 * frames in and out with a bounded queue per link, `links` and `close-link` requests). Health
 * details: instance id, port, links, connections, counters.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { serveLinkDriver, type LinkBridgeCounters } from '@lattice/multiplexer';
import {
  baseConfigSchema,
  defineService,
  type ServiceContext,
  type ServiceInstance,
} from '@lattice/service';
import { discoverPeers, type MdnsDiscovery } from './discovery.js';
import { lanError } from './errors.js';
import {
  DEFAULT_LAN_PORT,
  DEFAULT_MAX_CONNECTIONS,
  LanLinkDriver,
  parsePeerAddress,
  type LanLinkDriverOptions,
} from './lan-link-driver.js';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

const TRANSPORT = 'transport-lan';
const split = (s: string): string[] =>
  s
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
const whole = (what: string, fallback: number, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number (${what})`)
    .default(String(fallback))
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`);

/** Settings of the transport-lan service (flags and `LATTICE_*` variables). */
export const transportLanConfigSchema = baseConfigSchema.extend({
  port: whole('TCP port; 0 picks one', DEFAULT_LAN_PORT, 0, 65_535).describe(
    'TCP port to listen on (0 picks a free one)',
  ),
  host: z.string().min(1).default('::').describe('address to bind (:: takes IPv4 and IPv6)'),
  peer: z
    .string()
    .default('')
    .refine((s) => {
      try {
        split(s).forEach(parsePeerAddress);
        return true;
      } catch {
        // parsePeerAddress threw LAN_BAD_ADDRESS: reported as this setting's validation error.
        return false;
      }
    }, 'must be comma-separated tcp://host:port addresses')
    .transform(split)
    .describe('static peers to keep connected, comma-separated tcp://host:port'),
  discovery: z
    .enum(['true', 'false'])
    .default('true')
    .transform((s) => s === 'true')
    .describe('announce and browse _lattice._tcp over mDNS'),
  mdnsInterface: z.string().optional().describe('multicast interface address for mDNS'),
  tlsCert: z.string().optional().describe('PEM certificate file; with --tls-key turns TLS on'),
  tlsKey: z.string().optional().describe('PEM private key file'),
  tlsCa: z
    .string()
    .optional()
    .describe('PEM CA file: when given, peers must present a certificate it signed'),
  maxConnections: whole('connections', DEFAULT_MAX_CONNECTIONS, 1, 1_000).describe(
    'connections accepted and dialed at most',
  ),
  keepaliveMs: whole('ms', 1_000, 10, 600_000).describe('PING after this much silence'),
  idleTimeoutMs: whole('ms', 3_000, 30, 3_600_000).describe(
    'drop a connection after this long without receiving',
  ),
});

/** The settings of {@link transportLanConfigSchema}. */
export type TransportLanConfig = ReturnType<typeof transportLanConfigSchema.parse>;

/** A running transport-lan service, with its driver. */
export interface TransportLanServiceInstance extends ServiceInstance {
  readonly driver: LanLinkDriver;
  readonly discovery: MdnsDiscovery | undefined;
  readonly counters: LinkBridgeCounters;
}

/**
 * Starts the transport on a bus.
 * @param overrides driver options the config has no flag for (tests pass an instance id).
 * @throws LanError LAN_LISTEN_FAILED when the port or the TLS files are unusable.
 */
export async function startTransportLanService(
  ctx: ServiceContext<TransportLanConfig>,
  overrides: Partial<LanLinkDriverOptions> = {},
): Promise<TransportLanServiceInstance> {
  const { bus, config, subjects, logger } = ctx;
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw lanError('LAN_LISTEN_FAILED', 'TLS needs both --tls-cert and --tls-key');
  }
  let tls: LanLinkDriverOptions['tls'];
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    try {
      const [cert, key, ca] = await Promise.all([
        readFile(config.tlsCert),
        readFile(config.tlsKey),
        config.tlsCa === undefined ? undefined : readFile(config.tlsCa),
      ]);
      tls = { cert, key, ...(ca === undefined ? {} : { ca }) };
    } catch (cause) {
      throw lanError('LAN_LISTEN_FAILED', 'cannot read the TLS files', {}, cause);
    }
  }
  const driver = await LanLinkDriver.start({
    port: config.port,
    host: config.host,
    peers: config.peer,
    maxConnections: config.maxConnections,
    keepaliveMs: config.keepaliveMs,
    idleTimeoutMs: config.idleTimeoutMs,
    ...(tls === undefined ? {} : { tls }),
    ...overrides,
  });
  const bridge = serveLinkDriver(bus, subjects, TRANSPORT, driver, {
    closeReasonCode: 'LAN_CLOSED',
  });
  driver.onDiagnostic((e) => {
    if (e.type === 'connection-closed') {
      logger.info({ remote: e.remoteAddress, code: e.code, reason: e.reason }, 'connection closed');
    } else if (e.type === 'refused') {
      logger.warn({ remote: e.remoteAddress, code: e.code }, 'connection refused');
    }
  });
  let discovery: MdnsDiscovery | undefined;
  if (config.discovery && driver.port !== undefined) {
    discovery = discoverPeers(driver, {
      ...(config.mdnsInterface === undefined ? {} : { interface: config.mdnsInterface }),
      onFound: (p) => logger.info({ peer: p.instanceId, host: p.host, port: p.port }, 'peer found'),
      onLost: (id) => logger.info({ peer: id }, 'peer lost'),
      onError: (error) => logger.warn({ err: error }, 'mDNS error'),
    });
  }
  await bus.flush();
  logger.info(
    { lanInstanceId: driver.instanceId, port: driver.port, discovery: config.discovery },
    'transport-lan ready',
  );
  return {
    driver,
    discovery,
    counters: bridge.counters,
    health: () => ({
      lanInstanceId: driver.instanceId,
      port: String(driver.port ?? ''),
      links: String(driver.links.length),
      connections: String(driver.connectionCount),
      peers: String(driver.peers.length),
      discovered: String(discovery?.peers.length ?? 0),
      refused: String(driver.counters.refused),
      queueDrops: String(bridge.counters.queueDrops),
    }),
    async stop() {
      await discovery?.close();
      await bridge.close();
      await driver.close();
    },
  };
}

/** The transport-lan service definition, started by its `main.ts` or composed by `lattice up`. */
export const transportLanService = defineService({
  name: TRANSPORT,
  version: VERSION,
  configSchema: transportLanConfigSchema,
  start: (ctx) => startTransportLanService(ctx),
});
