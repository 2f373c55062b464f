/**
 * End to end, as a user runs it: two peers, each `lattice up` in its own process with its own
 * data folder, joined by the LAN transport (a static peer), subscribed at start; a write through
 * one peer's Ditto-compatible HTTP API shows up through the other's, both ways, and survives a
 * restart of the receiving peer.
 */
import { spawn } from 'node:child_process';
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
