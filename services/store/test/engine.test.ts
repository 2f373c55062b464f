import { tempDir } from '@lattice/testing';
import type { TempDir } from '@lattice/testing';
import { afterAll } from 'vitest';
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
