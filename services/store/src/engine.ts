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
 * An in-memory engine: a map of entries by key and the keys in order, in pages.
 * @remarks For unit tests and ephemeral peers. Keys are held as latin1 strings (one char per
 * byte), which JavaScript compares like the bytes, so ordering never crosses into native code.
 * The ordered keys live in pages of at most `2 × pageEntries` (a chunked sorted list): an
 * insert or delete costs a binary search over the pages' last keys, one within a page and a
 * splice of one page, not of every key (a single sorted array made a bulk load quadratic).
 * Iteration reads a snapshot of the range taken when iteration starts.
 */
export class MemoryEngine implements StorageEngine {
  readonly capabilities: EngineCapabilities = { durable: false };
  /** Every entry, by its key as latin1. */
  readonly #entries = new Map<string, { readonly key: Buffer; value: Uint8Array }>();
  /** The keys (latin1) in ascending order, split in pages; no page is empty. */
  #pages: string[][] = [];
  /** The last (greatest) key of each page. */
  #lasts: string[] = [];
  readonly #pageEntries: number;
  #open = false;

  /**
   * @param options.pageEntries - keys per page of the ordered index: a page splits past twice
   * this and joins a neighbour below a quarter (default 512; tests use tiny pages to exercise
   * splits and merges).
   */
  constructor(options: { readonly pageEntries?: number } = {}) {
    const n = options.pageEntries ?? 512;
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError('pageEntries must be at least 1');
    this.#pageEntries = n;
  }

  async open(): Promise<void> {
    this.#open = true;
  }

  async close(): Promise<void> {
    this.#open = false;
  }

  #check(): void {
    if (!this.#open) throw new Error('memory engine is not open');
  }

