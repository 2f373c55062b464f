#!/usr/bin/env node
// The `lattice` command. Logic lives in the modules it calls; this file only wires flags to them.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Command, InvalidArgumentError } from 'commander';
import { LocalBus, NatsBus, type Bus } from '@lattice/bus';
import {
  baseConfigSchema,
  createLogger,
  onShutdownSignal,
  runMain,
  type ServiceDefinition,
} from '@lattice/service';
import * as grpc from '@grpc/grpc-js';
import { v1 } from '@lattice/proto';
import {
  ClientError,
  CODECS,
  decodeItem,
  encodeArgs,
  formatExecute,
  formatObserveBatch,
  formatPresence,
  formatStatus,
  formatTable,
  GatewayClient,
  parseArgsJson,
} from './client.js';
import { PEER_SERVICES, startPeer } from './peer.js';
import { formatStats, statsFromData, statsFromService } from './store-stats.js';
import { storeService, type StoreOpenProgress } from '@lattice/store';

const program = new Command('lattice')
  .description('Lattice: CRDT documents synced peer to peer, queried with DQL.')
  .showHelpAfterError();

interface UpOptions {
  namespace: string;
  nats?: string;
  data: string;
  lanPort: number;
  peer: string[];
  discovery: boolean;
  grpcPort: number;
  httpPort: number;
  subscribe: string[];
  logLevel: string;
}

function portArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('must be a port 0-65535');
  return n;
}

