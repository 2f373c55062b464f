import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asPeerId } from '@lattice/crdt';
import { DocumentStore, RocksEngine } from '@lattice/store';
import { tempDir } from '@lattice/testing';
import { describe, expect, it } from 'vitest';

const main = join(fileURLToPath(import.meta.url), '../../dist/main.js');

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, out, err };
}

describe('lattice store stats', () => {
  it('prints counts per collection from a data folder', async () => {
    await using data = await tempDir('lattice-stats-');
    const store = await DocumentStore.open(new RocksEngine(join(data.path, 'store')));
    const vv = new Map([[asPeerId('p'), 1]]);
    await store.commit({
      writes: [
        {
          collection: 'cars',
          id: 'a',
          state: Uint8Array.of(1),
          value: { _id: 'a' },
          versionVector: vv,
        },
        { collection: 'cars', id: 'b', state: Uint8Array.of(1), versionVector: vv, deletedAt: 1 },
        {
          collection: 'people',
          id: 1,
          state: Uint8Array.of(1),
          value: { _id: 1 },
          versionVector: vv,
        },
      ],
    });
    await store.createIndex('cars', 'by_make', ['make']);
    await store.close();

    const json = await run(['store', 'stats', '--data', data.path, '--json']);
    expect(json.code, json.err).toBe(0);
    const report = JSON.parse(json.out) as {
      lastSeq: number;
      collections: { collection: string; documents: number; tombstones: number; indexes: number }[];
      engine: { liveDataBytes: number; diskBytes: number; memoryBytes: number };
    };
    expect(report.lastSeq).toBe(1);
    // RocksDB's own estimates: the reopened store's data is in files (its WAL was replayed).
    expect(report.engine.diskBytes + report.engine.memoryBytes).toBeGreaterThan(0);
    expect(
      report.collections.map((c) => [c.collection, c.documents, c.tombstones, c.indexes]),
    ).toEqual([
      ['cars', 1, 1, 1],
      ['people', 1, 0, 0],
    ]);
    const text = await run(['store', 'stats', '--data', data.path]);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toMatch(/cars\s+1\s+1\s+1/);
    expect(text.out).toMatch(/engine: \d+ bytes of live data, \d+ in files, \d+ in memtables/);
  });

  it('names a bad flag', async () => {
    const r = await run(['store', 'stats', '--dta', '/nowhere']);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('--dta');
  });
});
