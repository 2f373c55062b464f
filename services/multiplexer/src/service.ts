/**
 * The multiplexer service: wires a {@link Multiplexer} to the transports' links over the bus.
 *
 * @remarks
 * Bus surface (kept small on purpose):
 * - consumes the link contract of every transport in `--transports` (see `bus-link-driver.ts`);
 * - answers `Subjects.request('multiplexer', 'presence')` with a `lattice.v1.MuxPresence`;
 * - publishes the same report on `Subjects.event('multiplexer', 'presence')` every
 *   `--presence-interval-ms` (0 turns it off) for the gateway's mesh graph;
 * - health details: peer id, peers and links connected.
 *
 * - with `--bus-messages` (the default), the message API of `bus-api.ts`: a merge service in
 *   another process sends and receives sync messages through it.
 *
 * In one process (`lattice up`) the merge service uses the returned {@link Multiplexer} directly
 * and the composition turns the bus message API off. The peer identity comes from
 * `--identity-seed` (64 hex digits, the ed25519 seed) or `--identity-file` (created when missing,
 * shared with the merge service of the same peer); without either, a new identity is made at
 * each start. With `--mesh-key-file`, links to peers that do not hold the same mesh key are
 * refused (`MUX_NOT_IN_MESH`, see `handshake.ts`). `--authority-keys` and `--certificate-file`
 * admit certified peers (`certificate.ts`); `SIGHUP` reads the certificate file again.
 */
import { z } from 'zod';
import { serve, type Server } from '@lattice/bus';
import {
  baseConfigSchema,
  defineService,
  type ServiceContext,
  type ServiceInstance,
} from '@lattice/service';
import { SERVICE_NAMES, v1, type ServiceName } from '@lattice/proto';
import { serveMultiplexerMessages } from './bus-api.js';
import { BusLinkDriver } from './bus-link-driver.js';
import {
  certificateFromFile,
  identitySeedFromFile,
  meshKeyFromFile,
  parseAuthorityKeys,
  readRevocationLists,
  writeRevocationLists,
} from './identity-file.js';
import { createIdentity } from './handshake.js';
import { Multiplexer, type MultiplexerOptions } from './multiplexer.js';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

const text = z.string();
const isServiceName = (t: string): t is ServiceName =>
  (SERVICE_NAMES as readonly string[]).includes(t);
const split = (s: string): string[] =>
  s
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);

/** Settings of the multiplexer service (flags and `LATTICE_*` variables). */
export const multiplexerConfigSchema = baseConfigSchema.extend({
  transports: text
    .default('transport-lan,transport-usb,transport-ble,gateway')
    .refine(
      (s) => split(s).every(isServiceName),
      `must be service names: ${SERVICE_NAMES.join(', ')}`,
    )
    .transform((s) => split(s) as ServiceName[])
    .describe('comma-separated services whose links the multiplexer uses'),
  identitySeed: text
    .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits')
    .optional()
    .describe('ed25519 seed of the peer identity (hex); overrides --identity-file'),
  identityFile: text
    .min(1)
    .optional()
    .describe(
      'file holding the peer identity, created when missing; share it with the merge service ' +
        '(a new identity each start when neither this nor --identity-seed is given)',
    ),
  meshKeyFile: text
    .min(1)
    .optional()
    .describe(
      "file holding the mesh's shared key (hex, e.g. `openssl rand -hex 32`): only peers with " +
        'the same key get a link (apps at the gateway get in with their API key)',
    ),
  authorityKeys: text
    .optional()
    .describe(
      'public keys (64 hex digits, comma-separated) of authorities whose identity certificates ' +
        'admit a peer, under the certificate permissions (`lattice identity`)',
    ),
  certificateFile: text
    .min(1)
    .optional()
    .describe("this peer's identity certificate (`lattice identity issue`), shown on every link"),
  revocationsFile: text
    .min(1)
    .optional()
    .describe(
      'revocation lists (`lattice identity revoke`): their peers are refused and disconnected; ' +
        'SIGHUP reads it again, and later lists learnt from peers are written to it',
    ),
  busMessages: z
    .enum(['true', 'false'])
    .default('true')
    .transform((s) => s === 'true')
    .describe('serve messages on the bus for a merge service in another process'),
  presenceIntervalMs: text
    .regex(/^\d+$/, 'must be a whole number of milliseconds')
    .default('5000')
    .transform(Number)
    .describe('how often presence is published (ms; 0: never)'),
});

/** The settings of {@link multiplexerConfigSchema}. */
export type MultiplexerConfig = ReturnType<typeof multiplexerConfigSchema.parse>;

/** A running multiplexer service, with its in-process API. */
export interface MultiplexerServiceInstance extends ServiceInstance {
  readonly multiplexer: Multiplexer;
  readonly driver: BusLinkDriver;
}

/**
 * Starts the multiplexer on a bus: subscribes to the transports, serves presence.
 * @param options overrides for the {@link Multiplexer} (tests pass their own clock or identity).
 */
