/**
 * The transport-lan service: a {@link LanLinkDriver} (and mDNS discovery) published on the bus as
 * the link contract the multiplexer's `BusLinkDriver` consumes.
 *
 * @remarks
 * Bus surface, as `services/multiplexer/src/bus-link-driver.ts` expects from a transport:
 * - a link up is a `lattice.v1.LinkUp` (link id, `transport: 'lan'`, capabilities, remote
 *   address) on `Subjects.linkEvent('transport-lan', 'up')`; a link down a `LinkDown` (with the
 *   reason code) on `linkEvent('transport-lan', 'down')`;
 * - each frame received on a link is a `LinkFrame` on `Subjects.framesIn('transport-lan', id)`;
 * - frames to send arrive as `LinkFrame`s on `Subjects.allFramesOut('transport-lan')`.
 *
 * The bus has no backpressure, so frames the socket refuses wait in a per-link queue until
 * `writable`; past `maxQueuedBytes` (8 MiB) further frames are dropped and counted — the
 * multiplexer above retransmits what is not acknowledged, and its in-flight cap keeps the queue
 * short in normal operation. Health details: instance id, port, links, connections, counters.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Bus, Subscription } from '@lattice/bus';
import { asLinkId, type LinkId } from '@lattice/multiplexer';
import { v1, type Subjects } from '@lattice/proto';
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

/** Counters of the service's bus side. */
export interface TransportLanCounters {
  framesToBus: number;
  framesFromBus: number;
  /** Frames from the bus for a link that is not up. */
  unknownLink: number;
  /** Frames dropped because a link's queue was over its cap. */
  queueDrops: number;
  undecodable: number;
}

/** A running transport-lan service, with its driver. */
export interface TransportLanServiceInstance extends ServiceInstance {
  readonly driver: LanLinkDriver;
  readonly discovery: MdnsDiscovery | undefined;
  readonly counters: TransportLanCounters;
}

/** Bytes a link may queue while its socket is busy before frames are dropped. */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

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
  const bridge = new BusBridge(bus, subjects, driver);
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

/** Moves a driver's links and frames to and from the bus; see the module comment. */
class BusBridge {
  readonly counters: TransportLanCounters = {
    framesToBus: 0,
    framesFromBus: 0,
    unknownLink: 0,
    queueDrops: 0,
    undecodable: 0,
  };
  readonly #bus: Bus;
  readonly #subjects: Subjects;
  readonly #driver: LanLinkDriver;
  readonly #queues = new Map<LinkId, { frames: Uint8Array[]; bytes: number }>();
  readonly #sub: Subscription;
  readonly #loop: Promise<void>;
  readonly #stopListening: () => void;

  constructor(bus: Bus, subjects: Subjects, driver: LanLinkDriver) {
    this.#bus = bus;
    this.#subjects = subjects;
    this.#driver = driver;
    this.#stopListening = driver.listen((e) => {
      switch (e.type) {
        case 'up':
          this.#queues.set(e.link.id, { frames: [], bytes: 0 });
          bus.publish(
            subjects.linkEvent(TRANSPORT, 'up'),
            v1.LinkUp.encode({
              linkId: e.link.id,
              transport: e.link.transport,
              capabilities: e.link.capabilities,
              remoteAddress: e.link.remoteAddress,
            }).finish(),
          );
          return;
        case 'down':
          this.#queues.delete(e.linkId);
          bus.publish(
            subjects.linkEvent(TRANSPORT, 'down'),
            v1.LinkDown.encode({
              linkId: e.linkId,
              transport: 'lan',
              reasonCode: e.reasonCode,
              reason: e.reason,
            }).finish(),
          );
          return;
        case 'frame':
          this.counters.framesToBus++;
          bus.publish(
            subjects.framesIn(TRANSPORT, e.linkId),
            v1.LinkFrame.encode({ linkId: e.linkId, data: e.data }).finish(),
          );
          return;
        case 'writable':
          this.#flush(e.linkId);
          return;
      }
    });
    const sub = bus.subscribe(subjects.allFramesOut(TRANSPORT), { maxPending: 1_000_000 });
    this.#sub = sub;
    this.#loop = (async () => {
      for await (const m of sub) this.#onOut(m.data);
    })();
  }

  /** Stops, reporting every link still up as down (the driver reports nothing once closing). */
  async close(): Promise<void> {
    this.#stopListening();
    for (const linkId of this.#queues.keys()) {
      this.#bus.publish(
        this.#subjects.linkEvent(TRANSPORT, 'down'),
        v1.LinkDown.encode({
          linkId,
          transport: 'lan',
          reasonCode: 'LAN_CLOSED',
          reason: 'transport stopping',
        }).finish(),
      );
    }
    this.#queues.clear();
    this.#sub.unsubscribe();
    await this.#loop;
  }

  #onOut(data: Uint8Array): void {
    let frame: v1.LinkFrame;
    try {
      frame = v1.LinkFrame.decode(data);
    } catch {
      // Not a LinkFrame: counted and skipped, as the multiplexer's bus driver does.
      this.counters.undecodable++;
      return;
    }
    const id = asLinkId(frame.linkId);
    const q = this.#queues.get(id);
    if (q === undefined) {
      this.counters.unknownLink++;
      return;
    }
    this.counters.framesFromBus++;
    if (q.frames.length === 0) {
      try {
        if (this.#driver.send(id, frame.data)) return;
      } catch {
        // MUX_FRAME_TOO_LARGE: the multiplexer sent more than the link's advertised size; such a
        // frame can never go, so it is dropped like an over-cap one.
        this.counters.queueDrops++;
        return;
      }
    }
    if (q.bytes + frame.data.length > MAX_QUEUED_BYTES) {
      this.counters.queueDrops++;
      return;
    }
    q.frames.push(frame.data);
    q.bytes += frame.data.length;
  }

  #flush(id: LinkId): void {
    const q = this.#queues.get(id);
    if (q === undefined) return;
    while (q.frames.length > 0) {
      const f = q.frames[0] as Uint8Array;
      if (!this.#driver.send(id, f)) return;
      q.frames.shift();
      q.bytes -= f.length;
    }
  }
}

/** The transport-lan service definition, started by its `main.ts` or composed by `lattice up`. */
export const transportLanService = defineService({
  name: TRANSPORT,
  version: VERSION,
  configSchema: transportLanConfigSchema,
  start: (ctx) => startTransportLanService(ctx),
});
