/**
 * The transport-ble service: Bluetooth LE link driver.
 *
 * @remarks
 * So far it is the service skeleton only: it starts on a bus and answers health. Its own logic
 * arrives with issue #12 (see docs/roadmap.md).
 */
import { baseConfigSchema, defineService } from '@lattice/service';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

/** Settings of the transport-ble service (flags and `LATTICE_*` variables). */
export const transportBleConfigSchema = baseConfigSchema;

/** The transport-ble service definition, started by its `main.ts` or composed by `lattice up`. */
export const transportBleService = defineService({
  name: 'transport-ble',
  version: VERSION,
  configSchema: transportBleConfigSchema,
  async start() {
    return {
      async stop() {
        // nothing to release yet
      },
    };
  },
});
