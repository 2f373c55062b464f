/**
 * The skeleton every Lattice service stands on: a definition (`defineService`), a runtime that
 * answers health on the bus (`startService`), and a process runner for `main.ts` (`runMain`) that
 * reads config, connects NATS, sets up telemetry, and shuts down gracefully on SIGINT/SIGTERM.
 */
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { z } from 'zod';
import { NatsBus, serve, type Bus, type Server } from '@lattice/bus';
import { hasCode } from '@lattice/errors';
import { Subjects, v1, type ServiceName } from '@lattice/proto';
import { setupTelemetry } from '@lattice/telemetry';
import { configHelp, loadConfig, type BaseConfig } from './config.js';

/** What a service's `start` receives. */
export interface ServiceContext<C extends BaseConfig = BaseConfig> {
  readonly bus: Bus;
  readonly config: C;
  readonly logger: Logger;
  readonly subjects: Subjects;
}

/** A started service's handle. */
export interface ServiceInstance {
  /** Facts for the health reply (`adapter: unsupported`, `links: 3`). */
  health?(): Readonly<Record<string, string>>;
  /** Stops taking work, finishes what is in flight, closes resources. */
  stop(): Promise<void>;
}

/** A service: its name, its config schema and how it starts. */
export interface ServiceDefinition<C extends BaseConfig = BaseConfig> {
  readonly name: ServiceName;
  readonly version: string;
  readonly configSchema: z.ZodType<C>;
  start(ctx: ServiceContext<C>): Promise<ServiceInstance>;
}

/** Declares a service (identity function that fixes the types). */
export function defineService<C extends BaseConfig>(
  definition: ServiceDefinition<C>,
): ServiceDefinition<C> {
  return definition;
}

/** A service running on a bus, answering health. */
export interface RunningService {
  readonly name: ServiceName;
  stop(): Promise<void>;
}

/** Starts a service on a bus and answers its health subject. */
export async function startService<C extends BaseConfig>(
  definition: ServiceDefinition<C>,
  ctx: ServiceContext<C>,
): Promise<RunningService> {
  const startedAt = Date.now();
  const instanceId = randomUUID();
  let status: number = v1.ServingStatus.SERVING_STATUS_STARTING;
  const health: Server = serve(
    ctx.bus,
    ctx.subjects.health(definition.name),
    () =>
      v1.HealthCheckResponse.encode({
        status,
        service: definition.name,
        version: definition.version,
        uptimeMs: Date.now() - startedAt,
        details: { ...instance?.health?.() },
        instanceId,
      }).finish(),
    { service: definition.name },
  );
  let instance: ServiceInstance | undefined;
  try {
    instance = await definition.start(ctx);
  } catch (error) {
    await health.stop();
    throw error;
  }
  status = v1.ServingStatus.SERVING_STATUS_SERVING;
  ctx.logger.info({ service: definition.name, instanceId }, 'service started');
  return {
    name: definition.name,
    async stop() {
      status = v1.ServingStatus.SERVING_STATUS_STOPPING;
      await instance?.stop();
      await health.stop();
      ctx.logger.info({ service: definition.name }, 'service stopped');
    },
  };
}

/** Asks a service for its health over the bus. */
export async function checkHealth(
  bus: Bus,
  subjects: Subjects,
  service: ServiceName,
  timeoutMs = 2_000,
): Promise<v1.HealthCheckResponse> {
  const reply = await bus.request(
    subjects.health(service),
    v1.HealthCheckRequest.encode({}).finish(),
    { timeoutMs },
  );
  return v1.HealthCheckResponse.decode(reply.data);
}

/** Creates the structured logger every service uses (JSON lines on stderr). */
export function createLogger(level: BaseConfig['logLevel'], name: string): Logger {
  return pino({ name, level }, pino.destination(2));
}

/**
 * The whole of a service's `main.ts`: config from `process.argv`/`LATTICE_*`, NATS, telemetry,
 * start, and graceful shutdown on SIGINT/SIGTERM (stop taking work, drain in-flight requests,
 * close the bus, flush spans, exit 0). A bad setting exits 2 with a message naming it.
 */
export async function runMain<C extends BaseConfig>(
  definition: ServiceDefinition<C>,
  argv: readonly string[] = process.argv.slice(2),
): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      `${configHelp(definition.configSchema as unknown as z.ZodObject, `lattice ${definition.name}`)}\n`,
    );
    process.exit(0);
  }
  let config: C;
  try {
    config = loadConfig(definition.configSchema as unknown as z.ZodObject, {
      argv,
      env: process.env,
    }) as C;
  } catch (error) {
    process.stderr.write(
      `lattice-${definition.name}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(2);
  }
  const logger = createLogger(config.logLevel, `lattice-${definition.name}`);
  const telemetry = setupTelemetry({
    serviceName: `lattice-${definition.name}`,
    serviceVersion: definition.version,
    attributes: { 'lattice.peer.namespace': config.namespace },
  });
  let bus: NatsBus;
  try {
    bus = await NatsBus.connect({
      servers: config.natsUrl,
      name: `lattice-${definition.name}`,
      ...(config.natsToken === undefined ? {} : { token: config.natsToken }),
      ...(config.natsUser === undefined ? {} : { user: config.natsUser }),
      ...(config.natsPass === undefined ? {} : { pass: config.natsPass }),
    });
  } catch (error) {
    logger.fatal({ err: error }, 'cannot connect to NATS');
    process.exit(1);
  }
  const running = await startService(definition, {
    bus,
    config,
    logger,
    subjects: new Subjects(config.namespace),
  });
  onShutdownSignal(async (signal) => {
    logger.info({ signal }, 'shutting down');
    try {
      await running.stop();
      await bus.drain();
      await telemetry.shutdown();
      process.exit(0);
    } catch (error) {
      logger.error(
        { err: error, code: hasCode(error) ? error.code : undefined },
        'shutdown failed',
      );
      process.exit(1);
    }
  });
}

/**
 * Runs `shutdown` once, on the first SIGINT or SIGTERM (later signals are ignored while it runs).
 * The handler decides how the process exits.
 */
export function onShutdownSignal(shutdown: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    void shutdown(signal);
  };
  process.once('SIGINT', handle);
  process.once('SIGTERM', handle);
}