export async function startMultiplexerService(
  ctx: ServiceContext<MultiplexerConfig>,
  options: Partial<MultiplexerOptions> = {},
): Promise<MultiplexerServiceInstance> {
  const { bus, config, subjects, logger } = ctx;
  const identity = options.identity ?? createIdentity(configuredSeed(config));
  const meshKey =
    options.meshKey ??
    (config.meshKeyFile === undefined ? undefined : meshKeyFromFile(config.meshKeyFile));
  const authorities =
    options.authorities ??
    (config.authorityKeys === undefined ? undefined : parseAuthorityKeys(config.authorityKeys));
  const certificate =
    options.certificate ??
    (config.certificateFile === undefined
      ? undefined
      : certificateFromFile(config.certificateFile, identity.peerId));
  if (config.revocationsFile !== undefined && (authorities ?? []).length === 0) {
    throw new Error('--revocations-file needs --authority-keys (the lists are theirs)');
  }
  const multiplexer = new Multiplexer({ ...options, identity, meshKey, authorities, certificate });
  reloadRevocationsFile(multiplexer, config);
  const driver = new BusLinkDriver({ bus, subjects, transports: config.transports });
  await driver.ready();
  const detach = multiplexer.attach(driver);
  multiplexer.on((event) => {
    if (event.type === 'link-refused') {
      logger.warn(
        {
          linkId: event.linkId,
          code: event.error.code,
          reason: event.error.message,
          local: event.local,
        },
        'link refused',
      );
    } else if (event.type === 'peer-up' || event.type === 'peer-down') {
      logger.info({ peerId: event.peerId }, event.type);
    } else if (event.type === 'revocations-adopted' && event.from !== undefined) {
      const { authority, issuedAtMs, peerIds } = event.revocations;
      logger.warn(
        { authority, issuedAt: new Date(issuedAtMs).toISOString(), revoked: peerIds.length },
        `revocation list learnt from ${event.from}`,
      );
      if (config.revocationsFile === undefined) return;
      try {
        writeRevocationLists(config.revocationsFile, multiplexer.revocationLists());
      } catch (err) {
        logger.error(
          { err, revocationsFile: config.revocationsFile },
          'revocation list not saved: it holds until the process stops',
        );
      }
    }
  });
  const messages = config.busMessages
    ? serveMultiplexerMessages(bus, subjects, multiplexer)
    : undefined;
  const presence: Server = serve(
    bus,
    subjects.request('multiplexer', 'presence'),
    () => v1.MuxPresence.encode(multiplexer.presence()).finish(),
    { service: 'multiplexer' },
  );
  const publish = (): void =>
    bus.publish(
      subjects.event('multiplexer', 'presence'),
      v1.MuxPresence.encode(multiplexer.presence()).finish(),
    );
  const interval =
    config.presenceIntervalMs > 0 ? setInterval(publish, config.presenceIntervalMs) : undefined;
  const onHangup = (): void => {
    if (config.certificateFile !== undefined && options.certificate === undefined) {
      try {
        reloadCertificateFile(multiplexer, config);
        logger.info({ certificateFile: config.certificateFile }, 'certificate reloaded');
      } catch (err) {
        logger.error(
          { err, certificateFile: config.certificateFile },
          'certificate not reloaded: keeping the old one',
        );
      }
    }
    if (config.revocationsFile !== undefined) {
      try {
        const n = reloadRevocationsFile(multiplexer, config);
        logger.info(
          { revocationsFile: config.revocationsFile, revoked: n },
          'revocations reloaded',
        );
      } catch (err) {
        logger.error(
          { err, revocationsFile: config.revocationsFile },
          'revocations not reloaded: keeping the old list',
        );
      }
    }
  };
  if (
    (config.certificateFile !== undefined && options.certificate === undefined) ||
    config.revocationsFile !== undefined
  )
    process.on('SIGHUP', onHangup);
  interval?.unref();
  logger.info(
    {
      peerId: multiplexer.peerId,
      transports: config.transports,
      meshKey: meshKey !== undefined,
      authorities: authorities?.length ?? 0,
      certificate: certificate !== undefined,
    },
    'multiplexer ready',
  );
  return {
    multiplexer,
    driver,
    health: () => {
      const peers = multiplexer.peers();
      return {
        peerId: multiplexer.peerId,
        peers: String(peers.filter((p) => p.connected).length),
        links: String(peers.reduce((n, p) => n + p.links.length, 0)),
      };
    },
    async stop() {
      process.off('SIGHUP', onHangup);
      if (interval !== undefined) clearInterval(interval);
      await presence.stop();
      await messages?.stop();
      detach();
      await multiplexer.close();
      await driver.close();
    },
  };
}

/**
 * Reads the certificate file again and shows it on new links (`SIGHUP`: renew a certificate
 * without a restart). A bad file (unreadable, not this peer's, expired) changes nothing.
 * @throws the file's error.
 */
export function reloadCertificateFile(multiplexer: Multiplexer, config: MultiplexerConfig): void {
  if (config.certificateFile === undefined) return;
  multiplexer.setCertificate(certificateFromFile(config.certificateFile, multiplexer.peerId));
}

/**
 * Reads the revocation lists again (`SIGHUP`) and adopts those later than the ones held: their
 * peers are refused and their links closed, and the lists go on to the other peers. The file is
 * read whole before anything is adopted; a list that does not verify stops the reload there.
 * @returns how many peers the lists held afterwards revoke.
 * @throws the file's error, or MUX_CERTIFICATE_INVALID for a list not signed by a trusted
 * authority.
 */
export function reloadRevocationsFile(multiplexer: Multiplexer, config: MultiplexerConfig): number {
  if (config.revocationsFile === undefined) return 0;
  for (const list of readRevocationLists(config.revocationsFile))
    multiplexer.adoptRevocations(list);
  return multiplexer.revokedPeers;
}

/** The multiplexer service definition, started by its `main.ts` or composed by `lattice up`. */
export const multiplexerService = defineService({
  name: 'multiplexer',
  version: VERSION,
  configSchema: multiplexerConfigSchema,
  start: (ctx) => startMultiplexerService(ctx),
});

function configuredSeed(config: MultiplexerConfig): Uint8Array | undefined {
  if (config.identitySeed !== undefined) return Buffer.from(config.identitySeed, 'hex');
  if (config.identityFile !== undefined) return identitySeedFromFile(config.identityFile);
  return undefined;
}
