/**
 * The merge service: CRDT merge engine and peer-to-peer sync protocol.
 *
 * @remarks
 * So far it is the service skeleton only: it starts on a bus and answers health. Its own logic
 * arrives with issue #6 (see docs/roadmap.md).
 */
import { baseConfigSchema, defineService } from '@lattice/service';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

/** Settings of the merge service (flags and `LATTICE_*` variables). */
export const mergeConfigSchema = baseConfigSchema;

/** The merge service definition, started by its `main.ts` or composed by `lattice up`. */
export const mergeService = defineService({
  name: 'merge',
  version: VERSION,
  configSchema: mergeConfigSchema,
  async start() {
    return {
      async stop() {
        // nothing to release yet
      },
    };
  },
});
