/**
 * The transport-usb service: serial links (USB-serial adapters, CDC-ACM ports) on the bus.
 *
 * @remarks
 * Bus surface — the transport side of the link contract that `BusLinkDriver` in
 * `@lattice/multiplexer` consumes:
 * - publishes `lattice.v1.LinkUp` on `Subjects.linkEvent('transport-usb', 'up')` and
 *   `lattice.v1.LinkDown` on `Subjects.linkEvent('transport-usb', 'down')`;
 * - publishes each received frame as a `lattice.v1.LinkFrame` on
 *   `Subjects.framesIn('transport-usb', linkId)`;
 * - sends the `LinkFrame`s published on `Subjects.allFramesOut('transport-usb')`. The bus side
 *   always takes a frame, so frames the port refuses (over its high-water mark) wait in a
 *   per-link queue until `writable`; the multiplexer's in-flight cap bounds that queue.
 * - health details: ports, links up, frames dropped by the CRC.
 */
import { z } from 'zod';
import type { Subscription } from '@lattice/bus';
import { asLinkId, type LinkEvent, type LinkId } from '@lattice/multiplexer';
import { v1 } from '@lattice/proto';
import {
  baseConfigSchema,
  defineService,
  type ServiceContext,
  type ServiceInstance,
} from '@lattice/service';
import { hasCode } from '@lattice/errors';
import { SerialLinkDriver, type SerialLinkDriverOptions } from './serial-link-driver.js';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

const SERVICE = 'transport-usb';

const split = (s: string): string[] =>
  s
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
const whole = (what: string) =>
  z.string().regex(/^\d+$/, `must be a whole number of ${what}`).transform(Number);
const flag = z
  .enum(['true', 'false'])
  .default('false')
  .transform((v) => v === 'true');

/** Settings of the transport-usb service (flags and `LATTICE_*` variables). */
export const transportUsbConfigSchema = baseConfigSchema.extend({
  ports: z
    .string()
    .default('')
    .transform(split)
    .describe('comma-separated serial paths to open (/dev/ttyUSB0,/dev/ttyACM0)'),
  baud: whole('bits per second')
    .default(115_200)
    .refine((n) => n > 0, 'must be positive')
    .describe('line speed in baud'),
  rtscts: flag.describe('RTS/CTS hardware flow control (true/false)'),
  watch: flag.describe('also open every USB serial port that appears (true/false)'),
  keepaliveMs: whole('milliseconds').default(1_000).describe('keepalive interval (ms)'),
  silenceMs: whole('milliseconds')
    .default(3_500)
    .describe('a line silent this long is reported down (ms)'),
});

/** The settings of {@link transportUsbConfigSchema}. */
export type TransportUsbConfig = ReturnType<typeof transportUsbConfigSchema.parse>;

/** A running transport-usb service, with its driver for tests and tools. */
export interface TransportUsbServiceInstance extends ServiceInstance {
  readonly driver: SerialLinkDriver;
}

/**
 * Starts the serial driver and wires it to the bus; see the module comment.
 * @param options overrides for the {@link SerialLinkDriver} (tests shorten timers).
 */
export async function startTransportUsbService(
  ctx: ServiceContext<TransportUsbConfig>,
  options: Partial<SerialLinkDriverOptions> = {},
): Promise<TransportUsbServiceInstance> {
  const { bus, config, subjects, logger } = ctx;
  const outbox = new Map<LinkId, Uint8Array[]>();
  let dropped = 0;
  const driver = new SerialLinkDriver({
    ports: config.ports,
    baudRate: config.baud,
    rtscts: config.rtscts,
    watch: config.watch,
    keepaliveMs: config.keepaliveMs,
    silenceMs: config.silenceMs,
    name: SERVICE,
    onError: (error, path) => logger.warn({ code: error.code, path }, error.message),
    ...options,
  });

  const flush = (linkId: LinkId): void => {
    const queue = outbox.get(linkId);
    while (queue !== undefined && queue.length > 0) {
      if (!driver.send(linkId, queue[0] as Uint8Array)) return;
      queue.shift();
    }
  };
  const onEvent = (event: LinkEvent): void => {
    switch (event.type) {
      case 'up': {
        const l = event.link;
        outbox.set(l.id, []);
        bus.publish(
          subjects.linkEvent(SERVICE, 'up'),
          v1.LinkUp.encode({
            linkId: l.id,
            transport: l.transport,
            capabilities: l.capabilities,
            remoteAddress: l.remoteAddress,
          }).finish(),
        );
        logger.info({ linkId: l.id, path: l.remoteAddress }, 'link up');
        break;
      }
      case 'down':
        outbox.delete(event.linkId);
        bus.publish(
          subjects.linkEvent(SERVICE, 'down'),
          v1.LinkDown.encode({
            linkId: event.linkId,
            transport: 'usb',
            reasonCode: event.reasonCode,
            reason: event.reason,
          }).finish(),
        );
        logger.info({ linkId: event.linkId, code: event.reasonCode }, 'link down');
        break;
      case 'frame':
        bus.publish(
          subjects.framesIn(SERVICE, event.linkId),
          v1.LinkFrame.encode({ linkId: event.linkId, data: event.data }).finish(),
        );
        break;
      case 'writable':
        flush(event.linkId);
        break;
    }
  };

  const sub: Subscription = bus.subscribe(subjects.allFramesOut(SERVICE), {
    maxPending: 1_000_000,
  });
  const loop = (async () => {
    for await (const m of sub) {
      let frame: v1.LinkFrame;
      try {
        frame = v1.LinkFrame.decode(m.data);
      } catch {
        // Not a LinkFrame: counted and skipped, like a malformed frame on the line.
        dropped++;
        continue;
      }
      const linkId = asLinkId(frame.linkId);
      const queue = outbox.get(linkId);
      if (queue === undefined) {
        dropped++; // the link is down: the multiplexer resends on another link or later
        continue;
      }
      const data = new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength);
      try {
        if (queue.length > 0 || !driver.send(linkId, data)) queue.push(data);
      } catch (error) {
        // A frame over the link's advertised max is the sender's bug: drop it, keep serving.
        if (!hasCode(error, 'MUX_FRAME_TOO_LARGE')) throw error;
        dropped++;
        logger.warn({ linkId, bytes: data.length }, 'frame over the link maximum dropped');
      }
    }
  })();
  await bus.flush();
  const stopListening = driver.listen(onEvent);
  logger.info({ ports: config.ports, baud: config.baud }, 'transport-usb ready');

  return {
    driver,
    health: () => ({
      ports: String(driver.counters.length),
      links: String(driver.links.length),
      framesCorrupt: String(driver.counters.reduce((n, c) => n + c.corrupt + c.oversized, 0)),
      framesOutDropped: String(dropped),
    }),
    async stop() {
      stopListening();
      sub.unsubscribe();
      await loop;
      await driver.close();
    },
  };
}

/** The transport-usb service definition, started by its `main.ts` or composed by `lattice up`. */
export const transportUsbService = defineService({
  name: SERVICE,
  version: VERSION,
  configSchema: transportUsbConfigSchema,
  start: async (ctx) => startTransportUsbService(ctx),
});
