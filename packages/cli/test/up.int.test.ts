import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { LocalBus } from '@lattice/bus';
import { SERVICE_NAMES } from '@lattice/proto';
import { baseConfigSchema, checkHealth } from '@lattice/service';
import { startPeer } from '@lattice/cli';
import { DocumentStore, RocksEngine } from '@lattice/store';
import { tempDir, waitFor } from '@lattice/testing';

const main = join(fileURLToPath(import.meta.url), '../../dist/main.js');
/** Free ports everywhere and no mDNS, so tests never collide with each other or a running peer. */
const QUIET_PORTS = ['--lan-port', '0', '--grpc-port', '0', '--http-port', '0', '--no-discovery'];

describe('lattice up', () => {
  it('composes every service on one in-process bus, each answering health', async () => {
    await using data = await tempDir('lattice-up-');
    const bus = new LocalBus();
    const peer = await startPeer({
      bus,
      config: baseConfigSchema.parse({ namespace: 'uptest' }),
      logger: pino({ level: 'silent' }),
      settings: {
        data: data.path,
        port: '0',
        discovery: 'false',
        grpcPort: '0',
        httpPort: '0',
      },
    });
    expect([...peer.services].sort()).toEqual([...SERVICE_NAMES].sort());
    for (const service of SERVICE_NAMES) {
      expect((await checkHealth(bus, peer.subjects, service)).service).toBe(service);
    }
    await peer.stop();
    await expect(checkHealth(bus, peer.subjects, 'store')).rejects.toMatchObject({
      code: 'BUS_NO_RESPONDERS',
    });
    await bus.close();
  });

  it('stays up until Ctrl-C, then stops cleanly with exit code 0', async () => {
    await using data = await tempDir('lattice-up-');
    const child = spawn(
      process.execPath,
      [main, 'up', '--namespace', 'uptestproc', '--data', data.path, ...QUIET_PORTS],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor(() => /peer \S+ ready with 7 services/.test(out), {
        timeoutMs: 15_000,
        what: 'lattice up ready',
      });
      // It says what opening the store does before the store is up.
      expect(out).toMatch(
        /… store: opening \S+\/store\n( {2}… store: still opening .*\n)* {2}… store: open at commit \d+ after \d+ ms\n {2}✓ store/,
      );
      // A write through the HTTP API it printed.
      const http = /HTTP (http:\/\/\S+),/.exec(out)?.[1];
      const r = await fetch(`${http}/api/v4/store/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          statement: "INSERT INTO notes DOCUMENTS ({'_id': 'n1', 'text': 'kept'})",
        }),
      });
      expect(r.status).toBe(200);
      // Still running a moment later: nothing but the signal may end it.
      await new Promise((r) => setTimeout(r, 300));
      expect(child.exitCode).toBeNull();
      const exited = once(child, 'exit');
      child.kill('SIGINT');
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
      expect(out).toContain('lattice: stopped cleanly');
      // The store Ctrl-C left behind reopens with the data.
      const store = await DocumentStore.open(new RocksEngine(join(data.path, 'store')));
      try {
        expect(store.select('SELECT * FROM notes')).toEqual([{ _id: 'n1', text: 'kept' }]);
      } finally {
        await store.close();
      }
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('reloads its keys file on SIGHUP; a bad file keeps the old keys', async () => {
    await using data = await tempDir('lattice-up-');
    const keysFile = join(data.path, 'keys.json');
    const full = { read: { everything: true }, write: { everything: true } };
    const writeKeys = (...names: string[]) =>
      writeFile(
        keysFile,
        JSON.stringify({
          keys: names.map((name) => ({
            name,
            token: `${name}-token-0123456789`,
            permission: full,
          })),
        }),
      );
    await writeKeys('first');
    const child = spawn(
      process.execPath,
      [
        main,
        'up',
        '--namespace',
        'upkeys',
        '--data',
        data.path,
        '--keys-file',
        keysFile,
        '--log-level',
        'info',
        ...QUIET_PORTS,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    try {
      await waitFor(() => /peer \S+ ready/.test(out), { timeoutMs: 15_000, what: 'ready' });
      const http = /HTTP (http:\/\/\S+),/.exec(out)?.[1];
      const status = async (name: string) =>
        (
          await fetch(`${http}/api/v4/store/execute`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              authorization: `Bearer ${name}-token-0123456789`,
            },
            body: JSON.stringify({ statement: 'SELECT * FROM notes' }),
          })
        ).status;
      expect(await status('first')).toBe(200);
      expect(await status('second')).toBe(401);

      await writeKeys('second');
      child.kill('SIGHUP');
      await waitFor(async () => ((await status('second')) === 200 ? true : undefined), {
        timeoutMs: 5_000,
        what: 'the new key accepted',
      });
      expect(await status('first')).toBe(401);
      expect(err).toMatch(/"msg":"keys reloaded"/);

      await writeFile(keysFile, '{"keys": [{"name": "broken"}]}');
      child.kill('SIGHUP');
      await waitFor(() => /keys file not reloaded/.test(err), { what: 'the refusal logged' });
      expect(await status('second')).toBe(200);
      expect(child.exitCode).toBeNull();
      const exited = once(child, 'exit');
      child.kill('SIGINT');
      expect(((await exited) as [number | null])[0]).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('names a bad flag', async () => {
    const child = spawn(process.execPath, [main, 'up', '--namespace', 'not a token'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).not.toBe(0);
    expect(err).toContain('--namespace');
  });
});
