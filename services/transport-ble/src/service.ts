/**
 * The transport-ble service: Bluetooth LE links on the bus, as the link contract says.
 *
 * @remarks
 * A {@link BleLinkDriver} owns the radio; this module moves its events over the bus exactly as
 * `BusLinkDriver` (in `@lattice/multiplexer`) expects from a transport:
 *
 * - link up/down → `lattice.v1.LinkUp` / `LinkDown` on `Subjects.linkEvent('transport-ble', …)`,
 *   with the link's capabilities (max frame = MTU − 3, rough bandwidth);
 * - a received frame → `lattice.v1.LinkFrame` on `Subjects.framesIn('transport-ble', linkId)`;
 * - `LinkFrame`s on `Subjects.allFramesOut('transport-ble')` → sent on the link. The bus side
 *   never waits, so frames the radio refuses wait in a per-link queue (at most
 *   `outQueueFrames`; beyond it they are dropped and counted) until the link is writable again.
 *
 * Adapter state changes are published on `Subjects.event('transport-ble', 'adapter')` as a
 * `lattice.v1.HealthCheckResponse` whose `details` are the same facts health reports
 * (`adapter`, `central`, `peripheral`, `lastError`): the contract has no dedicated message yet.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Subscription } from '@lattice/bus';
import { hasCode } from '@lattice/errors';
import type { LinkEvent, LinkId } from '@lattice/multiplexer';
import { asLinkId } from '@lattice/multiplexer';
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
      const outQueues = new Map<LinkId, Uint8Array[]>();
      const counters = { outDropped: 0, outTooLarge: 0, undecodable: 0, unknownLink: 0 };
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

      const drain = (linkId: LinkId): void => {
        const queue = outQueues.get(linkId);
        while (queue !== undefined && queue.length > 0) {
          const head = queue[0] as Uint8Array;
          if (!driver.send(linkId, head)) return;
          queue.shift();
        }
      };
      const onEvent = (e: LinkEvent): void => {
        switch (e.type) {
          case 'up':
            outQueues.set(e.link.id, []);
            bus.publish(
              subjects.linkEvent(SERVICE, 'up'),
              v1.LinkUp.encode({
                linkId: e.link.id,
                transport: e.link.transport,
                capabilities: e.link.capabilities,
                remoteAddress: e.link.remoteAddress,
              }).finish(),
            );
            logger.info({ link: e.link }, 'ble link up');
            break;
          case 'down':
            outQueues.delete(e.linkId);
            bus.publish(
              subjects.linkEvent(SERVICE, 'down'),
              v1.LinkDown.encode({
                linkId: e.linkId,
                transport: 'ble',
                reasonCode: e.reasonCode,
                reason: e.reason,
              }).finish(),
            );
            logger.info({ linkId: e.linkId, reason: e.reason }, 'ble link down');
            break;
          case 'frame':
            bus.publish(
              subjects.framesIn(SERVICE, e.linkId),
              v1.LinkFrame.encode({ linkId: e.linkId, data: e.data }).finish(),
            );
            break;
          case 'writable':
            drain(e.linkId);
            break;
        }
      };
      const stopListening = driver.listen(onEvent);

      const onFrameOut = (data: Uint8Array): void => {
        let frame: v1.LinkFrame;
        try {
          frame = v1.LinkFrame.decode(data);
        } catch {
          // Not a LinkFrame: counted and skipped, never fatal (the bus is shared).
          counters.undecodable++;
          return;
        }
        const linkId = asLinkId(frame.linkId);
        const queue = outQueues.get(linkId);
        if (queue === undefined) {
          counters.unknownLink++;
          return;
        }
        const bytes = new Uint8Array(frame.data);
        if (queue.length === 0) {
          try {
            if (driver.send(linkId, bytes)) return;
          } catch (error) {
            if (!hasCode(error, 'MUX_FRAME_TOO_LARGE')) throw error;
            counters.outTooLarge++;
            return;
          }
        }
        if (queue.length >= config.bleOutQueueFrames) {
          counters.outDropped++;
          return;
        }
        queue.push(bytes);
      };
      const outbound: Subscription = bus.subscribe(subjects.allFramesOut(SERVICE), {
        maxPending: 1_000_000,
      });
      const loop = (async () => {
        for await (const m of outbound) onFrameOut(m.data);
      })();

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
            droppedOutbound: String(counters.outDropped + counters.outTooLarge),
          };
        },
        async stop() {
          outbound.unsubscribe();
          await loop;
          stopListening();
          for (const link of driver.links) {
            bus.publish(
              subjects.linkEvent(SERVICE, 'down'),
              v1.LinkDown.encode({
                linkId: link.id,
                transport: 'ble',
                reasonCode: 'BLE_CLOSED',
                reason: 'service stopped',
              }).finish(),
            );
          }
          await driver.close();
        },
      };
    },
  });
}

/** The transport-ble service with the platform's noble and bleno, loaded on first use. */
export const transportBleService = createTransportBleService(defaultStackLoaders);
