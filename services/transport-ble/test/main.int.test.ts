import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { Subjects } from '@lattice/proto';
import { checkHealth } from '@lattice/service';
import { waitFor } from '@lattice/testing';

const main = join(fileURLToPath(import.meta.url), '../../dist/main.js');

describe('transport-ble process without a Bluetooth adapter', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)(
    'stays up through retries, reports the adapter state, exits 0 on %s',
    async (signal) => {
      const namespace = `bleproc${signal}`;
      const child = spawn(
        process.execPath,
        [main, '--nats-url', inject('natsUrl'), '--namespace', namespace, '--ble-retry-ms', '300'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.stdout.resume();
      const bus = await NatsBus.connect({ servers: inject('natsUrl') });
      try {
        const subjects = new Subjects(namespace);
        // Several retries of both stacks (and bleno's 1 s device poll) in a real process.
        const health = await waitFor(
          async () => {
            const h = await checkHealth(bus, subjects, 'transport-ble', 500);
            return Number(h.details.attempts) >= 6 ? h : undefined;
          },
          { what: '6 load attempts', timeoutMs: 20_000, intervalMs: 200 },
        );
        expect(['unsupported', 'poweredOff', 'unauthorized', 'unavailable', 'unknown']).toContain(
          health.details.adapter,
        );
        await new Promise((r) => setTimeout(r, 1_500)); // past bleno's next device poll
        expect(child.exitCode).toBeNull();
        const exited = once(child, 'exit');
        child.kill(signal);
        const [code] = (await exited) as [number | null];
        expect(code, err).toBe(0);
        expect(err).toContain('service stopped');
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
        await bus.close();
      }
    },
  );
});
