import { tempDir } from '@lattice/testing';
import type { TempDir } from '@lattice/testing';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { MemoryEngine, RocksEngine } from '@lattice/store';
import { runStorageEngineContractTests } from '@lattice/store/testing';

const dirs: TempDir[] = [];
afterAll(async () => {
  for (const d of dirs) await d.remove();
});

runStorageEngineContractTests('memory', async () => new MemoryEngine());
runStorageEngineContractTests('rocksdb', async () => {
  const d = await tempDir('lattice-engine-');
  dirs.push(d);
  return new RocksEngine(d.path);
});

describe('RocksEngine tailing iterators', () => {
  it('answers point-like scans across idle closes of its tailing iterators', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const d = await tempDir('lattice-engine-');
    dirs.push(d);
    const e = new RocksEngine(d.path);
    await e.open();
    try {
      const b = (s: string): Uint8Array => new TextEncoder().encode(s);
      const first = (): string | undefined => {
        for (const [k] of e.entries({ gte: b('k'), lt: b('l'), few: true }))
          return new TextDecoder().decode(k);
        return undefined;
      };
      e.write([{ type: 'put', key: b('k2'), value: b('x') }], { sync: false });
      expect(first()).toBe('k2');
      // Idle for two ticks: the iterators are closed; the next scan opens them again.
      vi.advanceTimersByTime(12_000);
      e.write([{ type: 'put', key: b('k1'), value: b('x') }], { sync: false });
      expect(first()).toBe('k1');
      vi.advanceTimersByTime(6_000); // used since the last tick: kept
      e.write([{ type: 'del', key: b('k1') }], { sync: false });
      expect(first()).toBe('k2');
    } finally {
      await e.close();
      vi.useRealTimers();
    }
  });
});
