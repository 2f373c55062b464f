/**
 * TypeScript declarations for the part of `@nxtedition/rocksdb` (12.x) that Lattice uses.
 *
 * @remarks
 * The package ships JavaScript only. It is an abstract-level 1.x database whose binding also
 * offers synchronous batch writes, multi-gets and iterator steps (the underscore methods
 * below, which its own `abstract-level` methods call); the store uses those directly so a
 * commit or a query reads and writes without yielding the event loop.
 */
declare module '@nxtedition/rocksdb' {
  export interface RocksOpenOptions {
    createIfMissing?: boolean;
    errorIfExists?: boolean;
    /** Background threads for flushes and compactions. */
    parallelism?: number;
    /** zstd-compressed WAL (default true). */
    walCompression?: boolean;
    /** Block cache size in bytes. */
    cacheSize?: number;
    infoLogLevel?: 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'header' | null;
    compression?: 'zstd' | 'lz4' | 'snappy' | 'none';
  }

  export interface RocksIteratorOptions {
    gt?: Uint8Array;
    gte?: Uint8Array;
    lt?: Uint8Array;
    lte?: Uint8Array;
    reverse?: boolean;
    limit?: number;
    keys?: boolean;
    values?: boolean;
    keyEncoding: 'buffer' | 'utf8';
    valueEncoding: 'buffer' | 'utf8';
    fillCache?: boolean;
    /**
     * A tailing iterator: re-seeking it sees writes made after it was created (forward only;
     * bounds are fixed at creation).
     */
    tailing?: boolean;
  }

  export interface RocksIterator {
    /** Up to `size` entries as a flat array `[k0, v0, k1, v1, …]`. */
    _nextvSync(size: number, options: object): { rows: Buffer[]; finished: boolean };
    _closeSync(): void;
    _seekSync(target: Uint8Array): void;
  }

  export interface RocksChainedBatch {
    /** Adds a put of raw bytes (no encodings applied). */
    _put(key: Uint8Array, value: Uint8Array, options: object): void;
    /** Adds a delete of raw bytes (no encodings applied). */
    _del(key: Uint8Array, options: object): void;
    readonly length: number;
    /** Writes the batch atomically; with `sync`, after the WAL is fsynced. Throws on failure. */
    _writeSync(options: { sync?: boolean; lowPriority?: boolean }): void;
    close(): Promise<void>;
  }

  export class RocksLevel {
    constructor(location: string);
    readonly status: 'opening' | 'open' | 'closing' | 'closed';
    readonly location: string;
    /** The latest RocksDB sequence number. */
    readonly sequence: number;
    open(options?: RocksOpenOptions): Promise<void>;
    close(): Promise<void>;
    batch(): RocksChainedBatch;
    _getManySync(
      keys: readonly Uint8Array[],
      options: { fillCache?: boolean },
    ): (Buffer | undefined)[];
    _iterator(options: RocksIteratorOptions): RocksIterator;
    getProperty(property: string): string;
    /**
     * Creates an iterator, reads the whole range (up to `limit`) and closes it, in one call.
     * @remarks With a `limit`, `finished` is true once the limit is reached.
     */
    querySync(options: RocksIteratorOptions): { rows: Buffer[]; finished: boolean };
  }
}