/** Progress lines while the store opens: the path, a tick per second, index builds, the result. */
function storeProgressLine(): (p: StoreOpenProgress) => void {
  let lastIndexLine = 0;
  return (p) => {
    if (p.phase === 'opening') {
      process.stdout.write(
        p.elapsedMs === 0
          ? `  … store: opening ${p.path}\n`
          : `  … store: still opening ${p.path} (${Math.round(p.elapsedMs / 1000)} s; RocksDB replays its log after a crash)\n`,
      );
    } else if (p.phase === 'index') {
      const now = Date.now();
      if (p.done < p.total && now - lastIndexLine < 1_000) return;
      lastIndexLine = now;
      const pct = p.total === 0 ? 100 : Math.floor((100 * p.done) / p.total);
      process.stdout.write(
        `  … store: building index ${p.collection}.${p.name}: ${p.done.toLocaleString('en-US')} of ${p.total.toLocaleString('en-US')} documents (${pct}%)\n`,
      );
    } else {
      process.stdout.write(`  … store: open at commit ${p.lastSeq} after ${p.elapsedMs} ms\n`);
    }
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

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
  .option('--data <dir>', "the peer's data folder (RocksDB lives in <dir>/store)", './lattice-data')
  .option('--lan-port <port>', 'TCP port of the LAN transport (0: any free port)', portArg, 4040)
  .option('--peer <url>', 'a static peer tcp://host:port (repeatable)', collect, [] as string[])
  .option('--no-discovery', 'do not announce or browse peers over mDNS')
  .option('--grpc-port <port>', 'gateway gRPC port on loopback (0: any free port)', portArg, 50051)
  .option('--http-port <port>', 'gateway HTTP port on loopback (0: any free port)', portArg, 8080)
  .option(
    '--subscribe <query>',
    'subscribe to SELECT * FROM … at start (repeatable)',
    collect,
    [] as string[],
  )
  .option('--log-level <level>', 'log level (trace, debug, info, warn, error, silent)', 'warn')
  .action(async (options: UpOptions) => {
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
    process.stdout.write(
      `lattice: starting peer "${config.namespace}" on the ${where}, data in ${resolve(options.data)}\n`,
    );
    const peer = await startPeer({
      bus,
      config,
      logger,
      settings: {
        data: options.data,
        port: String(options.lanPort),
        peer: options.peer.join(','),
        discovery: String(options.discovery),
        grpcPort: String(options.grpcPort),
        httpPort: String(options.httpPort),
      },
      subscribe: options.subscribe,
      onStarted: (service) => process.stdout.write(`  ✓ ${service} (health: serving)\n`),
      onStoreProgress: storeProgressLine(),
    });
    const gateway = peer.gateway;
    process.stdout.write(
      `lattice: peer ${peer.engine.peerId} ready with ${peer.services.length} services` +
        (gateway
          ? ` — HTTP http://${gateway.host}:${gateway.httpPort}, gRPC ${gateway.host}:${gateway.grpcPort}`
          : '') +
        `. Press Ctrl-C to stop.\n`,
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

interface ClientFlags {
  gateway: string;
  apiKey?: string;
  tlsCa?: string;
  timeout: number;
  json: boolean;
  args?: string;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** A command that calls a running gateway (see client.ts). */
function clientCommand(name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option(
      '--gateway <host:port>',
      'gRPC address of the gateway (env LATTICE_GATEWAY)',
      process.env['LATTICE_GATEWAY'] ?? '127.0.0.1:50051',
    )
    .option('--api-key <key>', 'bearer token (env LATTICE_API_KEY)', process.env['LATTICE_API_KEY'])
    .option('--tls-ca <file>', 'PEM CA certificate: connect with TLS')
    .option('--timeout <ms>', 'deadline of each call', positiveInt, 10_000)
    .option('--json', 'print JSON (one value per line) instead of tables', false);
}

/** Runs a client action: prints a failure as `lattice: CODE: message` and exits with 1. */
async function withClient(
  flags: ClientFlags,
  action: (client: GatewayClient) => Promise<void>,
): Promise<void> {
  const client = new GatewayClient({
    gateway: flags.gateway,
    apiKey: flags.apiKey,
    tlsCa: flags.tlsCa,
    timeoutMs: flags.timeout,
  });
  try {
    await action(client);
  } catch (err) {
    const code = err instanceof ClientError ? err.code : 'ERROR';
    process.stderr.write(`lattice: ${code}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

/** Reads a server stream until `count` messages, the stream's end, or Ctrl-C. */
function readStream<T>(
  stream: grpc.ClientReadableStream<T>,
  onMessage: (m: T) => void,
  count: number | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let n = 0;
    const stop = (): void => {
      stream.cancel();
      resolve();
    };
    process.once('SIGINT', stop);
    stream.on('data', (m: T) => {
      onMessage(m);
      if (count !== undefined && ++n >= count) stop();
    });
    stream.on('end', resolve);
    stream.on('error', (err: grpc.ServiceError) => {
      process.off('SIGINT', stop);
      if (err.code === grpc.status.CANCELLED) resolve();
      else reject(new ClientError(grpc.status[err.code] ?? 'UNKNOWN', err.details || err.message));
    });
  });
}

clientCommand('dql', 'run one DQL statement on a running gateway')
  .argument('<statement>', 'the DQL statement, e.g. "SELECT * FROM cars WHERE color = :c"')
  .option('--args <json>', 'named arguments as a JSON object, e.g. \'{"c":"blue"}\'')
  .action(async (statement: string, flags: ClientFlags) => {
    await withClient(flags, async (client) => {
      const res = await client.execute(statement, parseArgsJson(flags.args));
      process.stdout.write(`${formatExecute(res, flags.json)}\n`);
    });
  });

clientCommand('observe', 'print a live query: its result, then each change (Ctrl-C stops)')
  .argument('<statement>', 'a SELECT statement')
  .option('--args <json>', 'named arguments as a JSON object')
  .option('--count <n>', 'stop after n batches (the first is the whole result)', positiveInt)
  .action(async (statement: string, flags: ClientFlags & { count?: number }) => {
    await withClient(flags, async (client) => {
      const stream = client.stream(
        'Observe',
        { statement, args: encodeArgs(parseArgsJson(flags.args)) },
        CODECS.observe,
      );
      await readStream(
        stream,
        (batch) => process.stdout.write(`${formatObserveBatch(batch, flags.json)}\n`),
        flags.count,
      );
    });
  });

clientCommand(
  'subscribe',
  'register a subscription (kept by the peer across restarts), list them, or cancel one',
)
  .argument('[query]', 'SELECT * FROM … WHERE … to sync from other peers')
  .option('--args <json>', 'named arguments as a JSON object')
  .option('--list', 'list the registered subscriptions')
  .option('--cancel <id>', 'cancel the subscription with this id')
  .action(
    async (query: string | undefined, flags: ClientFlags & { list?: boolean; cancel?: string }) => {
      await withClient(flags, async (client) => {
        if (flags.cancel !== undefined) {
          const r = await client.unary('CancelSubscription', { id: flags.cancel }, CODECS.cancel);
          if (!r.cancelled) throw new ClientError('NOT_FOUND', `no subscription ${flags.cancel}`);
          process.stdout.write(flags.json ? '{"cancelled":true}\n' : `cancelled ${flags.cancel}\n`);
          return;
        }
        if (query !== undefined) {
          const r = await client.unary(
            'RegisterSubscription',
            { statement: query, args: encodeArgs(parseArgsJson(flags.args)) },
            CODECS.register,
          );
          const id = r.subscription?.id ?? '';
          process.stdout.write(flags.json ? `${JSON.stringify({ id })}\n` : `subscribed ${id}\n`);
          if (!flags.list) return;
        }
        if (!flags.list && query === undefined) {
          throw new ClientError('BAD_ARGS', 'give a query, --list or --cancel <id>');
        }
        const list = await client.unary('ListSubscriptions', {}, CODECS.list);
        const rows = list.subscriptions.map((s) => ({
          id: s.id,
          statement: s.statement,
          args: decodeItem(s.args) ?? {},
        }));
        process.stdout.write(`${flags.json ? JSON.stringify(rows) : formatTable(rows, 80)}\n`);
      });
    },
  );

clientCommand('peers', 'print the mesh graph: remote peers and their links by transport')
  .option('--watch', 'keep printing as the graph changes (Ctrl-C stops)')
  .action(async (flags: ClientFlags & { watch?: boolean }) => {
    await withClient(flags, async (client) => {
      const stream = client.stream('Presence', {}, CODECS.presence);
      await readStream(
        stream,
        (m) =>
          process.stdout.write(
            `${flags.json ? JSON.stringify(v1.MuxPresence.toObject(v1.MuxPresence.create(m.presence ?? {}), { longs: Number })) : formatPresence(m.presence ?? {})}\n`,
          ),
        flags.watch ? undefined : 1,
      );
    });
  });

clientCommand('status', "print the peer's sync status per remote peer").action(
  async (flags: ClientFlags) => {
    await withClient(flags, async (client) => {
      const s = await client.unary('SyncStatus', {}, CODECS.syncStatus);
      process.stdout.write(
        `${flags.json ? JSON.stringify(v1.SyncStatusResponse.toObject(s, { longs: Number })) : formatStatus(s)}\n`,
      );
    });
  },
);

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

// `lattice store stats` is a tool, not the service: it replaces the service command's action
// when its first argument is `stats`.
const storeCommand = program.commands.find((c) => c.name() === 'store');
storeCommand?.description(
  'run the store service alone on NATS, or `lattice store stats [--data DIR | --nats URL --namespace NS] [--json]`',
);
storeCommand?.action(async (flags: string[]) => {
  if (flags[0] !== 'stats') {
    await runMain(storeService, flags);
    return;
  }
  const { values } = parseArgs({
    args: flags.slice(1),
    options: {
      data: { type: 'string', default: './lattice-data' },
      nats: { type: 'string' },
      namespace: { type: 'string', default: 'default' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const report =
    values.nats === undefined
      ? await statsFromData(values.data)
      : await statsFromService(values.nats, values.namespace);
  process.stdout.write(`${values.json ? JSON.stringify(report) : formatStats(report)}\n`);
});

await program.parseAsync(process.argv);
