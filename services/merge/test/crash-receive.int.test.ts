/**
 * Crash in the middle of receiving: the receiving peer (a child process on RocksDB) is SIGKILLed
 * mid-sync; it never acknowledged what it had not made durable, and after a restart it resumes
 * from its checkpoint and converges.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NatsBus } from '@lattice/bus';
import { busChannel, readCheckpoint } from '@lattice/merge';
import { DocumentStore, RocksEngine } from '@lattice/store';
import { tempDir, waitFor } from '@lattice/testing';
import { describe, expect, inject, it } from 'vitest';
import { peer } from './helpers.js';

const fixture = fileURLToPath(new URL('./fixtures/sync-receiver.mjs', import.meta.url));

function startReceiver(ns: string, dir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [fixture, inject('natsUrl'), ns, dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`receiver exited early (${code})`)));
    child.stdout?.on('data', (c: Buffer) => {
      if (c.toString().includes('ready')) resolve(child);
    });
  });
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await exited;
}

describe('crash while receiving', () => {
  it('acknowledges only durable batches and resumes from its checkpoint after SIGKILL', async () => {
    await using dir = await tempDir('lattice-crash-recv-');
    const ns = `crashrecv${process.pid}`;
    const bus = await NatsBus.connect({ servers: inject('natsUrl') });
    const sender = await peer('sender', { session: { batchSize: 50, window: 2 } });
    const body = 'x'.repeat(1000);

    // First run: the receiver is connected and idle, then six commits of 500 documents stream to
    // it (its checkpoint advances commit by commit); it is killed once some were acknowledged.
    let channel = busChannel(bus, `${ns}.to-receiver`, `${ns}.to-sender`);
    await bus.flush();
    let child = await startReceiver(ns, dir.path);
    let session = sender.connect('receiver', channel).catch(() => undefined);
    await waitFor(() => sender.syncStatus()[0]?.state === 'idle' || undefined, {
      timeoutMs: 30_000,
      what: 'idle',
    });
    for (let c = 0; c < 6; c++) {
      const docs = Array.from({ length: 500 }, (_, i) => ({ _id: c * 500 + i, body }));
      await sender.execute(
        `INSERT INTO c DOCUMENTS ${docs.map((_, i) => `(:d${i})`).join(', ')}`,
        Object.fromEntries(docs.map((d, i) => [`d${i}`, d])),
      );
    }
    const all = sender.store.lastSeq;
    await waitFor(() => (sender.syncStatus()[0]?.ackedThrough ?? 0) >= 2 || undefined, {
      timeoutMs: 30_000,
      what: 'first acks',
    });
    await kill(child);
    const acked = sender.syncStatus().find((s) => s.remotePeer === 'receiver')?.ackedThrough ?? 0;
    channel.close();
    await sender.disconnect('receiver');
    await session;
    expect(acked).toBeLessThan(all); // killed mid-transfer

    // Everything acknowledged is in the receiver's store, and its checkpoint covers it.
    const receiverStore = await DocumentStore.open(new RocksEngine(dir.path));
    try {
      expect(readCheckpoint(receiverStore, 'sender').through).toBeGreaterThanOrEqual(acked);
      const { commits } = sender.store.changes(0, { limit: 10_000 });
      const ackedIds = commits
        .filter((c) => c.seq <= acked)
        .flatMap((c) => c.collections.flatMap((x) => x.ids));
      const held = receiverStore.getEncoded('c', ackedIds);
      expect(held.every((h) => h.record !== undefined)).toBe(true);
    } finally {
      await receiverStore.close();
    }

    // Second run: resumes and converges, without sending everything again.
    const firstRunSent =
      sender.syncStatus().find((s) => s.remotePeer === 'receiver')?.documentsSent ?? 0;
    channel = busChannel(bus, `${ns}.to-receiver`, `${ns}.to-sender`);
    await bus.flush();
    child = await startReceiver(ns, dir.path);
    session = sender.connect('receiver', channel).catch(() => undefined);
    await waitFor(
      () => {
        const s = sender.syncStatus().find((x) => x.remotePeer === 'receiver');
        return (s?.ackedThrough ?? 0) >= all && s?.state === 'idle' ? true : undefined;
      },
      { timeoutMs: 60_000, what: 'second run complete' },
    );
    const secondRunSent =
      sender.syncStatus().find((s) => s.remotePeer === 'receiver')?.documentsSent ?? 0;
    await kill(child);
    channel.close();
    await sender.disconnect('receiver');
    await session;
    expect(firstRunSent + secondRunSent).toBeLessThan(3000 + 2 * 50 * 2); // at most the in-flight window twice
    const final = await DocumentStore.open(new RocksEngine(dir.path));
    try {
      expect(final.select('SELECT count(*) AS n FROM c')).toEqual([{ n: 3000 }]);
    } finally {
      await final.close();
    }
    await sender.close();
    await bus.close();
  }, 120_000);
});
