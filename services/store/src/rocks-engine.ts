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
import type { RocksIterator } from '@nxtedition/rocksdb';
import type {
  EngineCapabilities,
  EngineOp,
  EngineRange,
  EngineSizes,
  StorageEngine,
} from './engine.js';
import { storeError } from './errors.js';

/** Options of {@link RocksEngine}. */
export interface RocksEngineOptions {
  /** Block cache size in bytes (default 64 MiB). */
  readonly cacheSize?: number;
  /** Background threads for flushes and compactions (default 2). */
  readonly parallelism?: number;
}

const PAGE = 256;
/** Entries read by the first, point-like step of a scan (see `entries`). */
const FIRST_STEP = 2;
/** Tailing iterators unused for between one and two of these are closed (ms). */
const TAIL_IDLE_MS = 5_000;
const NO_OPTIONS = {};
const EMPTY = new Uint8Array(0);

/** A {@link StorageEngine} on RocksDB in the folder `location`. */
export class RocksEngine implements StorageEngine {
  readonly capabilities: EngineCapabilities = { durable: true };
  readonly location: string;
  readonly #db: RocksLevel;
  readonly #options: RocksEngineOptions;
  /** Long-lived tailing iterators (with and without values) for first steps; see `entries`. */
  #tail: RocksIterator | undefined;
  #tailKeys: RocksIterator | undefined;
  /** Closes idle tailing iterators (see `#closeIdleTails`). */
  #tailTimer: NodeJS.Timeout | undefined;
  #tailUsed = false;

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
    this.#closeTails();
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
    const limit = range.limit ?? -1;
    const values = range.values !== false;
    if (limit === 0) return;
    // The first step answers point-like scans (an index equality, `limit: 1`) without creating
    // an iterator: RocksDB's NewIterator costs about three point reads, a re-seek of a
    // long-lived tailing iterator about one, plus ~0.2 of one per entry read (so only a couple
    // of entries are read that way). Reverse point-like scans use a one-call query.
    const point = range.few === true || (limit > 0 && limit <= FIRST_STEP);
    const first = limit > 0 && limit < FIRST_STEP ? limit : FIRST_STEP;
    const head = !point
      ? { rows: [] as Buffer[], finished: false }
      : range.reverse === true || (range.gte === undefined && range.gt === undefined)
        ? this.#queryStep(range, first, values)
        : this.#tailStep(range, first, values);
    for (let i = 0; i < head.rows.length; i += 2)
      yield [head.rows[i] as Buffer, (values ? head.rows[i + 1] : EMPTY) as Uint8Array];
    const taken = head.rows.length / 2;
    if (head.finished || taken === limit) return;
    // More to read: a dedicated iterator from just after the last key (a snapshot from here on).
    const last = head.rows[head.rows.length - 2];
    const rest =
      last === undefined
        ? { ...lowerOf(range), ...upperOf(range) }
        : range.reverse === true
          ? { lt: last, ...lowerOf(range) }
          : { gt: last, ...upperOf(range) };
    const it = this.#db._iterator({
      ...rest,
      reverse: range.reverse === true,
      limit: limit < 0 ? -1 : limit - taken,
      keys: true,
      values,
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    try {
      // A small first page (scans that stop early), then larger ones.
      let size = 16;
      for (;;) {
        const { rows, finished } = it._nextvSync(size, NO_OPTIONS);
        size = PAGE;
        for (let i = 0; i < rows.length; i += 2)
          yield [rows[i] as Buffer, (values ? rows[i + 1] : EMPTY) as Uint8Array];
        if (finished) return;
      }
    } finally {
      it._closeSync();
    }
  }

  /**
   * Closes the tailing iterators when they were not used since the last tick of the timer.
   * @remarks A tailing iterator pins the memtables and files it last saw (until its next seek):
   * an idle one would keep flushed memtables in memory and compacted files on disk.
   */
  #closeIdleTails(): void {
    if (this.#tailUsed) {
      this.#tailUsed = false;
      return;
    }
    this.#closeTails();
  }

  #closeTails(): void {
    clearInterval(this.#tailTimer);
    this.#tailTimer = undefined;
    this.#tail?._closeSync();
    this.#tailKeys?._closeSync();
    this.#tail = this.#tailKeys = undefined;
  }

  /** Up to `n` entries of a forward range through the shared tailing iterator. */
  #tailStep(range: EngineRange, n: number, values: boolean): { rows: Buffer[]; finished: boolean } {
    let it = values ? this.#tail : this.#tailKeys;
    if (!it) {
      // Created without bounds (they are fixed at creation); bounds are checked here.
      it = this.#db._iterator({
        tailing: true,
        keys: true,
        values,
        keyEncoding: 'buffer',
        valueEncoding: 'buffer',
      });
      if (values) this.#tail = it;
      else this.#tailKeys = it;
      this.#tailTimer ??= setInterval(() => this.#closeIdleTails(), TAIL_IDLE_MS).unref();
    }
    this.#tailUsed = true;
    it._seekSync((range.gte ?? range.gt) as Uint8Array);
    // One extra entry: a `gt` bound may be the first key found.
    const want = range.gte === undefined && range.gt !== undefined ? n + 1 : n;
    const { rows } = it._nextvSync(want, NO_OPTIONS);
    const out: Buffer[] = [];
    let finished = rows.length < want * 2;
    for (let i = 0; i < rows.length; i += 2) {
      const k = rows[i] as Buffer;
      if (range.gte === undefined && range.gt !== undefined && k.equals(range.gt)) continue;
      if (
        (range.lt && Buffer.compare(k, range.lt) >= 0) ||
        (range.lte && Buffer.compare(k, range.lte) > 0)
      ) {
        finished = true;
        break;
      }
      if (out.length === n * 2) {
        finished = false;
        break;
      }
      out.push(k, rows[i + 1] as Buffer);
    }
    return { rows: out, finished };
  }

  /** Up to `n` entries of a range in one call (no iterator object). */
  #queryStep(
    range: EngineRange,
    n: number,
    values: boolean,
  ): { rows: Buffer[]; finished: boolean } {
    // With a limit the binding reports `finished` once the limit is reached, whether or not
    // more entries follow: ask for one more to know.
    const { rows } = this.#db.querySync({
      ...lowerOf(range),
      ...upperOf(range),
      reverse: range.reverse === true,
      limit: n + 1,
      keys: true,
      values,
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    if (rows.length <= n * 2) return { rows, finished: true };
    rows.length = n * 2;
    return { rows, finished: false };
  }

  approximateSize(gte: Uint8Array, lt: Uint8Array): number {
    // The binding exposes no GetApproximateSizes (per key range); count the bytes of the range.
    let bytes = 0;
    for (const [k, v] of this.entries({ gte, lt })) bytes += k.length + v.length;
    return bytes;
  }

  async compactRange(): Promise<void> {
    // The binding exposes no CompactRange (nor CompactFiles or SuggestCompactRange); RocksDB
    // compacts in the background on its own. The store calls this after reaping regardless.
  }

  sizes(): EngineSizes {
    // Whole-database estimates (default column family) through GetProperty, which the binding
    // does expose.
    return {
      liveDataBytes: this.#intProperty('rocksdb.estimate-live-data-size'),
      diskBytes: this.#intProperty('rocksdb.total-sst-files-size'),
      memoryBytes: this.#intProperty('rocksdb.cur-size-all-mem-tables'),
    };
  }

  #intProperty(name: string): number {
    const n = Number(this.#db.getProperty(name));
    return Number.isFinite(n) ? n : 0;
  }

  /** A RocksDB property (`rocksdb.estimate-num-keys`, `rocksdb.total-sst-files-size`, …). */
  property(name: string): string {
    return this.#db.getProperty(name);
  }
}

function lowerOf(range: EngineRange): { gte?: Uint8Array; gt?: Uint8Array } {
  return range.gte ? { gte: range.gte } : range.gt ? { gt: range.gt } : {};
}

function upperOf(range: EngineRange): { lt?: Uint8Array; lte?: Uint8Array } {
  return range.lt ? { lt: range.lt } : range.lte ? { lte: range.lte } : {};
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
