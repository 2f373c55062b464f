/**
 * One peer as separate service processes on NATS (merge with its store, multiplexer, LAN
 * transport, gateway), for the fleet tests and `pnpm bench e2e`. Each process is the built
 * `lattice <service>` command, as a deployment runs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bus } from '@lattice/bus';
import { MergeClient } from '@lattice/merge';
import { Subjects, v1, type ServiceName } from '@lattice/proto';
import { checkHealth } from '@lattice/service';
import { killProcess } from '@lattice/testing';

/** The built `lattice` command. */
export const LATTICE_MAIN = join(fileURLToPath(import.meta.url), '../../dist/main.js');

/** The services of a peer that runs as processes, in start order. */
export const PROCESS_SERVICES = ['merge', 'multiplexer', 'transport-lan', 'gateway'] as const;

/** One of {@link PROCESS_SERVICES}. */
export type ProcessService = (typeof PROCESS_SERVICES)[number];

/** Options of {@link ProcessPeer}. */
export interface ProcessPeerOptions {
  readonly name: string;
  readonly natsUrl: string;
  /** The peer's data folder (store and identity file). */
  readonly dir: string;
  readonly ports: { readonly lan: number; readonly grpc: number; readonly http: number };
  /** A static LAN peer to dial (`tcp://host:port`). */
  readonly staticPeer?: string;
  /** The gateway's API keys file; without it the gateway runs in playground mode. */
  readonly keysFile?: string;
  /** Bearer token for {@link ProcessPeer.dql}. */
  readonly token?: string;
  /** Extra environment of every process (`OTEL_*` for tracing tests). */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra flags of the gateway process (`--sync-endpoint on`). */
  readonly gatewayFlags?: readonly string[];
}

/** See the module comment. */
export class ProcessPeer {
  readonly subjects: Subjects;
  readonly procs = new Map<ProcessService, ChildProcess>();
  /** What each process wrote to stderr (for failure messages). */
  readonly logs = new Map<ProcessService, string>();
  readonly options: ProcessPeerOptions;
  #merge: MergeClient | undefined;

  constructor(options: ProcessPeerOptions) {
    this.options = options;
    this.subjects = new Subjects(`${options.name}${process.pid}`);
  }

  /** A client of the peer's merge service on `bus`. */
  merge(bus: Bus): MergeClient {
    this.#merge ??= new MergeClient(bus, this.subjects);
    return this.#merge;
  }

  #flags(service: ProcessService): string[] {
    const { dir, ports, staticPeer, keysFile } = this.options;
    const identity = join(dir, 'identity.key');
    switch (service) {
      case 'merge':
        return ['--data', dir, '--identity-file', identity];
      case 'multiplexer':
        return ['--identity-file', identity, '--transports', 'transport-lan,gateway'];
      case 'transport-lan':
        return [
          '--port',
          String(ports.lan),
          '--host',
          '127.0.0.1',
          '--discovery',
          'false',
          ...(staticPeer ? ['--peer', staticPeer] : []),
        ];
      case 'gateway':
        return [
          '--grpc-port',
          String(ports.grpc),
          '--http-port',
          String(ports.http),
          ...(keysFile ? ['--keys-file', keysFile] : []),
          ...(this.options.gatewayFlags ?? []),
        ];
    }
  }

  /**
   * Starts one service process and waits until it answers health SERVING; fails at once (with
   * its stderr) when the process exits first.
   */
  async start(service: ProcessService, bus: Bus, timeoutMs = 30_000): Promise<void> {
    const child = spawn(
      process.execPath,
      [
        LATTICE_MAIN,
        service,
        '--nats-url',
        this.options.natsUrl,
        '--namespace',
        this.subjects.namespace,
        '--log-level',
        'warn',
        ...this.#flags(service),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...this.options.env } },
    );
    this.logs.set(service, '');
    child.stderr?.on('data', (c: Buffer) =>
      this.logs.set(service, (this.logs.get(service) ?? '') + c.toString()),
    );
    this.procs.set(service, child);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const h = await checkHealth(bus, this.subjects, service as ServiceName, 500).catch(
        () => undefined,
      );
      if (h?.status === v1.ServingStatus.SERVING_STATUS_SERVING) return;
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(
          `${this.options.name}: ${service} did not start: ${this.logs.get(service) ?? ''}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Starts every service, in order. */
  async startAll(bus: Bus): Promise<void> {
    for (const s of PROCESS_SERVICES) await this.start(s, bus);
  }

  /** Kills one service process (SIGKILL: no goodbye), and waits until it is gone. */
  async kill(service: ProcessService, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.procs.get(service);
    this.procs.delete(service);
    await killProcess(proc, signal);
  }

  /** Stops every process. */
  async stopAll(): Promise<void> {
    for (const s of [...PROCESS_SERVICES].reverse()) await this.kill(s, 'SIGTERM');
  }

  /** Runs a statement through the peer's HTTP API, as an app does. */
  async dql(
    statement: string,
    args: Record<string, unknown> = {},
    token = this.options.token,
  ): Promise<{ items: Record<string, unknown>[]; mutatedDocumentIds: unknown[] }> {
    const r = await fetch(`http://127.0.0.1:${this.options.ports.http}/api/v4/store/execute`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
      body: JSON.stringify({ statement, args }),
    });
    const body = (await r.json()) as Record<string, unknown>;
    if (r.status !== 200) {
      throw new Error(`${this.options.name}: ${r.status} ${JSON.stringify(body)}`);
    }
    return body as { items: Record<string, unknown>[]; mutatedDocumentIds: unknown[] };
  }

  /** One document by `_id` (undefined: absent). */
  async one(collection: string, id: string): Promise<Record<string, unknown> | undefined> {
    return (await this.dql(`SELECT * FROM ${collection} WHERE _id = :id`, { id })).items[0];
  }
}
