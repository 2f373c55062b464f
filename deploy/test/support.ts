/**
 * Helpers of the deploy tests: the files under `deploy/`, NATS servers started from those files
 * with their ports moved to free ones, and Lattice services run as real `lattice <service>`
 * processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NatsBus } from '@lattice/bus';
import { Subjects, v1, type ServiceName } from '@lattice/proto';
import { checkHealth } from '@lattice/service';
import { freePort, killProcess, requireProgram, waitFor } from '@lattice/testing';

/** `deploy/`. */
export const DEPLOY_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The repository's root. */
export const REPO_ROOT = resolve(DEPLOY_DIR, '..');

/** Reads a file under `deploy/`. */
export function readDeployFile(path: string): Promise<string> {
  return readFile(join(DEPLOY_DIR, path), 'utf8');
}

/**
 * Replaces each `[from, to]` in `text`, every occurrence.
 * @throws Error when a `from` does not occur: the file no longer says what the test expects, and
 * the test must not silently run the file's own settings instead.
 */
export function template(
  text: string,
  replacements: readonly (readonly [string, string])[],
): string {
  let out = text;
  for (const [from, to] of replacements) {
    if (!out.includes(from)) throw new Error(`the configuration no longer contains "${from}"`);
    out = out.split(from).join(to);
  }
  return out;
}

/** A `nats-server` started from a configuration file. */
export interface ConfiguredNats {
  readonly url: string;
  readonly monitorUrl: string;
  /** GET of a monitoring endpoint (`/varz`, `/routez`, `/leafz`) as JSON. */
  monitor<T>(endpoint: string): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Writes `config` to `<dir>/<name>.conf`, checks it with `nats-server -t`, starts
 * `nats-server -c` on it and waits until its monitoring endpoint answers `/healthz`.
 */
export async function startConfiguredNats(options: {
  readonly dir: string;
  readonly name: string;
  readonly config: string;
  readonly clientPort: number;
  readonly monitorPort: number;
}): Promise<ConfiguredNats> {
  const binary = requireProgram('nats-server');
  const file = join(options.dir, `${options.name}.conf`);
  await writeFile(file, options.config);
  let output = '';
  const proc: ChildProcess = spawn(binary, ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-8_000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const monitorUrl = `http://127.0.0.1:${options.monitorPort}`;
  const monitor = async <T>(endpoint: string): Promise<T> => {
    const res = await fetch(`${monitorUrl}${endpoint}`);
    if (!res.ok) throw new Error(`${endpoint}: HTTP ${res.status}`);
    return (await res.json()) as T;
  };
  try {
    const exited = new Promise<never>((_, reject) => {
      proc.once('exit', (code) => reject(new Error(`nats-server ${options.name} exited ${code}`)));
    });
    exited.catch(() => undefined); // observed only through the race below, while starting
    await Promise.race([
      exited,
      // A refused connection throws: waitFor counts that as "not yet".
      waitFor(async () => (await monitor<{ status: string }>('/healthz')).status === 'ok', {
        timeoutMs: 10_000,
        intervalMs: 50,
        what: `nats-server ${options.name} to answer /healthz`,
      }),
    ]);
  } catch (error) {
    await killProcess(proc);
    throw new Error(`${(error as Error).message}\n${output}`, { cause: error });
  }
  return {
    url: `nats://127.0.0.1:${options.clientPort}`,
    monitorUrl,
    monitor,
    stop: () => killProcess(proc, 'SIGTERM'),
  };
}

/** Free ports, `n` of them, distinct. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** A `lattice <service>` process. */
export interface ServiceProcess {
  /** Its stderr and stdout so far (the JSON log lines). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs `lattice <service> <flags…>` as its own process, the way a systemd unit or a container does,
 * and waits until the service answers health on the bus.
 * @remarks The command runs from source (`packages/cli/src/main.ts` through tsx, with the
 * `@lattice/source` condition) so the test never runs a stale `dist/`; it is the same
 * `runMain` path as `node packages/cli/dist/main.js`.
 */
export async function startLatticeService(options: {
  readonly service: ServiceName;
  readonly flags: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Where to ask for health: a NATS URL the service's server reaches. */
  readonly healthNatsUrl: string;
  readonly namespace: string;
}): Promise<ServiceProcess> {
  const proc = spawn(
    process.execPath,
    [
      '--conditions=@lattice/source',
      '--import',
      'tsx',
      join(REPO_ROOT, 'packages/cli/src/main.ts'),
      options.service,
      ...options.flags,
    ],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-16_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise<never>((_, reject) => {
    proc.once('exit', (code, signal) =>
      reject(new Error(`lattice ${options.service} exited (${code ?? signal}) while starting`)),
    );
  });
  exited.catch(() => undefined); // observed only through the race below, while starting
  const bus = await NatsBus.connect({ servers: options.healthNatsUrl, name: 'deploy-test-health' });
  try {
    await Promise.race([
      exited,
      // Health answers STARTING while the service subscribes its API, then SERVING.
      waitFor(
        async () =>
          (await checkHealth(bus, new Subjects(options.namespace), options.service, 500)).status ===
          v1.ServingStatus.SERVING_STATUS_SERVING,
        {
          timeoutMs: 30_000,
          intervalMs: 100,
          what: `lattice ${options.service} to answer health: serving`,
        },
      ),
    ]);
  } catch (error) {
    await killProcess(proc);
    throw new Error(`${(error as Error).message}\n${output}`, { cause: error });
  } finally {
    await bus.close();
  }
  return { output: () => output, stop: () => killProcess(proc, 'SIGTERM') };
}