  /** A key as latin1 (one char per byte). */
  static #latin1(k: Uint8Array): string {
    // `fromCharCode` over the bytes skips the Buffer a `toString` needs: twice as fast for keys
    // of a few dozen bytes. Long keys go through a Buffer (no huge argument lists).
    return k.length <= 256
      ? String.fromCharCode.apply(null, k as unknown as number[])
      : Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');
  }

  getMany(keys: readonly Uint8Array[]): (Uint8Array | undefined)[] {
    this.#check();
    const out: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(keys.length);
    for (let i = 0; i < keys.length; i++)
      out[i] = this.#entries.get(MemoryEngine.#latin1(keys[i] as Uint8Array))?.value;
    return out;
  }

  write(ops: readonly EngineOp[]): void {
    this.#check();
    for (const op of ops) {
      const k = MemoryEngine.#latin1(op.key);
      const had = this.#entries.get(k);
      if (op.type === 'put') {
        // A copy: the caller may reuse its buffer. From Node's buffer pool (one allocation per
        // few small values, as RocksDB's binding returns them), not an array buffer each.
        const value = Buffer.allocUnsafe(op.value.length);
        value.set(op.value);
        if (had) had.value = value;
        else {
          this.#entries.set(k, { key: Buffer.from(op.key), value });
          this.#insert(k);
        }
      } else if (had) {
        this.#entries.delete(k);
        this.#remove(k);
      }
    }
  }

  /** The first page whose last key is `>= k` (`> k` when `after`); `#pages.length` if none. */
  #pageOf(k: string, after: boolean): number {
    const lasts = this.#lasts;
    let lo = 0;
    let hi = lasts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = lasts[mid] as string;
      if (m < k || (after && m === k)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first index in `page` whose key is `>= k` (`> k` when `after`). */
  static #indexIn(page: readonly string[], k: string, after: boolean): number {
    let lo = 0;
    let hi = page.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = page[mid] as string;
      if (m < k || (after && m === k)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds `k` (not present) to the ordered index. */
  #insert(k: string): void {
    const pages = this.#pages;
    if (pages.length === 0) {
      pages.push([k]);
      this.#lasts.push(k);
      return;
    }
    let p = this.#pageOf(k, false);
    let page: string[];
    if (p === pages.length) {
      // Past every key: append to the last page (the common case of a bulk load in order).
      p--;
      page = pages[p] as string[];
      page.push(k);
      this.#lasts[p] = k;
    } else {
      page = pages[p] as string[];
      page.splice(MemoryEngine.#indexIn(page, k, false), 0, k);
    }
    if (page.length > 2 * this.#pageEntries) this.#split(p);
  }

  /** Splits page `p` in two halves. */
  #split(p: number): void {
    const page = this.#pages[p] as string[];
    const tail = page.splice(page.length >>> 1);
    this.#pages.splice(p + 1, 0, tail);
    this.#lasts.splice(p, 1, page[page.length - 1] as string, tail[tail.length - 1] as string);
  }

  /** Removes `k` (present) from the ordered index. */
  #remove(k: string): void {
    const pages = this.#pages;
    const p = this.#pageOf(k, false);
    const page = pages[p] as string[];
    page.splice(MemoryEngine.#indexIn(page, k, false), 1);
    if (page.length === 0) {
      pages.splice(p, 1);
      this.#lasts.splice(p, 1);
      return;
    }
    this.#lasts[p] = page[page.length - 1] as string;
    // A page that shrank to a quarter joins its next neighbour (or its previous one), so pages
    // stay large enough that the page index does not grow with deletes.
    if (page.length * 4 >= this.#pageEntries || pages.length === 1) return;
    const q = p + 1 < pages.length ? p : p - 1;
    const merged = (pages[q] as string[]).concat(pages[q + 1] as string[]);
    pages.splice(q, 2, merged);
    this.#lasts.splice(q, 2, merged[merged.length - 1] as string);
    if (merged.length > 2 * this.#pageEntries) this.#split(q);
  }

  *entries(range: EngineRange): Iterable<readonly [Uint8Array, Uint8Array]> {
    this.#check();
    // The snapshot holds only what the iteration can yield: up to `limit` entries from the end
    // it starts at (a page of a large range costs its page, not the rest of the range).
    const limit = range.limit ?? Infinity;
    const gte = range.gte && MemoryEngine.#latin1(range.gte);
    const gt = range.gt && MemoryEngine.#latin1(range.gt);
    const lt = range.lt && MemoryEngine.#latin1(range.lt);
    const lte = range.lte && MemoryEngine.#latin1(range.lte);
    const pages = this.#pages;
    const picked: (readonly [Uint8Array, Uint8Array])[] = [];
    if (limit <= 0) return;
    if (!range.reverse) {
      // Start at the first key past both lower bounds.
      let [p, i] = this.#position(gte, false, 0, 0);
      if (gt !== undefined) {
        const [q, j] = this.#position(gt, true, 0, 0);
        if (q > p || (q === p && j > i)) [p, i] = [q, j];
      }
      outer: for (; p < pages.length; p++, i = 0) {
        const page = pages[p] as string[];
        for (; i < page.length; i++) {
          const k = page[i] as string;
          if ((lt !== undefined && k >= lt) || (lte !== undefined && k > lte)) break outer;
          const e = this.#entries.get(k) as { key: Buffer; value: Uint8Array };
          picked.push([e.key, e.value]);
          if (picked.length >= limit) break outer;
        }
      }
    } else {
      // Start just before the first key past both upper bounds.
      let [p, i] = this.#position(lt, false, pages.length, 0);
      if (lte !== undefined) {
        const [q, j] = this.#position(lte, true, pages.length, 0);
        if (q < p || (q === p && j < i)) [p, i] = [q, j];
      }
      // Step back one: (p, i) is the first key not to yield.
      outer: for (;;) {
        if (i === 0) {
          if (p === 0) break;
          p--;
          i = (pages[p] as string[]).length;
        }
        i--;
        const k = (pages[p] as string[])[i] as string;
        if ((gte !== undefined && k < gte) || (gt !== undefined && k <= gt)) break outer;
        const e = this.#entries.get(k) as { key: Buffer; value: Uint8Array };
        picked.push([e.key, e.value]);
        if (picked.length >= limit) break;
      }
    }
    yield* picked;
  }

  /**
   * The position (page, index) of the first key `>= k` (`> k` when `after`); the position past
   * the last key when there is none; `[dp, di]` when `k` is undefined.
   */
  #position(
    k: string | undefined,
    after: boolean,
    dp: number,
    di: number,
  ): [page: number, index: number] {
    if (k === undefined) return [dp, di];
    const p = this.#pageOf(k, after);
    if (p === this.#pages.length) return [p, 0];
    return [p, MemoryEngine.#indexIn(this.#pages[p] as string[], k, after)];
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
    for (const e of this.#entries.values()) bytes += e.key.length + e.value.length;
    return { liveDataBytes: bytes, diskBytes: 0, memoryBytes: bytes };
  }
}
