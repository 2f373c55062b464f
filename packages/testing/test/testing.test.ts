import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  requireProgram,
  socatPtyPair,
  startNatsCluster,
  startNatsServer,
  tempDir,
  waitFor,
} from '@lattice/testing';

/** Reads the INFO line a NATS server sends to every new client. */
async function natsInfo(
  port: number,
): Promise<{ server_id: string; port: number; cluster?: string }> {
  const socket = connect(port, '127.0.0.1');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  const line = chunk.toString();
  expect(line.startsWith('INFO ')).toBe(true);
  return JSON.parse(line.slice(5)) as { server_id: string; port: number; cluster?: string };
}

describe('nats-server launcher', () => {
  it('starts on a random port, restarts on the same port, and stops', async () => {
    const server = await startNatsServer();
    try {
      expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
      const first = await natsInfo(server.port);
      expect(first.port).toBe(server.port);
      await server.restart();
      const second = await natsInfo(server.port);
      expect(second.server_id).not.toBe(first.server_id);
    } finally {
      await server.stop();
    }
    await expect(natsInfo(server.port)).rejects.toThrow();
  });

  it('goes away with a process that exits without stopping it', async () => {
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const { execFileSync } = await import('node:child_process');
    const pid = Number(
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const t = await import(${JSON.stringify(dist)}); const s = await t.startNatsServer({ jetstream: false }); console.log(s.pid); process.exit(0);`,
        ],
        { encoding: 'utf8' },
      ).trim(),
    );
    expect(pid).toBeGreaterThan(0);
    // Gone, or a zombie waiting for an init that reaps slowly: either way it serves nothing.
    const alive = (): boolean => {
      try {
        return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
      } catch {
        return false;
      }
    };
    await waitFor(() => (alive() ? undefined : true), {
      timeoutMs: 5_000,
      what: `nats-server ${pid} to go away`,
    });
  });

  it('joins servers into a cluster', async () => {
    const cluster = await startNatsCluster(3);
    try {
      expect(cluster.servers).toHaveLength(3);
      const infos = await Promise.all(cluster.servers.map((s) => natsInfo(s.port)));
      expect(new Set(infos.map((i) => i.cluster)).size).toBe(1);
    } finally {
      await cluster.stop();
    }
  });
});

describe('requireProgram', () => {
  const path = process.env['PATH'];
  afterEach(() => {
    process.env['PATH'] = path;
  });

  it('names the install command when a program is missing', () => {
    process.env['PATH'] = '/nonexistent';
    expect(() => requireProgram('nats-server')).toThrow(/apt-get install -y nats-server/);
    expect(() => requireProgram('socat')).toThrow(
      expect.objectContaining({ code: 'TESTING_MISSING_PROGRAM' }),
    );
  });
});

describe('socat pty pair', () => {
  it('carries bytes from one tty to the other, and unplug/replug works', async () => {
    const pair = await socatPtyPair();
    try {
      const a = await open(pair.a, 'r+');
      const b = await open(pair.b, 'r+');
      await a.write(Buffer.from('hello'));
      const buf = Buffer.alloc(5);
      const { bytesRead } = await b.read(buf, 0, 5);
      expect(buf.subarray(0, bytesRead).toString()).toBe('hello'.slice(0, bytesRead));
      await a.close();
      await b.close();
      await pair.unplug();
      await pair.replug();
      const c = await open(pair.a, 'r+');
      await c.close();
    } finally {
      await pair.stop();
    }
  });
});

describe('tempDir and waitFor', () => {
  it('removes the directory and times out with a clear error', async () => {
    const dir = await tempDir();
    const { existsSync } = await import('node:fs');
    expect(existsSync(dir.path)).toBe(true);
    await dir.remove();
    expect(existsSync(dir.path)).toBe(false);
    await expect(waitFor(() => false, { timeoutMs: 50, what: 'nothing' })).rejects.toThrow(
      /timed out after 50 ms waiting for nothing/,
    );
  });
});
