import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { Subjects } from '@lattice/proto';
import { checkHealth } from '@lattice/service';
import { waitFor } from '@lattice/testing';

const fixture = join(fileURLToPath(import.meta.url), '../fixtures/slow-service.mjs');

describe('graceful shutdown', () => {
  it('answers a request that is in flight when SIGTERM arrives, then exits 0', async () => {
    const namespace = `drain${process.pid}`;
    const subjects = new Subjects(namespace);
    const child = spawn(
      process.execPath,
      [fixture, '--nats-url', inject('natsUrl'), '--namespace', namespace],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const bus = await NatsBus.connect({ servers: inject('natsUrl') });
    try {
      await waitFor(() => checkHealth(bus, subjects, 'store', 500), {
        timeoutMs: 15_000,
        what: 'fixture health',
      });
      const reply = bus.request(
        subjects.request('store', 'slow'),
        new TextEncoder().encode('700'),
        { timeoutMs: 5_000 },
      );
      await new Promise((r) => setTimeout(r, 200)); // the request is now being handled
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      expect(new TextDecoder().decode((await reply).data)).toBe('done');
      const [code] = (await exited) as [number | null];
      expect(code, stderr).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await bus.close();
    }
  });
});
