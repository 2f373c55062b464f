/**
 * End to end, as a user runs it: two peers, each `lattice up` in its own process with its own
 * data folder, joined by the LAN transport (a static peer), subscribed at start; a write through
 * one peer's Ditto-compatible HTTP API shows up through the other's, both ways, and survives a
 * restart of the receiving peer.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, tempDir, waitFor } from '@lattice/testing';
import { describe, expect, it } from 'vitest';

const main = join(fileURLToPath(import.meta.url), '../../dist/main.js');

interface RunningPeer {
  readonly child: ChildProcess;
  readonly http: number;
  output(): string;
}

async function up(name: string, data: string, args: string[]): Promise<RunningPeer> {
  const http = await freePort();
  const child = spawn(
    process.execPath,
    [
      main,
      'up',
      '--namespace',
      name,
      '--data',
      data,
      '--grpc-port',
      '0',
      '--http-port',
      String(http),
      '--no-discovery',
      '--subscribe',
      'SELECT * FROM notes',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  await waitFor(() => /ready with 7 services/.test(out) || undefined, {
    timeoutMs: 30_000,
    what: `${name} up (${out})`,
  });
  return { child, http, output: () => out };
}

async function stop(p: RunningPeer): Promise<number | null> {
  const exited = once(p.child, 'exit');
  p.child.kill('SIGINT');
  const [code] = (await exited) as [number | null];
  return code;
}

async function execute(
  p: RunningPeer,
  statement: string,
  args: Record<string, unknown> = {},
): Promise<{ items: unknown[]; mutatedDocumentIds: unknown[] }> {
  const res = await fetch(`http://127.0.0.1:${p.http}/api/v4/store/execute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ statement, args }),
  });
  const body = (await res.json()) as {
    items: unknown[];
    mutatedDocumentIds: unknown[];
    error?: { description: string };
  };
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${body.error?.description}`);
  return body;
}

describe('two peers as two processes over the LAN transport', () => {
  it('sync writes both ways through the HTTP API, and across a restart', async () => {
    await using dirA = await tempDir('lattice-e2e-a-');
    await using dirB = await tempDir('lattice-e2e-b-');
    const lanA = await freePort();
    const a = await up('e2ea', dirA.path, ['--lan-port', String(lanA)]);
    let b = await up('e2eb', dirB.path, ['--lan-port', '0', '--peer', `tcp://127.0.0.1:${lanA}`]);
    try {
      const ins = await execute(a, "INSERT INTO notes DOCUMENTS ({'_id': 'n1', 'text': 'from a'})");
      expect(ins.mutatedDocumentIds).toEqual(['n1']);
      await waitFor(
        async () => (await execute(b, 'SELECT * FROM notes')).items.length === 1 || undefined,
        {
          timeoutMs: 20_000,
          what: 'the note on b',
        },
      );
      await execute(b, "UPDATE notes SET reply = 'from b' WHERE _id = 'n1'");
      await waitFor(
        async () =>
          JSON.stringify((await execute(a, 'SELECT * FROM notes')).items) ===
            JSON.stringify([{ _id: 'n1', reply: 'from b', text: 'from a' }]) || undefined,
        { timeoutMs: 20_000, what: 'the reply on a' },
      );

      // b goes away; a writes; b comes back with its data and catches up.
      expect(await stop(b)).toBe(0);
      await execute(a, "INSERT INTO notes DOCUMENTS ({'_id': 'n2', 'text': 'while b was away'})");
      b = await up('e2eb', dirB.path, ['--lan-port', '0', '--peer', `tcp://127.0.0.1:${lanA}`]);
      await waitFor(
        async () =>
          (await execute(b, 'SELECT _id FROM notes ORDER BY _id')).items.length === 2 || undefined,
        {
          timeoutMs: 20_000,
          what: 'b caught up',
        },
      );
      expect((await execute(b, 'SELECT * FROM notes ORDER BY _id')).items).toEqual(
        (await execute(a, 'SELECT * FROM notes ORDER BY _id')).items,
      );
    } finally {
      const codes = await Promise.all([stop(a), stop(b)]);
      expect(codes, a.output() + b.output()).toEqual([0, 0]);
    }
  }, 120_000);

  it('with an authority, admits a certified device under its permissions and refuses others', async () => {
    await using dirHub = await tempDir('lattice-auth-hub-');
    await using dirDev = await tempDir('lattice-auth-dev-');
    await using dirOther = await tempDir('lattice-auth-other-');
    const tool = (args: string[]): string =>
      execFileSync(process.execPath, [main, 'identity', ...args], { encoding: 'utf8' }).trim();
    const authorityKey = tool(['authority', '--key-file', join(dirHub.path, 'authority.key')]);
    // The device's peer id lives in its store: a first start prints it.
    let dev = await up('authdev', dirDev.path, ['--lan-port', '0']);
    const devId = /peer ([0-9a-f]{32}) ready/.exec(dev.output())?.[1] as string;
    expect(await stop(dev)).toBe(0);
    const cert = join(dirDev.path, 'device.cert');
    tool([
      'issue',
      '--authority-key-file',
      join(dirHub.path, 'authority.key'),
      '--peer-id',
      devId,
      '--permissions',
      JSON.stringify({
        read: { queriesByCollection: { notes: ["_id.region = 'eu'"] } },
        write: { queriesByCollection: { notes: ["_id.region = 'eu'"] } },
      }),
      '--valid-for',
      '1d',
      '--out',
      cert,
    ]);
    const revoked = join(dirHub.path, 'revoked');
    tool([
      'revoke',
      '--authority-key-file',
      join(dirHub.path, 'authority.key'),
      '--revocations-file',
      revoked,
    ]);
    const lanHub = await freePort();
    const dial = ['--lan-port', '0', '--peer', `tcp://127.0.0.1:${lanHub}`];
    const hub = await up('authhub', dirHub.path, [
      '--lan-port',
      String(lanHub),
      '--authority-keys',
      authorityKey,
      '--revocations-file',
      revoked,
    ]);
    dev = await up('authdev', dirDev.path, [...dial, '--certificate-file', cert]);
    const other = await up('authother', dirOther.path, dial);
    try {
      await execute(hub, 'INSERT INTO notes DOCUMENTS (:eu), (:us)', {
        eu: { _id: { region: 'eu', n: 1 } },
        us: { _id: { region: 'us', n: 2 } },
      });
      await execute(dev, 'INSERT INTO notes DOCUMENTS (:eu), (:us)', {
        eu: { _id: { region: 'eu', n: 3 } },
        us: { _id: { region: 'us', n: 4 } },
      });
      // The device reads only region eu; of its writes, the hub takes only region eu.
      await waitFor(
        async () => (await execute(hub, 'SELECT * FROM notes')).items.length === 3 || undefined,
        { timeoutMs: 20_000, what: "the device's eu note on the hub" },
      );
      await waitFor(
        async () => (await execute(dev, 'SELECT * FROM notes')).items.length === 3 || undefined,
        { timeoutMs: 20_000, what: "the hub's eu note on the device" },
      );
      const ids = async (p: RunningPeer) =>
        (await execute(p, 'SELECT _id FROM notes ORDER BY _id.n')).items.map(
          (d) => (d as { _id: { n: number } })._id.n,
        );
      expect(await ids(hub)).toEqual([1, 2, 3]);
      expect(await ids(dev)).toEqual([1, 3, 4]);
      await waitFor(() => /MUX_NOT_IN_MESH/.test(hub.output()) || undefined, {
        timeoutMs: 20_000,
        what: `the uncertified peer refused (${hub.output()})`,
      });
      expect((await execute(other, 'SELECT * FROM notes')).items).toEqual([]);

      // The authority revokes the device; the hub reads the list again and drops it.
      tool([
        'revoke',
        '--authority-key-file',
        join(dirHub.path, 'authority.key'),
        '--peer-id',
        devId,
        '--revocations-file',
        revoked,
      ]);
      hub.child.kill('SIGHUP');
      await waitFor(() => /MUX_PEER_REVOKED/.test(hub.output()) || undefined, {
        timeoutMs: 20_000,
        what: `the device revoked (${hub.output()})`,
      });
      await execute(hub, 'INSERT INTO notes DOCUMENTS (:eu)', {
        eu: { _id: { region: 'eu', n: 5 } },
      });
      await new Promise((r) => setTimeout(r, 2_000));
      expect(await ids(dev)).toEqual([1, 3, 4]);
    } finally {
      const codes = await Promise.all([stop(hub), stop(dev), stop(other)]);
      expect(codes, hub.output() + dev.output() + other.output()).toEqual([0, 0, 0]);
    }
  }, 120_000);

  it('with a mesh key, syncs with a peer that holds it and refuses one that holds another', async () => {
    await using dirA = await tempDir('lattice-mesh-a-');
    await using dirB = await tempDir('lattice-mesh-b-');
    await using dirC = await tempDir('lattice-mesh-c-');
    const key = join(dirA.path, 'mesh.key');
    const other = join(dirC.path, 'mesh.key');
    writeFileSync(key, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    writeFileSync(other, `${'cd'.repeat(32)}\n`, { mode: 0o600 });
    const lanA = await freePort();
    const dial = ['--lan-port', '0', '--peer', `tcp://127.0.0.1:${lanA}`];
    const a = await up('mesha', dirA.path, ['--lan-port', String(lanA), '--mesh-key-file', key]);
    const b = await up('meshb', dirB.path, [...dial, '--mesh-key-file', key]);
    const c = await up('meshc', dirC.path, [...dial, '--mesh-key-file', other]);
    try {
      await execute(a, "INSERT INTO notes DOCUMENTS ({'_id': 'n1', 'text': 'members only'})");
      await waitFor(
        async () => (await execute(b, 'SELECT * FROM notes')).items.length === 1 || undefined,
        { timeoutMs: 20_000, what: 'the note on b (same mesh key)' },
      );
      await waitFor(() => /MUX_NOT_IN_MESH/.test(c.output()) || undefined, {
        timeoutMs: 20_000,
        what: `c's link refused (${c.output()})`,
      });
      expect((await execute(c, 'SELECT * FROM notes')).items).toEqual([]);
    } finally {
      const codes = await Promise.all([stop(a), stop(b), stop(c)]);
      expect(codes, a.output() + b.output() + c.output()).toEqual([0, 0, 0]);
    }
  }, 120_000);
});
