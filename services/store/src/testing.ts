/**
 * `@lattice/store/testing`: the storage-engine contract suite. Every {@link StorageEngine}
 * implementation runs it: `runStorageEngineContractTests('rocks', async () => new RocksEngine(dir))`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { StorageEngine } from './engine.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const s = (u: Uint8Array | undefined): string | undefined =>
  u === undefined ? undefined : new TextDecoder().decode(u);

/** Registers the engine contract tests for one implementation. */
export function runStorageEngineContractTests(
  name: string,
  create: () => Promise<StorageEngine>,
): void {
  describe(`storage engine contract: ${name}`, () => {
    const open: StorageEngine[] = [];
    const fresh = async (): Promise<StorageEngine> => {
      const e = await create();
      await e.open();
      open.push(e);
      return e;
    };
    afterEach(async () => {
      for (const e of open.splice(0)) await e.close();
    });

    it('reads what a batch wrote and nothing else', async () => {
      const e = await fresh();
      e.write(
        [
          { type: 'put', key: b('a'), value: b('1') },
          { type: 'put', key: b('b'), value: b('2') },
        ],
        { sync: true },
      );
      expect(e.getMany([b('a'), b('b'), b('c')]).map(s)).toEqual(['1', '2', undefined]);
    });

    it('applies the ops of one batch in order (a later op on a key wins)', async () => {
      const e = await fresh();
      e.write(
        [
          { type: 'put', key: b('k'), value: b('1') },
          { type: 'del', key: b('k') },
          { type: 'put', key: b('j'), value: b('1') },
          { type: 'put', key: b('j'), value: b('2') },
        ],
        { sync: false },
      );
      expect(e.getMany([b('k'), b('j')]).map(s)).toEqual([undefined, '2']);
    });

    it('stores empty values and binary keys with zero bytes', async () => {
      const e = await fresh();
      const key = Uint8Array.of(0, 0xff, 0);
      e.write([{ type: 'put', key, value: new Uint8Array(0) }], { sync: false });
      const [v] = e.getMany([key]);
      expect(v).toBeDefined();
      expect(v?.length).toBe(0);
    });

    it('iterates bytewise ascending, descending, within bounds and up to a limit', async () => {
      const e = await fresh();
      const keys = ['a', 'ab', 'b', 'b\u0000', 'ba', 'c'];
      e.write(
        keys.map((k) => ({ type: 'put' as const, key: b(k), value: b(k.toUpperCase()) })),
        { sync: false },
      );
      const ks = (it: Iterable<readonly [Uint8Array, Uint8Array]>): string[] =>
        [...it].map(([k]) => s(k) as string);
      expect(ks(e.entries({}))).toEqual(keys);
      expect(ks(e.entries({ gte: b('ab'), lt: b('ba') }))).toEqual(['ab', 'b', 'b\u0000']);
      expect(ks(e.entries({ gt: b('ab'), lte: b('ba') }))).toEqual(['b', 'b\u0000', 'ba']);
      expect(ks(e.entries({ gte: b('b'), reverse: true }))).toEqual(['c', 'ba', 'b\u0000', 'b']);
      expect(ks(e.entries({ gte: b('a'), limit: 2 }))).toEqual(['a', 'ab']);
      expect(ks(e.entries({ lt: b('c'), reverse: true, limit: 2 }))).toEqual(['ba', 'b\u0000']);
      expect(ks(e.entries({ gte: b('x') }))).toEqual([]);
      const [[, v]] = [...e.entries({ gte: b('c') })] as [[Uint8Array, Uint8Array]];
      expect(s(v)).toBe('C');
    });

    it('iterates many entries across internal pages', async () => {
      const e = await fresh();
      const n = 2500;
      const key = (i: number): Uint8Array => b(`k${String(i).padStart(5, '0')}`);
      e.write(
        Array.from({ length: n }, (_, i) => ({
          type: 'put' as const,
          key: key(i),
          value: b(String(i)),
        })),
        { sync: false },
      );
      let i = 0;
      for (const [k, v] of e.entries({ gte: b('k') })) {
        expect(s(k)).toBe(s(key(i)));
        expect(s(v)).toBe(String(i));
        i++;
      }
      expect(i).toBe(n);
      expect(s([...e.entries({ gte: b('k'), reverse: true })][0]?.[0])).toBe(s(key(n - 1)));
    });

    it('lets a caller stop iterating early and then write', async () => {
      const e = await fresh();
      e.write(
        Array.from({ length: 100 }, (_, i) => ({
          type: 'put' as const,
          key: b(`x${i}`),
          value: b('v'),
        })),
        { sync: false },
      );
      for (const [k] of e.entries({ gte: b('x') })) {
        expect(k.length).toBeGreaterThan(0);
        break;
      }
      e.write([{ type: 'del', key: b('x0') }], { sync: false });
      expect(e.getMany([b('x0')])).toEqual([undefined]);
    });

    it('sees every write in scans made after it, around the first-step boundary', async () => {
      const e = await fresh();
      const key = (i: number): Uint8Array => b(`p${String(i).padStart(3, '0')}`);
      const ks = (it: Iterable<readonly [Uint8Array, Uint8Array]>): string[] =>
        [...it].map(([k]) => s(k) as string);
      const names = (from: number, to: number): string[] =>
        Array.from({ length: to - from }, (_, i) => s(key(from + i)) as string);
      for (let n = 0; n < 40; n++) {
        // A scan, then a write, then the same scan again: the second sees the write.
        expect(ks(e.entries({ gte: b('p'), lt: b('q') }))).toEqual(names(0, n));
        e.write([{ type: 'put', key: key(n), value: b(String(n)) }], { sync: false });
        expect(ks(e.entries({ gte: b('p'), lt: b('q') }))).toEqual(names(0, n + 1));
        expect(ks(e.entries({ gt: key(0), lte: key(n), values: false }))).toEqual(names(1, n + 1));
        // Point-like scans (`few`), which an engine may answer with a cheaper first step.
        expect(ks(e.entries({ gte: b('p'), lt: b('q'), few: true }))).toEqual(names(0, n + 1));
        expect(ks(e.entries({ gt: key(0), lt: b('q'), few: true, values: false }))).toEqual(
          names(1, n + 1),
        );
        expect(ks(e.entries({ gte: key(n), lte: key(n), few: true }))).toEqual(names(n, n + 1));
        expect(ks(e.entries({ gte: b('p'), lt: b('q'), few: true, reverse: true }))).toEqual(
          names(0, n + 1).reverse(),
        );
        expect(ks(e.entries({ gte: b('p'), lt: b('q'), limit: 17 }))).toEqual(
          names(0, Math.min(17, n + 1)),
        );
        expect(ks(e.entries({ gte: b('p'), lt: b('q'), reverse: true, limit: 18 }))).toEqual(
          names(Math.max(0, n + 1 - 18), n + 1).reverse(),
        );
      }
      e.write([{ type: 'del', key: key(5) }], { sync: false });
      expect(ks(e.entries({ gte: key(4), lt: key(7) }))).toEqual([s(key(4)), s(key(6))]);
      const [[, v]] = [...e.entries({ gte: key(6), limit: 1 })] as [[Uint8Array, Uint8Array]];
      expect(s(v)).toBe('6');
    });

    it('reports an approximate size that grows with the data', async () => {
      const e = await fresh();
      const before = e.approximateSize(b('s'), b('t'));
      e.write(
        Array.from({ length: 50 }, (_, i) => ({
          type: 'put' as const,
          key: b(`s${i}`),
          value: new Uint8Array(100),
        })),
        { sync: false },
      );
      expect(e.approximateSize(b('s'), b('t'))).toBeGreaterThan(before);
    });

    it('reports whole-engine size estimates and accepts a compaction request', async () => {
      const e = await fresh();
      e.write(
        Array.from({ length: 50 }, (_, i) => ({
          type: 'put' as const,
          key: b(`z${i}`),
          value: new Uint8Array(100),
        })),
        { sync: false },
      );
      const sizes = e.sizes();
      for (const n of [sizes.liveDataBytes, sizes.diskBytes, sizes.memoryBytes]) {
        expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
      }
      // Fresh writes sit in memory (a memtable) before any file holds them.
      expect(sizes.memoryBytes).toBeGreaterThan(0);
      await e.compactRange(b('z'), b('{'));
      expect(e.getMany([b('z1')])[0]?.length).toBe(100);
    });
  });
}
