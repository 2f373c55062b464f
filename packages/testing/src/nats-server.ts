import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { requireProgram } from './binaries.js';
import { LatticeTestError } from './errors.js';
import { freePort } from './ports.js';
import { killProcess } from './process.js';
import { tempDir } from './temp.js';
import { waitFor } from './wait.js';

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream with its store in the server's temp dir (default true). */
  readonly jetstream?: boolean;
  /** Client port; a random free one by default. */
  readonly port?: number;
  /** Join a cluster: this server's route port, the cluster name and the routes to solicit. */
  readonly cluster?: {
    readonly name: string;
    readonly port: number;
    readonly routes: readonly string[];
  };
  /** Extra command-line arguments. */
  readonly args?: readonly string[];
}

/** A running `nats-server` bound to 127.0.0.1. */
export interface NatsServer extends AsyncDisposable {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly pid: number | undefined;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
  stop(): Promise<void>;
  /** Kills the server and starts it again on the same port (and store). */
  restart(options?: { readonly downMs?: number }): Promise<void>;
  /** Kills the server without cleaning up (as a crash would). */
  kill(): Promise<void>;
  /** Starts a killed server again on the same port. */
  start(): Promise<void>;
}

/**
 * Starts `nats-server -a 127.0.0.1 -p <port> [-js -sd <tmp>]` and waits until it listens.
 * @throws LatticeTestError `TESTING_MISSING_PROGRAM` with the install command when nats-server is absent.
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = requireProgram('nats-server');
  const dir = await tempDir('lattice-nats-');
  let port = options.port ?? 0;
  let child: ChildProcess | undefined;

  async function launch(): Promise<void> {
    const portsDir = join(dir.path, 'ports');
    await rm(portsDir, { recursive: true, force: true });
    await mkdir(portsDir, { recursive: true });
    const args = [
      '-a',
      '127.0.0.1',
      '-p',
      String(port === 0 ? -1 : port),
      '--ports_file_dir',
      portsDir,
    ];
    if (options.jetstream ?? true) args.push('-js', '-sd', join(dir.path, 'js'));
    if (options.cluster !== undefined) {
      args.push(
        '--cluster_name',
        options.cluster.name,
        '--cluster',
        `nats://127.0.0.1:${options.cluster.port}`,
      );
      if (options.cluster.routes.length > 0)
        args.push('--routes', options.cluster.routes.join(','));
    }
    args.push(...(options.args ?? []));
    let stderr = '';
    const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child = proc;
    // A process that exits without stopping the server (process.exit, a crash) takes it along.
    const orphan = (): void => {
      proc.kill('SIGKILL');
    };
    process.once('exit', orphan);
    proc.once('exit', () => process.off('exit', orphan));
    const exited = new Promise<never>((_, reject) => {
      proc.once('exit', (code) =>
        reject(
          new LatticeTestError(
            'TESTING_PROCESS_FAILED',
            `nats-server exited with ${code}: ${stderr}`,
          ),
        ),
      );
    });
    exited.catch(() => undefined); // only observed through the race below while starting
    const listening = waitFor(
      async () => {
        const files = await readdir(portsDir);
        const file = files.find((f) => f.endsWith('.ports'));
        if (file === undefined) return undefined;
        const ports = JSON.parse(await readFile(join(portsDir, file), 'utf8')) as {
          nats?: string[];
        };
        const url = ports.nats?.[0];
        return url === undefined ? undefined : Number(new URL(url).port);
      },
      { timeoutMs: 10_000, what: 'nats-server to listen' },
    );
    port = await Promise.race([listening, exited]);
  }

  async function kill(): Promise<void> {
    const proc = child;
    child = undefined;
    await killProcess(proc);
  }

  async function stop(): Promise<void> {
    const proc = child;
    child = undefined;
    await killProcess(proc, 'SIGTERM');
    await dir.remove();
  }

  await launch();
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get pid() {
      return child?.pid;
    },
    stop,
    kill,
    start: launch,
    async restart(restartOptions = {}) {
      await kill();
      if ((restartOptions.downMs ?? 0) > 0) {
        await new Promise((resolve) => setTimeout(resolve, restartOptions.downMs));
      }
      await launch();
    },
    [Symbol.asyncDispose]: stop,
  };
}

/** A cluster of `nats-server`s joined by routes. */
export interface NatsCluster extends AsyncDisposable {
  readonly servers: readonly NatsServer[];
  /** Every client URL, comma-separated, as NATS clients accept them. */
  readonly urls: string;
  stop(): Promise<void>;
}

/** Starts `size` servers on 127.0.0.1 that route to each other (a full mesh). */
export async function startNatsCluster(
  size = 3,
  options: { readonly jetstream?: boolean } = {},
): Promise<NatsCluster> {
  const name = `lattice-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) routePorts.push(await freePort());
  const servers = await Promise.all(
    routePorts.map((routePort, i) =>
      startNatsServer({
        jetstream: options.jetstream ?? false,
        cluster: {
          name,
          port: routePort,
          routes: routePorts.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`),
        },
        // JetStream in a cluster needs a distinct server name per node.
        args: ['--name', `${name}-${i}`],
      }),
    ),
  );
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  return { servers, urls: servers.map((s) => s.url).join(','), stop, [Symbol.asyncDispose]: stop };
}
