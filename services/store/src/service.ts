/**
 * The store service: RocksDB document store, indexes and change log.
 *
 * @remarks
 * So far it is the service skeleton only: it starts on a bus and answers health. Its own logic
 * arrives with issue #5 (see docs/roadmap.md).
 */
import { baseConfigSchema, defineService } from '@lattice/service';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

/** Settings of the store service (flags and `LATTICE_*` variables). */
export const storeConfigSchema = baseConfigSchema;

/** The store service definition, started by its `main.ts` or composed by `lattice up`. */
export const storeService = defineService({
  name: 'store',
  version: VERSION,
  configSchema: storeConfigSchema,
  async start() {
    return {
      async stop() {
        // nothing to release yet
      },
    };
  },
});
