/**
 * The client commands (`lattice dql`, `observe`, `subscribe`, `peers`, `status`) as a user runs
 * them: the built CLI as a process against a running peer's gateway.
 */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBus } from '@lattice/bus';
import { startPeer, type Peer } from '@lattice/cli';
import { baseConfigSchema } from '@lattice/service';
import { InProcessPeer, startGateway } from '@lattice/gateway';
import { MergeEngine } from '@lattice/merge';
import { DocumentStore, MemoryEngine } from '@lattice/store';
import {
  freePort,
  selfSignedPair,
  tempDir,
  testAuthority,
  waitFor,
  type TempDir,
} from '@lattice/testing';

const main = join(fileURLToPath(import.meta.url), '../../dist/main.js');
const run = promisify(execFile);

let data: TempDir;
let bus: LocalBus;
let peer: Peer;
let gateway: string;

/** Runs `lattice <args>`; resolves with its output and exit code (never throws on exit 1). */
async function lattice(
  ...args: string[]
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await run(process.execPath, [main, ...args, '--gateway', gateway], {
      timeout: 20_000,
    });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

beforeAll(async () => {
  data = await tempDir('lattice-client-');
  bus = new LocalBus();
  peer = await startPeer({
    bus,
    config: baseConfigSchema.parse({ namespace: 'clienttest' }),
    logger: pino({ level: 'silent' }),
    settings: { data: data.path, port: '0', discovery: 'false', grpcPort: '0', httpPort: '0' },
  });
  gateway = `127.0.0.1:${peer.gateway?.grpcPort}`;
}, 30_000);

afterAll(async () => {
  await peer.stop();
  await bus.close();
  await data[Symbol.asyncDispose]();
});

describe('lattice client commands', () => {
  it('dql writes and reads, as a table and as JSON', async () => {
    const insert = await lattice(
      'dql',
      'INSERT INTO cars DOCUMENTS (:car)',
      '--args',
      '{"car": {"_id": "c1", "color": "blue", "spec": {"doors": 4}}}',
    );
    expect(insert.code).toBe(0);
    expect(insert.stdout).toMatch(/^insert: 1 document \("c1"\), commit \d+$/m);

    const table = await lattice('dql', 'SELECT * FROM cars');
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n').slice(0, 3)).toEqual([
      '_id  color  spec',
      '---  -----  -----------',
      'c1   blue   {"doors":4}',
    ]);
    expect(table.stdout).toContain('(1 item)');

    const json = await lattice(
      'dql',
      'SELECT color FROM cars WHERE _id = :id',
      '--args',
      '{"id":"c1"}',
      '--json',
    );
    expect(JSON.parse(json.stdout)).toMatchObject({
      queryType: 'select',
      items: [{ color: 'blue' }],
    });
  });

  it('fails with the error code and exit status 1: bad DQL, bad --args, no gateway', async () => {
    const bad = await lattice('dql', 'SELEKT * FROM cars');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^lattice: DQL_\w+: /);

    const args = await lattice('dql', 'SELECT * FROM cars', '--args', '[1]');
    expect(args.code).toBe(1);
    expect(args.stderr).toMatch(/BAD_ARGS: --args must be a JSON object/);

    const port = await freePort();
    const r = await run(process.execPath, [
      main,
      'dql',
      'SELECT 1',
      '--gateway',
      `127.0.0.1:${port}`,
      '--timeout',
      '3000',
    ]).catch((e: { stderr: string; code: number }) => e);
    expect((r as { code: number }).code).toBe(1);
    expect((r as { stderr: string }).stderr).toMatch(
      /UNAVAILABLE: cannot reach the gateway at 127\.0\.0\.1:\d+/,
    );
  });

  it('speaks mutual TLS with --tls-ca, --tls-cert and --tls-key', async () => {
    const server = await selfSignedPair();
    const ca = await testAuthority();
    const engine = MergeEngine.open({
      peerId: 'mtls-peer',
      store: await DocumentStore.open(new MemoryEngine()),
    });
    const key = 'mtls-test-key-0123456789';
    const gw = await startGateway(new InProcessPeer(engine), {
      grpcPort: 0,
      httpPort: 0,
      apiKeys: [key],
      tls: { cert: server.cert, key: server.key, clientCa: ca.cert },
    });
    try {
      const me = await ca.issue('cli');
      const dql = (...flags: string[]) =>
        run(process.execPath, [
          main,
          'dql',
          'SELECT * FROM cars',
          '--gateway',
          `127.0.0.1:${gw.grpcPort}`,
          '--api-key',
          key,
          '--timeout',
          '5000',
          '--json',
          '--tls-ca',
          server.certPath,
          ...flags,
        ]).then(
          (r) => ({ code: 0, stderr: r.stderr }),
          (e: { stderr: string; code: number }) => e,
        );
      expect(await dql('--tls-cert', me.certPath, '--tls-key', me.keyPath)).toEqual({
        code: 0,
        stderr: '',
      });
      const anonymous = await dql();
      expect(anonymous.code).toBe(1);
      expect(anonymous.stderr).toMatch(/^lattice: UNAVAILABLE: /);
      const half = await dql('--tls-cert', me.certPath);
      expect(half.code).toBe(1);
      expect(half.stderr).toMatch(
        /BAD_FLAGS: a client certificate needs both --tls-cert and --tls-key/,
      );
    } finally {
      await gw.close();
      await engine.close();
      await engine.store.close();
      await server.remove();
      await ca.remove();
    }
  });

  it('observe prints the result, then each change', async () => {
    const child = spawn(
      process.execPath,
      [
        main,
        'observe',
        'SELECT * FROM tasks ORDER BY _id',
        '--json',
        '--count',
        '2',
        '--gateway',
        gateway,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    await waitFor(() => (out.includes('"initial"') ? true : undefined), {
      timeoutMs: 15_000,
      what: 'the initial batch',
    });
    await peer.engine.execute("INSERT INTO tasks DOCUMENTS ({'_id': 't1', 'done': false})");
    expect(await exited).toBe(0);
    const [initial, change] = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(initial).toMatchObject({ kind: 'initial' });
    expect(change).toMatchObject({
      kind: 'changes',
      changes: [{ kind: 'inserted', index: 0, item: { _id: 't1', done: false } }],
    });
  });

  it('subscribe registers, lists and cancels; the peer keeps the subscription', async () => {
    const sub = await lattice('subscribe', "SELECT * FROM cars WHERE color = 'red'", '--json');
    expect(sub.code).toBe(0);
    const { id } = JSON.parse(sub.stdout) as { id: string };
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(peer.engine.subscriptions.map((s) => s.statement)).toContain(
      "SELECT * FROM cars WHERE color = 'red'",
    );
    const list = await lattice('subscribe', '--list');
    expect(list.stdout).toContain(id);
    const cancel = await lattice('subscribe', '--cancel', id);
    expect(cancel.stdout.trim()).toBe(`cancelled ${id}`);
    const again = await lattice('subscribe', '--cancel', id);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/NOT_FOUND/);
  });

  it('peers and status describe this peer', async () => {
    const peers = await lattice('peers', '--json');
    expect(peers.code).toBe(0);
    expect(JSON.parse(peers.stdout)).toMatchObject({ peerId: peer.engine.peerId });
    const text = await lattice('peers');
    expect(text.stdout).toContain(`peer ${peer.engine.peerId}: 0 remote peers`);
    const status = await lattice('status');
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^peer ${peer.engine.peerId}, local commit \\d+`));
    expect(status.stdout).toContain('(no sync sessions)');
  });

  it('has help for every command, the services included', async () => {
    for (const command of ['dql', 'observe', 'subscribe', 'peers', 'status']) {
      const r = await run(process.execPath, [main, command, '--help']);
      expect(r.stdout).toMatch(/^Usage: lattice /);
      expect(r.stdout).toContain('--gateway');
    }
    // The service commands list their flags, variables and defaults.
    const merge = await run(process.execPath, [main, 'merge', '--help']);
    expect(merge.stdout).toMatch(/^Usage: lattice merge \[flags\]/);
    expect(merge.stdout).toMatch(/--identity-file <value>\n\s+file holding the peer identity/);
    expect(merge.stdout).toContain('(default rocksdb) [env LATTICE_ENGINE]');
  });
});
