/**
 * The transport-usb service: USB serial link driver.
 *
 * @remarks
 * So far it is the service skeleton only: it starts on a bus and answers health. Its own logic
 * arrives with issue #11 (see docs/roadmap.md).
 */
import { baseConfigSchema, defineService } from '@lattice/service';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

/** Settings of the transport-usb service (flags and `LATTICE_*` variables). */
export const transportUsbConfigSchema = baseConfigSchema;

/** The transport-usb service definition, started by its `main.ts` or composed by `lattice up`. */
export const transportUsbService = defineService({
  name: 'transport-usb',
  version: VERSION,
  configSchema: transportUsbConfigSchema,
  async start() {
    return {
      async stop() {
        // nothing to release yet
      },
    };
  },
});
