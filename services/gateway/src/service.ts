/**
 * The gateway service: gRPC DQL API, Ditto-compatible HTTP API, WebSocket sync endpoint.
 *
 * @remarks
 * So far it is the service skeleton only: it starts on a bus and answers health. Its own logic
 * arrives with issue #9 (see docs/roadmap.md).
 */
import { baseConfigSchema, defineService } from '@lattice/service';

/** Version reported in health replies. */
export const VERSION = '0.1.0';

/** Settings of the gateway service (flags and `LATTICE_*` variables). */
export const gatewayConfigSchema = baseConfigSchema;

/** The gateway service definition, started by its `main.ts` or composed by `lattice up`. */
export const gatewayService = defineService({
  name: 'gateway',
  version: VERSION,
  configSchema: gatewayConfigSchema,
  async start() {
    return {
      async stop() {
        // nothing to release yet
      },
    };
  },
});
