/**
 * Crash safety: a child process commits in a loop and reports each acknowledged commit; it is
 * killed with SIGKILL at random moments, many times; after each kill the database is reopened
 * and every acknowledged commit must be there, whole, and the sequence must continue.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DocumentStore, RocksEngine } from '@lattice/store';
import { tempDir } from '@lattice/testing';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/crash-writer.mjs', import.meta.url));
const ROUNDS = 12;

interface Run {
  openedAt: number;
  acks: { seq: number; tag: string }[];
}

async function runAndKill(dir: string, ackTarget: number, extraMs: number): Promise<Run> {
  const child = spawn(process.execPath, [fixture, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const run: Run = { openedAt: -1, acks: [] };
  let buffered = '';
  let killed = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => {
      if (!killed) reject(new Error(`writer exited on its own (code ${code})`));
    });
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const [kind, a, b] = line.split(' ');
        if (kind === 'open') run.openedAt = Number(a);
        if (kind === 'ack') run.acks.push({ seq: Number(a), tag: b as string });
        if (!killed && run.acks.length >= ackTarget) {
          killed = true;
          setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, extraMs);
        }
      }
    });
  });
  await exited;
  return run;
}

describe('crash safety on RocksDB', () => {
  it(`keeps every acknowledged commit whole across ${ROUNDS} SIGKILLs`, async () => {
    await using dir = await tempDir('lattice-crash-');
    let lastSeq = 0;
    const acked = new Map<string, number>();
    for (let round = 0; round < ROUNDS; round++) {
      const run = await runAndKill(
        dir.path,
        1 + Math.floor(Math.random() * 60),
        Math.floor(Math.random() * 15),
      );
      expect(run.openedAt).toBe(lastSeq); // the child saw exactly what survived the last crash
      for (const a of run.acks) acked.set(a.tag, a.seq);

      const store = await DocumentStore.open(new RocksEngine(dir.path));
      try {
        expect(store.lastSeq).toBeGreaterThanOrEqual(Math.max(0, ...run.acks.map((a) => a.seq)));
        expect(store.lastSeq).toBeGreaterThanOrEqual(lastSeq);
        lastSeq = store.lastSeq;
        // Every acknowledged commit is present with its documents and its sequence.
        for (const [tag, seq] of acked) {
          const docs = store.get(
            'crash',
            [0, 1, 2, 3, 4].map((j) => `${tag}-${j}`),
          );
          expect(docs.map((d) => d.value?.['tag'])).toEqual([tag, tag, tag, tag, tag]);
          expect(docs.every((d) => d.seq === seq)).toBe(true);
        }
        // Every commit in the store is whole (5 documents), and sequences have no gaps.
        const counts = new Map<string, number>();
        for (const d of store.values('crash')) {
          const t = String(d['tag']);
          counts.set(t, (counts.get(t) ?? 0) + 1);
        }
        expect([...counts.values()].every((c) => c === 5)).toBe(true);
        expect(counts.size).toBe(lastSeq);
        const seqs: number[] = [];
        let since = 0;
        for (;;) {
          const page = store.changes(since, { limit: 1000 });
          seqs.push(...page.commits.map((c) => c.seq));
          if (!page.more) break;
          since = page.commits.at(-1)?.seq ?? since;
        }
        expect(seqs).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
      } finally {
        await store.close();
      }
    }
    expect(acked.size).toBeGreaterThan(ROUNDS);
  }, 120_000);
});
