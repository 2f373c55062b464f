/**
 * The RocksDB engine, through `@nxtedition/rocksdb`.
 *
 * @remarks
 * One database in one folder, the default column family, keys as the store lays them out.
 * Batches are RocksDB write batches (atomic); `sync: true` returns after the WAL is fsynced,
 * which is what makes an acknowledged commit survive a crash. The binding performs that
 * write on the calling thread: group commit in the store turns many commits into one such
 * write, so the event loop blocks once per group, not once per commit.
 */
import { RocksLevel } from '@nxtedition/rocksdb';
import type { EngineCapabilities, EngineOp, EngineRange, StorageEngine } from './engine.js';
import { storeError } from './errors.js';

/** Options of {@link RocksEngine}. */
export interface RocksEngineOptions {
  /** Block cache size in bytes (default 64 MiB). */
  readonly cacheSize?: number;
  /** Background threads for flushes and compactions (default 2). */
  readonly parallelism?: number;
}

const PAGE = 256;
const NO_OPTIONS = {};

/** A {@link StorageEngine} on RocksDB in the folder `location`. */
export class RocksEngine implements StorageEngine {
  readonly capabilities: EngineCapabilities = { durable: true };
  readonly location: string;
  readonly #db: RocksLevel;
  readonly #options: RocksEngineOptions;

  constructor(location: string, options: RocksEngineOptions = {}) {
    this.location = location;
    this.#options = options;
    this.#db = new RocksLevel(location);
  }

  async open(): Promise<void> {
    try {
      await this.#db.open({
        createIfMissing: true,
        cacheSize: this.#options.cacheSize ?? 64 * 1024 * 1024,
        parallelism: this.#options.parallelism ?? 2,
        infoLogLevel: null,
      });
    } catch (err) {
      throw storeError(
        'STORE_IO',
        `cannot open RocksDB at ${this.location}: ${message(err)}`,
        {},
        err,
      );
    }
  }

  async close(): Promise<void> {
    if (this.#db.status === 'open' || this.#db.status === 'opening') await this.#db.close();
  }

  getMany(keys: readonly Uint8Array[]): (Uint8Array | undefined)[] {
    try {
      return this.#db._getManySync(keys, {});
    } catch (err) {
      throw storeError('STORE_IO', `read failed: ${message(err)}`, {}, err);
    }
  }

  write(ops: readonly EngineOp[], options: { readonly sync: boolean }): void {
    const batch = this.#db.batch();
    try {
      for (const op of ops) {
        // The binding-level calls: abstract-level's put/del would run keys through its default
        // utf8 encoding and mangle binary bytes.
        if (op.type === 'put') batch._put(op.key, op.value, NO_OPTIONS);
        else batch._del(op.key, NO_OPTIONS);
      }
      batch._writeSync({ sync: options.sync });
    } catch (err) {
      throw storeError('STORE_IO', `write failed: ${message(err)}`, {}, err);
    } finally {
      void batch.close();
    }
  }

  *entries(range: EngineRange): Iterable<readonly [Uint8Array, Uint8Array]> {
    const it = this.#db._iterator({
      ...(range.gte ? { gte: range.gte } : {}),
      ...(range.gt ? { gt: range.gt } : {}),
      ...(range.lt ? { lt: range.lt } : {}),
      ...(range.lte ? { lte: range.lte } : {}),
      reverse: range.reverse === true,
      limit: range.limit ?? -1,
      keys: true,
      values: true,
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    try {
      // Small first step (point-like scans stop early), then larger ones.
      let size = 16;
      for (;;) {
        const { rows, finished } = it._nextvSync(size, {});
        for (let i = 0; i < rows.length; i += 2) yield [rows[i] as Buffer, rows[i + 1] as Buffer];
        if (finished) return;
        size = PAGE;
      }
    } finally {
      it._closeSync();
    }
  }

  approximateSize(gte: Uint8Array, lt: Uint8Array): number {
    // The binding exposes no GetApproximateSizes; count the bytes of the range instead.
    let bytes = 0;
    for (const [k, v] of this.entries({ gte, lt })) bytes += k.length + v.length;
    return bytes;
  }

  async compactRange(): Promise<void> {
    // The binding exposes no CompactRange; RocksDB compacts in the background on its own.
  }

  /** A RocksDB property (`rocksdb.estimate-num-keys`, `rocksdb.total-sst-files-size`, …). */
  property(name: string): string {
    return this.#db.getProperty(name);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
