import { asPeerId } from '@lattice/crdt';
import type { DocId, VersionVector } from '@lattice/crdt';
import type { CommitWrite, StorageEngine } from '@lattice/store';
import { MemoryEngine, RocksEngine } from '@lattice/store';
import { tempDir } from '@lattice/testing';
import type { TempDir } from '@lattice/testing';

/** A version vector with one entry. */
export function vv(counter: number, peer = 'p1'): VersionVector {
  return new Map([[asPeerId(peer), counter]]);
}

/** A put of a live document whose state bytes are its JSON (the store treats state as opaque). */
export function put(
  collection: string,
  value: Record<string, unknown> & { _id: DocId },
  counter = 1,
): CommitWrite {
  return {
    collection,
    id: value._id,
    state: new TextEncoder().encode(JSON.stringify(value)),
    value,
    versionVector: vv(counter),
  };
}

/** A tombstone write. */
export function tomb(collection: string, id: DocId, deletedAt: number, counter = 2): CommitWrite {
  return { collection, id, state: Uint8Array.of(1), versionVector: vv(counter), deletedAt };
}

/** Engine factories the store tests run against. */
export const ENGINES: readonly {
  name: string;
  make: () => Promise<{ engine: StorageEngine; dir?: TempDir; reopen: () => StorageEngine }>;
}[] = [
  {
    name: 'memory',
    make: async () => {
      const engine = new MemoryEngine();
      return { engine, reopen: () => engine };
    },
  },
  {
    name: 'rocksdb',
    make: async () => {
      const dir = await tempDir('lattice-store-');
      return { engine: new RocksEngine(dir.path), dir, reopen: () => new RocksEngine(dir.path) };
    },
  },
];
