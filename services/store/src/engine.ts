/**
 * The storage engine interface: an ordered byte key-value store with atomic batches.
 *
 * @remarks
 * Everything the store knows about documents, indexes and logs lives in the key layout above
 * it (`keys.ts`); an engine only orders bytes. Reads, writes and iteration are synchronous
 * on purpose: the RocksDB binding offers synchronous calls that answer from memtables and the
 * block cache in microseconds, the DQL executor reads documents synchronously, and a commit
 * that reads old values and writes new ones in one JavaScript turn cannot interleave with
 * another commit. Engines pass one contract suite (`@lattice/store/testing`).
 */

/** One change in a write batch. */
export type EngineOp =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: Uint8Array };

/** A key range for iteration; bounds are bytes, compared bytewise. */
export interface EngineRange {
  readonly gte?: Uint8Array;
  readonly gt?: Uint8Array;
  readonly lt?: Uint8Array;
  readonly lte?: Uint8Array;
  readonly reverse?: boolean;
  /** Stop after this many entries. */
  readonly limit?: number;
  /** `false`: the caller needs keys only (an engine may yield empty values). */
  readonly values?: boolean;
  /**
   * The caller expects at most a few entries (an equality prefix, a `limit` of one): an engine
   * may answer with a cheaper point-like seek before it sets up a full iteration.
   */
  readonly few?: boolean;
}

/** What an engine promises. */
export interface EngineCapabilities {
  /** A write with `sync: true` survives a process or machine crash once it returns. */
  readonly durable: boolean;
}

/** An engine's size estimates for everything it holds. */
export interface EngineSizes {
  /** Estimated bytes of live data (what compaction would leave). */
  readonly liveDataBytes: number;
  /** Bytes of the engine's files on disk (0 in memory). */
  readonly diskBytes: number;
  /** Bytes held in memory for writes not yet in files (memtables; everything in memory). */
  readonly memoryBytes: number;
}

/** An ordered key-value store with atomic batches. */
export interface StorageEngine {
  readonly capabilities: EngineCapabilities;
  /** Opens the engine (creates it when missing). */
  open(): Promise<void>;
  /** Closes the engine; idempotent. */
  close(): Promise<void>;
  /** The values of `keys`, `undefined` where absent. */
  getMany(keys: readonly Uint8Array[]): (Uint8Array | undefined)[];
  /**
   * Applies every op atomically, in order (a later op on the same key wins).
   * @param sync - return only once the batch is durable (synced WAL); ignored by memory engines.
   */
  write(ops: readonly EngineOp[], options: { readonly sync: boolean }): void;
  /** Entries in `range`, ascending by key (descending when `reverse`). */
  entries(range: EngineRange): Iterable<readonly [Uint8Array, Uint8Array]>;
  /** Approximate bytes on disk (or in memory) for keys in `[gte, lt)`. */
  approximateSize(gte: Uint8Array, lt: Uint8Array): number;
  /**
   * Asks the engine to compact `[gte, lt)` (drop deleted entries and their markers); resolves
   * when done. A no-op where the engine cannot (memory; the RocksDB binding lacks it).
   */
  compactRange(gte: Uint8Array, lt: Uint8Array): Promise<void>;
  /** Size estimates for the whole engine. */
  sizes(): EngineSizes;
}

/** Bytewise comparison of two keys. */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** Whether `key` lies in `range` (bounds only; no limit or direction). */
export function inRange(key: Uint8Array, range: EngineRange): boolean {
  if (range.gte && compareKeys(key, range.gte) < 0) return false;
  if (range.gt && compareKeys(key, range.gt) <= 0) return false;
  if (range.lt && compareKeys(key, range.lt) >= 0) return false;
  if (range.lte && compareKeys(key, range.lte) > 0) return false;
  return true;
}

/**
 * An in-memory engine: a sorted array of keys and a map of values.
 * @remarks For unit tests and small ephemeral peers. Inserts cost O(n); it is exact, not fast.
 * Iteration reads a snapshot of the range taken when iteration starts.
 */
export class MemoryEngine implements StorageEngine {
  readonly capabilities: EngineCapabilities = { durable: false };
  #keys: Buffer[] = [];
  readonly #values = new Map<string, Uint8Array>();
  #open = false;

  async open(): Promise<void> {
    this.#open = true;
  }

  async close(): Promise<void> {
    this.#open = false;
  }

  #check(): void {
    if (!this.#open) throw new Error('memory engine is not open');
  }

  getMany(keys: readonly Uint8Array[]): (Uint8Array | undefined)[] {
    this.#check();
    return keys.map((k) => this.#values.get(hex(k)));
  }

  write(ops: readonly EngineOp[]): void {
    this.#check();
    for (const op of ops) {
      const h = hex(op.key);
      const had = this.#values.has(h);
      if (op.type === 'put') {
        this.#values.set(h, Uint8Array.from(op.value));
        if (!had) this.#keys.splice(this.#lowerBound(op.key), 0, Buffer.from(op.key));
      } else if (had) {
        this.#values.delete(h);
        this.#keys.splice(this.#lowerBound(op.key), 1);
      }
    }
  }

  #lowerBound(key: Uint8Array): number {
    let lo = 0;
    let hi = this.#keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.#keys[mid] as Buffer, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  *entries(range: EngineRange): Iterable<readonly [Uint8Array, Uint8Array]> {
    this.#check();
    // The snapshot holds only what the iteration can yield: up to `limit` entries from the end
    // it starts at (a page of a large range costs its page, not the rest of the range).
    const limit = range.limit ?? Infinity;
    const keys = this.#keys;
    const picked: [Uint8Array, Uint8Array][] = [];
    if (!range.reverse) {
      const start = range.gte ?? range.gt;
      for (let i = start ? this.#lowerBound(start) : 0; i < keys.length; i++) {
        if (picked.length >= limit) break;
        const k = keys[i] as Buffer;
        if (
          (range.lt && compareKeys(k, range.lt) >= 0) ||
          (range.lte && compareKeys(k, range.lte) > 0)
        )
          break;
        if (inRange(k, range)) picked.push([k, this.#values.get(hex(k)) as Uint8Array]);
      }
    } else {
      let i = keys.length - 1;
      if (range.lt) i = this.#lowerBound(range.lt) - 1;
      else if (range.lte) {
        i = this.#lowerBound(range.lte);
        if (i >= keys.length || compareKeys(keys[i] as Buffer, range.lte) !== 0) i--;
      }
      for (; i >= 0; i--) {
        if (picked.length >= limit) break;
        const k = keys[i] as Buffer;
        if (
          (range.gte && compareKeys(k, range.gte) < 0) ||
          (range.gt && compareKeys(k, range.gt) <= 0)
        )
          break;
        if (inRange(k, range)) picked.push([k, this.#values.get(hex(k)) as Uint8Array]);
      }
    }
    yield* picked;
  }

  approximateSize(gte: Uint8Array, lt: Uint8Array): number {
    let bytes = 0;
    for (const [k, v] of this.entries({ gte, lt })) bytes += k.length + v.length;
    return bytes;
  }

  async compactRange(): Promise<void> {
    // Nothing to compact in memory.
  }

  sizes(): EngineSizes {
    let bytes = 0;
    for (const k of this.#keys) bytes += k.length + (this.#values.get(hex(k))?.length ?? 0);
    return { liveDataBytes: bytes, diskBytes: 0, memoryBytes: bytes };
  }
}

function hex(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');
}
