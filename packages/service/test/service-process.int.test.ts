import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { Subjects, SERVICE_NAMES, v1 } from '@lattice/proto';
import { checkHealth } from '@lattice/service';
import { startNatsServer, tempDir, waitFor } from '@lattice/testing';

const root = join(fileURLToPath(import.meta.url), '../../../..');

describe('every service runs as its own process on NATS', () => {
  it.each(SERVICE_NAMES)('%s answers health and exits 0 on SIGTERM', async (service) => {
    // Services that keep data do so under ./lattice-data by default: run each in its own folder.
    await using cwd = await tempDir('lattice-proc-');
    const namespace = `proc${process.pid}${service.replace('-', '')}`;
    const child = spawn(
      process.execPath,
      [
        join(root, 'services', service, 'dist', 'main.js'),
        '--nats-url',
        inject('natsUrl'),
        '--namespace',
        namespace,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        cwd: cwd.path,
        // Free ports, not the defaults (4040, 8080, 50051) a running peer may hold.
        env: { ...process.env, LATTICE_PORT: '0', LATTICE_GRPC_PORT: '0', LATTICE_HTTP_PORT: '0' },
      },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const bus = await NatsBus.connect({ servers: inject('natsUrl') });
    try {
      // A service answers STARTING while it opens its resources (the store opens RocksDB).
      const health = await waitFor(
        async () => {
          const h = await checkHealth(bus, new Subjects(namespace), service, 500);
          return h.status === v1.ServingStatus.SERVING_STATUS_SERVING ? h : undefined;
        },
        { timeoutMs: 15_000, what: `${service} serving` },
      );
      expect(health.service).toBe(service);
      expect(health.status).toBe(v1.ServingStatus.SERVING_STATUS_SERVING);
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      expect(code, stderr).toBe(0);
      expect(stderr).toContain('shutting down');
    } finally {
      child.kill('SIGKILL');
      await bus.close();
    }
  });

  it('exits 2 naming the setting when the config is bad', async () => {
    const child = spawn(
      process.execPath,
      [join(root, 'services', 'store', 'dist', 'main.js'), '--log-level', 'loud'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toContain('--log-level (LATTICE_LOG_LEVEL)');
  });

  it('authenticates to NATS with the token from LATTICE_NATS_TOKEN', async () => {
    await using server = await startNatsServer({
      jetstream: false,
      args: ['--auth', 'sekret-token'],
    });
    await using cwd = await tempDir('lattice-proc-');
    const namespace = `auth${process.pid}`;
    const start = (token: string | undefined) =>
      spawn(
        process.execPath,
        [
          join(root, 'services', 'multiplexer', 'dist', 'main.js'),
          '--nats-url',
          server.url,
          '--namespace',
          namespace,
        ],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
          cwd: cwd.path,
          env: { ...process.env, ...(token === undefined ? {} : { LATTICE_NATS_TOKEN: token }) },
        },
      );
    // Without the token the service cannot connect, and says so.
    const refused = start(undefined);
    let refusedErr = '';
    refused.stderr.on('data', (c: Buffer) => (refusedErr += c.toString()));
    const [code] = (await once(refused, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(refusedErr).toContain('cannot connect to NATS');
    // With it, it serves.
    const child = start('sekret-token');
    const bus = await NatsBus.connect({ servers: server.url, token: 'sekret-token' });
    try {
      await waitFor(
        async () => {
          const h = await checkHealth(bus, new Subjects(namespace), 'multiplexer', 500).catch(
            () => undefined,
          );
          return h?.status === v1.ServingStatus.SERVING_STATUS_SERVING ? true : undefined;
        },
        { timeoutMs: 15_000, what: 'multiplexer serving with the token' },
      );
    } finally {
      child.kill('SIGKILL');
      await bus.close();
    }
  });
});
