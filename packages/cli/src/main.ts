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
import {
  dql,
  observe,
  peers,
  status,
  subscribe,
  withClient,
  type ClientFlags,
} from './client-commands.js';
import { PEER_SERVICES, startPeer } from './peer.js';
import { formatStats, statsFromData, statsFromService } from './store-stats.js';
import { storeService } from '@lattice/store';
import { storeProgressPrinter } from './store-progress.js';
import { authority, issue, readIdentityFile, revoke } from './identity.js';

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
  keysFile?: string;
  meshKeyFile?: string;
  authorityKeys?: string;
  certificateFile?: string;
  revocationsFile?: string;
  syncEndpoint?: boolean;
  logLevel: string;
}

function portArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('must be a port 0-65535');
  return n;
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
  .option(
    '--keys-file <file>',
    'API keys with per-collection permissions and expiry (JSON, see the README); SIGHUP reloads it',
  )
  .option(
    '--mesh-key-file <file>',
    "the mesh's shared key (hex, `openssl rand -hex 32`): only peers holding it get a link",
  )
  .option(
    '--authority-keys <hex,…>',
    'public keys of authorities whose certificates admit a peer (`lattice identity authority`)',
  )
  .option(
    '--certificate-file <file>',
    "this peer's identity certificate (`lattice identity issue`), shown on every link",
  )
  .option(
    '--revocations-file <file>',
    'peers an authority revoked (`lattice identity revoke`); SIGHUP reloads it',
  )
  .option('--sync-endpoint', 'serve the WebSocket sync endpoint /api/v4/sync to remote peers')
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
        ...(options.keysFile === undefined ? {} : { keysFile: options.keysFile }),
        ...(options.meshKeyFile === undefined ? {} : { meshKeyFile: options.meshKeyFile }),
        ...(options.authorityKeys === undefined ? {} : { authorityKeys: options.authorityKeys }),
        ...(options.certificateFile === undefined
          ? {}
          : { certificateFile: options.certificateFile }),
        ...(options.revocationsFile === undefined
          ? {}
          : { revocationsFile: options.revocationsFile }),
        syncEndpoint: options.syncEndpoint ? 'on' : 'off',
      },
      subscribe: options.subscribe,
      onStarted: (service) => process.stdout.write(`  ✓ ${service} (health: serving)\n`),
      onStoreProgress: storeProgressPrinter(),
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

/** Runs a tool command: a failure prints `lattice: CODE: message` and exits 1, no stack. */
function tool<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return (...args) => {
    try {
      fn(...args);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      process.stderr.write(
        `lattice: ${typeof code === 'string' ? code : 'ERROR'}: ${(err as Error).message}\n`,
      );
      process.exitCode = 1;
    }
  };
}

const identity = program
  .command('identity')
  .description('peer ids, an authority key, and the identity certificates it issues');

identity
  .command('show')
  .description('print the peer id of an identity file (what a certificate names)')
  .requiredOption('--identity-file <file>', "the peer's identity file")
  .action(
    tool((flags: { identityFile: string }) => {
      process.stdout.write(`${readIdentityFile(flags.identityFile).peerId}\n`);
    }),
  );

identity
  .command('authority')
  .description("print an authority's public key, creating its key file (mode 0600) when missing")
  .requiredOption('--key-file <file>', "the authority's key file: keep it off the mesh")
  .action(
    tool((flags: { keyFile: string }) => {
      process.stdout.write(`${authority(flags.keyFile).publicKey}\n`);
    }),
  );

identity
  .command('issue')
  .description('certify a peer id with permissions and an expiry; writes the certificate (base64)')
  .requiredOption('--authority-key-file <file>', "the authority's key file")
  .requiredOption('--peer-id <id>', 'the peer to certify (`lattice identity show`)')
  .option(
    '--permissions <json>',
    'what it may read and write, as in the keys file: {"read":{"queriesByCollection":{"cars":["_id.region = \'1\'"]}},"write":{…}} (default: everything)',
  )
  .option('--valid-for <duration>', 'how long it is valid: 90d, 12h, 30m', '90d')
  .option('--name <label>', 'a label for logs (a device name)')
  .requiredOption('--out <file>', 'where to write the certificate')
  .action(
    tool(
      (flags: {
        authorityKeyFile: string;
        peerId: string;
        permissions?: string;
        validFor: string;
        name?: string;
        out: string;
      }) => {
        const done = issue(flags);
        process.stdout.write(`certified ${done.peerId} until ${done.notAfter}: ${done.out}\n`);
      },
    ),
  );

identity
  .command('revoke')
  .description("add peers to the authority's signed revocation list (created when missing)")
  .requiredOption('--authority-key-file <file>', "the authority's key file")
  .option(
    '--peer-id <id>',
    'a peer to revoke (repeatable; none: an empty list)',
    collect,
    [] as string[],
  )
  .requiredOption('--revocations-file <file>', 'the list, as peers read it (--revocations-file)')
  .action(
    tool((flags: { authorityKeyFile: string; peerId: string[]; revocationsFile: string }) => {
      const all = revoke({
        authorityKeyFile: flags.authorityKeyFile,
        peerIds: flags.peerId,
        file: flags.revocationsFile,
      });
      process.stdout.write(`${all.length} peer(s) revoked: ${flags.revocationsFile}\n`);
    }),
  );

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
    .option('--tls-cert <file>', 'PEM client certificate, for a gateway with mutual TLS')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--timeout <ms>', 'deadline of each call', positiveInt, 10_000)
    .option('--json', 'print JSON (one value per line) instead of tables', false);
}

clientCommand('dql', 'run one DQL statement on a running gateway')
  .argument('<statement>', 'the DQL statement, e.g. "SELECT * FROM cars WHERE color = :c"')
  .option('--args <json>', 'named arguments as a JSON object, e.g. \'{"c":"blue"}\'')
  .action((statement: string, flags: ClientFlags) =>
    withClient(flags, (client) => dql(client, statement, flags)),
  );

clientCommand('observe', 'print a live query: its result, then each change (Ctrl-C stops)')
  .argument('<statement>', 'a SELECT statement')
  .option('--args <json>', 'named arguments as a JSON object')
  .option('--count <n>', 'stop after n batches (the first is the whole result)', positiveInt)
  .action((statement: string, flags: ClientFlags & { count?: number }) =>
    withClient(flags, (client) => observe(client, statement, flags)),
  );

clientCommand(
  'subscribe',
  'register a subscription (kept by the peer across restarts), list them, or cancel one',
)
  .argument('[query]', 'SELECT * FROM … WHERE … to sync from other peers')
  .option('--args <json>', 'named arguments as a JSON object')
  .option('--list', 'list the registered subscriptions')
  .option('--cancel <id>', 'cancel the subscription with this id')
  .action((query: string | undefined, flags: ClientFlags & { list?: boolean; cancel?: string }) =>
    withClient(flags, (client) => subscribe(client, query, flags)),
  );

clientCommand('peers', 'print the mesh graph: remote peers and their links by transport')
  .option('--watch', 'keep printing as the graph changes (Ctrl-C stops)')
  .action((flags: ClientFlags & { watch?: boolean }) =>
    withClient(flags, (client) => peers(client, flags)),
  );

clientCommand('status', "print the peer's sync status per remote peer").action(
  (flags: ClientFlags) => withClient(flags, (client) => status(client, flags)),
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
