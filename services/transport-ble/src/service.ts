/**
 * The transport-ble service: Bluetooth LE links on the bus, as the link contract says.
 *
 * @remarks
 * A {@link BleLinkDriver} owns the radio; the multiplexer's `serveLinkDriver` puts its links on
 * the bus as the link contract says (link up/down with the link's capabilities — max frame =
 * MTU − 3, rough bandwidth —, frames in and out, `links` and `close-link` requests). Frames the
 * radio refuses wait in a per-link queue (at most `outQueueFrames`; beyond it they are dropped and
 * counted) until the link is writable again.
 *
 * Adapter state changes are published on `Subjects.event('transport-ble', 'adapter')` as a
 * `lattice.v1.HealthCheckResponse` whose `details` are the same facts health reports
 * (`adapter`, `central`, `peripheral`, `lastError`): the contract has no dedicated message yet.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { serveLinkDriver } from '@lattice/multiplexer';
import { v1 } from '@lattice/proto';
import { baseConfigSchema, defineService, type ServiceDefinition } from '@lattice/service';
import { BleLinkDriver, type BleStackLoaders, type BleStatus } from './ble-link-driver.js';
import { isShortPeerId } from './gatt.js';
import { defaultStackLoaders } from './stacks.js';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

/** The service's name on the bus. */
const SERVICE = 'transport-ble' as const;

/** Settings of the transport-ble service (flags and `LATTICE_*` variables). */
export const transportBleConfigSchema = baseConfigSchema.extend({
  bleShortId: z
    .string()
    .refine(isShortPeerId, 'must be 1-8 characters of [0-9A-Za-z_-]')
    .default(() => randomBytes(4).toString('hex'))
    .describe('short peer id advertised over BLE; the lower id of two peers dials'),
  bleRoles: z
    .enum(['central', 'peripheral', 'both'])
    .default('both')
    .describe('BLE roles: scan and dial (central), advertise and accept (peripheral), or both'),
  bleMaxConnections: z.coerce.number().int().min(1).max(16).default(4).describe('most BLE links'),
  bleBandwidthBytesPerS: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(1_000_000)
    .default(20_000)
    .describe('radio budget per link and direction, in ATT bytes (value + 3) per second'),
  bleRetryMs: z.coerce
    .number()
    .int()
    .min(100)
    .default(10_000)
    .describe('how often an unusable Bluetooth stack is retried'),
  bleOutQueueFrames: z.coerce
    .number()
    .int()
    .min(1)
    .default(1_024)
    .describe('frames waiting per link for the radio before further ones are dropped'),
});

/** The settings of {@link transportBleConfigSchema}. */
export type TransportBleConfig = z.infer<typeof transportBleConfigSchema>;

/** Picks the stacks for the configured roles (`main.ts` passes the real ones, tests fakes). */
export type StackChooser = (roles: {
  readonly central: boolean;
  readonly peripheral: boolean;
}) => BleStackLoaders;

/** The facts health and the adapter event report. */
export function adapterDetails(status: BleStatus): Record<string, string> {
  const roles = [status.central, status.peripheral].filter((s) => s !== 'disabled');
  const adapter = roles.includes('poweredOn') ? 'poweredOn' : (roles[0] ?? 'disabled');
  return {
    adapter,
    central: status.central,
    peripheral: status.peripheral,
    lastError: status.lastError,
    attempts: String(status.attempts),
  };
}

/** The transport-ble service definition over the stacks `chooseStacks` returns. */
export function createTransportBleService(
  chooseStacks: StackChooser,
): ServiceDefinition<TransportBleConfig> {
  return defineService({
    name: SERVICE,
    version: VERSION,
    configSchema: transportBleConfigSchema,
    async start({ bus, config, logger, subjects }) {
      const roles = {
        central: config.bleRoles !== 'peripheral',
        peripheral: config.bleRoles !== 'central',
      };
      const publishStatus = (status: BleStatus): void => {
        logger.info({ ble: status }, 'bluetooth adapter state');
        bus.publish(
          subjects.event(SERVICE, 'adapter'),
          v1.HealthCheckResponse.encode({
            service: SERVICE,
            version: VERSION,
            status: v1.ServingStatus.SERVING_STATUS_SERVING,
            details: adapterDetails(status),
          }).finish(),
        );
      };
      const driver = new BleLinkDriver({
        shortId: config.bleShortId,
        stacks: chooseStacks(roles),
        maxConnections: config.bleMaxConnections,
        bandwidthBytesPerS: config.bleBandwidthBytesPerS,
        retryMs: config.bleRetryMs,
        onStatus: publishStatus,
      });

      const bridge = serveLinkDriver(bus, subjects, SERVICE, driver, {
        maxQueuedFrames: config.bleOutQueueFrames,
        closeReasonCode: 'BLE_CLOSED',
        onLink: (event, linkId, detail) => logger.info({ linkId, detail }, `ble link ${event}`),
      });

      publishStatus(driver.status);
      driver.start();

      return {
        health() {
          return {
            ...adapterDetails(driver.status),
            shortId: config.bleShortId,
            links: String(driver.links.length),
            seenPeers: String(driver.seenPeers.length),
            framesIn: String(driver.counters.framesIn),
            framesOut: String(driver.counters.framesOut),
            droppedInbound: String(driver.counters.droppedMalformed + driver.counters.droppedFlood),
            droppedMalformed: String(driver.counters.droppedMalformed),
            droppedFlood: String(driver.counters.droppedFlood),
            writeErrors: String(driver.counters.writeErrors),
            droppedOutbound: String(bridge.counters.queueDrops + bridge.counters.tooLarge),
          };
        },
        async stop() {
          await bridge.close();
          await driver.close();
        },
      };
    },
  });
}

/** The transport-ble service with the platform's noble and bleno, loaded on first use. */
export const transportBleService = createTransportBleService(defaultStackLoaders);
