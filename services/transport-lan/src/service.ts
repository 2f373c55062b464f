/**
 * The transport-lan service: TCP link driver with discovery.
 *
 * @remarks
 * So far it is the service skeleton only: it starts on a bus and answers health. Its own logic
 * arrives with issue #8 (see docs/roadmap.md).
 */
import { baseConfigSchema, defineService } from '@lattice/service';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

/** Settings of the transport-lan service (flags and `LATTICE_*` variables). */
export const transportLanConfigSchema = baseConfigSchema;

/** The transport-lan service definition, started by its `main.ts` or composed by `lattice up`. */
export const transportLanService = defineService({
  name: 'transport-lan',
  version: VERSION,
  configSchema: transportLanConfigSchema,
  async start() {
    return {
      async stop() {
        // nothing to release yet
      },
    };
  },
});
