/**
 * The transport-usb service: serial links (USB-serial adapters, CDC-ACM ports) on the bus.
 *
 * @remarks
 * Bus surface: the link contract, served by the multiplexer's `serveLinkDriver` (link up/down,
 * frames in and out — frames the port refuses wait in a bounded per-link queue until `writable` —,
 * `links` and `close-link` requests). Health details: ports, links up, frames dropped by the CRC.
 */
import { z } from 'zod';
import { serveLinkDriver } from '@lattice/multiplexer';
import {
  baseConfigSchema,
  defineService,
  type ServiceContext,
  type ServiceInstance,
} from '@lattice/service';
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

  const bridge = serveLinkDriver(bus, subjects, SERVICE, driver, {
    closeReasonCode: 'USB_CLOSED',
    onLink: (event, linkId, detail) => logger.info({ linkId, detail }, `link ${event}`),
  });
  await bus.flush();
  logger.info({ ports: config.ports, baud: config.baud }, 'transport-usb ready');

  return {
    driver,
    health: () => ({
      ports: String(driver.counters.length),
      links: String(driver.links.length),
      framesCorrupt: String(driver.counters.reduce((n, c) => n + c.corrupt + c.oversized, 0)),
      framesOutDropped: String(
        bridge.counters.queueDrops + bridge.counters.tooLarge + bridge.counters.unknownLink,
      ),
    }),
    async stop() {
      await bridge.close();
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
