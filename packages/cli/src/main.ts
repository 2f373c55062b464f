#!/usr/bin/env node
// The `lattice` command. Logic lives in the modules it calls; this file only wires flags to them.
import { Command, InvalidArgumentError } from 'commander';
import { LocalBus, NatsBus, type Bus } from '@lattice/bus';
import {
  baseConfigSchema,
  createLogger,
  onShutdownSignal,
  runMain,
  type ServiceDefinition,
} from '@lattice/service';
import { PEER_SERVICES, startPeer } from './peer.js';

const program = new Command('lattice')
  .description('Lattice: CRDT documents synced peer to peer, queried with DQL.')
  .showHelpAfterError();

function namespaceArg(value: string): string {
  const parsed = baseConfigSchema.shape.namespace.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError('must be 1-128 characters of [A-Za-z0-9_-]');
  return parsed.data;
}

program
  .command('up')
  .description('run every service of one peer in this process (embedded: no NATS needed)')
  .option('--namespace <ns>', "the peer's namespace", namespaceArg, 'default')
  .option(
    '--nats <url>',
    'compose the services over this NATS server instead of the in-process bus',
  )
  .option('--log-level <level>', 'log level (trace, debug, info, warn, error, silent)', 'warn')
  .action(async (options: { namespace: string; nats?: string; logLevel: string }) => {
    const config = baseConfigSchema.parse({
      namespace: options.namespace,
      logLevel: options.logLevel,
      ...(options.nats === undefined ? {} : { natsUrl: options.nats }),
    });
    const logger = createLogger(config.logLevel, 'lattice');
    const bus: Bus =
      options.nats === undefined
        ? new LocalBus()
        : await NatsBus.connect({ servers: options.nats, name: 'lattice-up' });
    const where = options.nats === undefined ? 'in-process bus' : `NATS at ${options.nats}`;
    process.stdout.write(`lattice: starting peer "${config.namespace}" on the ${where}\n`);
    const peer = await startPeer({
      bus,
      config,
      logger,
      onStarted: (service) => process.stdout.write(`  ✓ ${service} (health: serving)\n`),
    });
    process.stdout.write(
      `lattice: peer ready with ${peer.services.length} services. Press Ctrl-C to stop.\n`,
    );
    // The in-process bus holds no socket or timer: keep the process alive until a signal.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    onShutdownSignal(async () => {
      clearInterval(keepAlive);
      process.stdout.write('lattice: stopping…\n');
      await peer.stop();
      await bus.drain();
      process.stdout.write('lattice: stopped cleanly\n');
      process.exit(0);
    });
  });

for (const definition of PEER_SERVICES as readonly ServiceDefinition[]) {
  program
    .command(definition.name)
    .description(
      `run the ${definition.name} service alone on NATS (flags: --nats-url, --namespace, --log-level; env LATTICE_*)`,
    )
    .allowUnknownOption()
    .helpOption(false)
    .argument('[flags...]')
    .action(async (flags: string[]) => {
      await runMain(definition, flags);
    });
}

await program.parseAsync(process.argv);
