/**
 * The multiplexer service: fragmentation, reassembly and failover between links.
 *
 * @remarks
 * So far it is the service skeleton only: it starts on a bus and answers health. Its own logic
 * arrives with issue #7 (see docs/roadmap.md).
 */
import { baseConfigSchema, defineService } from '@lattice/service';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

/** Settings of the multiplexer service (flags and `LATTICE_*` variables). */
export const multiplexerConfigSchema = baseConfigSchema;

/** The multiplexer service definition, started by its `main.ts` or composed by `lattice up`. */
export const multiplexerService = defineService({
  name: 'multiplexer',
  version: VERSION,
  configSchema: multiplexerConfigSchema,
  async start() {
    return {
      async stop() {
        // nothing to release yet
      },
    };
  },
});
