import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { Subjects, SERVICE_NAMES, v1 } from '@lattice/proto';
import { checkHealth } from '@lattice/service';
import { tempDir, waitFor } from '@lattice/testing';

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
      { stdio: ['ignore', 'ignore', 'pipe'], cwd: cwd.path },
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
});
