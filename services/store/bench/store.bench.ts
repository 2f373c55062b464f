// `pnpm bench store`: the document store on RocksDB side by side with raw @nxtedition/rocksdb
// calls writing and reading the same bytes with the same sync setting (the anchor).
//
// A document is ~1 KB of value plus its CRDT state (here the same bytes again, as the store
// treats state as opaque); the raw anchor puts both under two keys, which is the least any store
// of these documents must write. The store additionally writes its record framing, the change
// log entry, the sequence and (where named) index entries, all in the same batch.
import { RocksLevel } from '@nxtedition/rocksdb';
import { BenchSuite } from '@lattice/bench';
import { asPeerId } from '@lattice/crdt';
import { executePlan, parse, planQuery } from '@lattice/dql';
import type { SelectStatement } from '@lattice/dql';
import { DocumentStore, encodeValue, RocksEngine } from '@lattice/store';
import type { CommitWrite } from '@lattice/store';
import { tempDir } from '@lattice/testing';

const PAD = 'x'.repeat(900);
const VV = new Map([[asPeerId('bench-peer'), 1]]);
const enc = new TextEncoder();

function doc(i: number): { _id: string; n: number; name: string; pad: string } {
  return { _id: `doc-${String(i).padStart(9, '0')}`, n: i, name: `name ${i % 1000}`, pad: PAD };
}

function writeOf(collection: string, i: number): CommitWrite {
  const value = doc(i);
  const bytes = encodeValue(value);
  return { collection, id: value._id, state: bytes, encodedValue: bytes, versionVector: VV };
}

/** The raw anchor's puts for the same document: state and value under two keys. */
function rawPut(db: RocksLevel, i: number, batch = db.batch()): typeof batch {
  const value = doc(i);
  const bytes = encodeValue(value);
  batch._put(enc.encode(`D/c/${value._id}`), bytes, {});
  batch._put(enc.encode(`V/c/${value._id}`), bytes, {});
  return batch;
}

/** Up to `limit` entries from `gte`, counted (the raw anchor of range reads). */
function rawRange(db: RocksLevel, gte: Uint8Array, limit: number): number {
  let k = 0;
  const it = db._iterator({ gte, keyEncoding: 'buffer', valueEncoding: 'buffer', limit });
  try {
    for (;;) {
      const { rows, finished } = it._nextvSync(Math.min(limit, 1000), {});
      k += rows.length / 2;
      if (finished) return k;
    }
  } finally {
    it._closeSync();
  }
}

/**
 * The large case (`LATTICE_BENCH_LARGE=1 pnpm bench store`): 1M documents in a fresh indexed
 * collection (and the same bytes in the raw database), loaded with progress on stderr; index
 * ranges of 100 documents and a streamed range of 100k documents, at 100k and at 1M documents.
 * `LATTICE_BENCH_LARGE_DOCS` sets the count, `LATTICE_BENCH_LARGE_PAD` the padding per document
 * (default 900 bytes: ~1 KB documents, ~2 GB before compression for both databases).
 */
async function large(suite: BenchSuite, raw: RocksLevel, dir: string): Promise<void> {
  const total = Number(process.env['LATTICE_BENCH_LARGE_DOCS'] ?? 1_000_000);
  const pad = 'y'.repeat(Number(process.env['LATTICE_BENCH_LARGE_PAD'] ?? 900));
  const store = await DocumentStore.open(new RocksEngine(`${dir}/large`), { sync: false });
  await store.createIndex('big', 'by_n', ['n']);
  const value = (i: number) => ({ _id: `big-${String(i).padStart(9, '0')}`, n: i, pad });
  const rawKey = (i: number) => enc.encode(`B/${String(i).padStart(9, '0')}`);
  let loaded = 0;
  const started = performance.now();
  const load = async (upTo: number): Promise<void> => {
    for (; loaded < upTo; loaded += 1000) {
      const writes: CommitWrite[] = [];
      const b = raw.batch();
      for (let i = loaded; i < loaded + 1000; i++) {
        const v = value(i);
        const bytes = encodeValue(v);
        writes.push({
          collection: 'big',
          id: v._id,
          state: bytes,
          encodedValue: bytes,
          versionVector: VV,
        });
        b._put(rawKey(i), bytes, {});
        b._put(enc.encode(`S/${v._id}`), bytes, {});
      }
      b._writeSync({ sync: false });
      void b.close();
      await store.commit({ writes });
      if ((loaded + 1000) % 100_000 === 0)
        console.error(
          `  large: ${loaded + 1000} / ${total} docs loaded (${((performance.now() - started) / 1000).toFixed(0)} s)`,
        );
    }
  };
  const range = parse('SELECT * FROM big WHERE n >= :a AND n < :b') as SelectStatement;
  const indexes = store.indexInfo('big');
  try {
    for (const size of [100_000, total]) {
      if (size > total) break;
      await load(size);
      const pick = (width: number): number => Math.floor(Math.random() * (size - width));
      await suite.measure(
        `large: index range of 100 docs (${size / 1000}k docs)`,
        {
          'rocksdb-raw range': () => rawRange(raw, rawKey(pick(100)), 100),
          'store planned': () => {
            const a = pick(100);
            return executePlan(
              planQuery(range, { args: { a, b: a + 100 }, indexes }),
              store.source,
            );
          },
        },
        { anchor: 'rocksdb-raw range', opsPerCall: 100 },
      );
      const wide = 100_000;
      if (size > wide)
        await suite.measure(
          `large: streamed index range of 100k docs, pages of 1,000 (${size / 1000}k docs)`,
          {
            'rocksdb-raw range': () => rawRange(raw, rawKey(pick(wide)), wide),
            'store.query + nextPage': () => {
              const a = pick(wide);
              let page = store.query(
                'SELECT * FROM big WHERE n >= :a AND n < :b ORDER BY n',
                { a, b: a + wide },
                1000,
              );
              let n = page.items.length;
              while (page.cursor !== undefined) {
                page = store.nextPage(page.cursor, 1000);
                n += page.items.length;
              }
              return n;
            },
          },
          { anchor: 'rocksdb-raw range', opsPerCall: wide, timeMs: 3000 },
        );
    }
  } finally {
    await store.close();
  }
}

export default async function run(): Promise<BenchSuite> {
  const suite = new BenchSuite('store');
  const dir = await tempDir('lattice-bench-store-');
  const raw = new RocksLevel(`${dir.path}/raw`);
  await raw.open({ createIfMissing: true, infoLogLevel: null, cacheSize: 64 * 1024 * 1024 });
  const store = await DocumentStore.open(new RocksEngine(`${dir.path}/store`), { sync: false });
  const synced = await DocumentStore.open(new RocksEngine(`${dir.path}/synced`), { sync: true });
  const indexed = await DocumentStore.open(new RocksEngine(`${dir.path}/indexed`), { sync: false });
  await indexed.createIndex('c', 'by_n', ['n']);
  try {
    let next = 0;
    for (const n of [1, 100, 1000]) {
      await suite.measure(
        `commit 1 KB docs ×${n} (no sync)`,
        {
          'rocksdb-raw': () => {
            const b = raw.batch();
            for (let i = 0; i < n; i++) rawPut(raw, next++, b);
            b._writeSync({ sync: false });
            void b.close();
          },
          store: () =>
            store.commit({ writes: Array.from({ length: n }, () => writeOf('c', next++)) }),
          'store + 1 index': () =>
            indexed.commit({ writes: Array.from({ length: n }, () => writeOf('c', next++)) }),
        },
        { anchor: 'rocksdb-raw', opsPerCall: n },
      );
    }

    await suite.measure(
      'durable commit of 1 doc, one at a time (sync)',
      {
        'rocksdb-raw': () => {
          const b = rawPut(raw, next++);
          b._writeSync({ sync: true });
          void b.close();
        },
        store: () => synced.commit({ writes: [writeOf('c', next++)] }),
      },
      { anchor: 'rocksdb-raw', timeMs: 1500 },
    );
    const group = 64;
    await suite.measure(
      `durable commits of 1 doc, ${group} concurrent (sync; raw: one synced put each)`,
      {
        'rocksdb-raw': () => {
          for (let i = 0; i < group; i++) {
            const b = rawPut(raw, next++);
            b._writeSync({ sync: true });
            void b.close();
          }
        },
        'store (group commit)': () =>
          Promise.all(
            Array.from({ length: group }, () => synced.commit({ writes: [writeOf('c', next++)] })),
          ),
      },
      { anchor: 'rocksdb-raw', opsPerCall: group, timeMs: 1500 },
    );

    // A read set of 100k documents in a fresh collection of both stores.
    const total = 100_000;
    const base = next;
    for (let i = 0; i < total; i += 1000) {
      const b = raw.batch();
      for (let j = 0; j < 1000; j++) rawPut(raw, base + i + j, b);
      b._writeSync({ sync: false });
      void b.close();
      await indexed.commit({
        writes: Array.from({ length: 1000 }, (_, j) => writeOf('r', base + i + j)),
      });
    }
    await indexed.createIndex('r', 'by_n', ['n']);
    const pick = (): number => base + Math.floor(Math.random() * total);
    await suite.measure(
      'point read of 1 doc (100k docs)',
      {
        'rocksdb-raw': () => {
          const v = doc(pick());
          return raw._getManySync([enc.encode(`D/c/${v._id}`), enc.encode(`V/c/${v._id}`)], {});
        },
        'store.get': () => indexed.get('r', [doc(pick())._id]),
      },
      { anchor: 'rocksdb-raw' },
    );
    await suite.measure(
      'read 100 docs by id (100k docs)',
      {
        'rocksdb-raw': () => {
          const keys: Uint8Array[] = [];
          for (let i = 0; i < 100; i++) {
            const v = doc(pick());
            keys.push(enc.encode(`D/c/${v._id}`), enc.encode(`V/c/${v._id}`));
          }
          return raw._getManySync(keys, {});
        },
        'store.get': () =>
          indexed.get(
            'r',
            Array.from({ length: 100 }, () => doc(pick())._id),
          ),
      },
      { anchor: 'rocksdb-raw', opsPerCall: 100 },
    );
    // Readers that need values only (queries by _id, the gateway's document reads): one key per
    // document, so the anchor is one raw get per document.
    await suite.measure(
      'point read of 1 value (100k docs)',
      {
        'rocksdb-raw get': () => raw._getManySync([enc.encode(`V/c/${doc(pick())._id}`)], {}),
        'store.getValues': () => indexed.getValues('r', [doc(pick())._id]),
      },
      { anchor: 'rocksdb-raw get' },
    );
    await suite.measure(
      'read 100 values by id (100k docs)',
      {
        'rocksdb-raw get': () => {
          const keys: Uint8Array[] = [];
          for (let i = 0; i < 100; i++) keys.push(enc.encode(`V/c/${doc(pick())._id}`));
          return raw._getManySync(keys, {});
        },
        'store.getValues': () =>
          indexed.getValues(
            'r',
            Array.from({ length: 100 }, () => doc(pick())._id),
          ),
      },
      { anchor: 'rocksdb-raw get', opsPerCall: 100 },
    );
    const lookup = parse('SELECT * FROM r WHERE n = :n') as SelectStatement;
    const indexes = indexed.indexInfo('r');
    await suite.measure(
      'indexed lookup n = :n (100k docs)',
      {
        'rocksdb-raw get': () => raw._getManySync([enc.encode(`V/c/${doc(pick())._id}`)], {}),
        'store select (parse + plan + run)': () =>
          indexed.select('SELECT * FROM r WHERE n = :n', { n: pick() }),
        'store planned (plan + run)': () =>
          executePlan(planQuery(lookup, { args: { n: pick() }, indexes }), indexed.source),
      },
      { anchor: 'rocksdb-raw get' },
    );
    const range = parse('SELECT * FROM r WHERE n >= :a AND n < :b') as SelectStatement;
    await suite.measure(
      'index range of 100 docs (100k docs)',
      {
        'rocksdb-raw range': () => rawRange(raw, enc.encode(`V/c/${doc(pick())._id}`), 100),
        'store planned': () => {
          const a = pick();
          return executePlan(
            planQuery(range, { args: { a, b: a + 100 }, indexes }),
            indexed.source,
          );
        },
      },
      { anchor: 'rocksdb-raw range', opsPerCall: 100 },
    );
    // The change log: 2,000 single-document commits; read 1,000 of them. Raw: 1,000 entries of
    // the same size under one prefix.
    const feed = await DocumentStore.open(new RocksEngine(`${dir.path}/feed`), { sync: false });
    await Promise.all(
      Array.from({ length: 2000 }, () => feed.commit({ writes: [writeOf('f', next++)] })),
    );
    const entry = feed.changes(0, { limit: 1 }).commits[0];
    const entryBytes = 8 + (entry?.collections[0]?.ids[0]?.length ?? 0) + 8;
    const lb = raw.batch();
    for (let i = 0; i < 2000; i++)
      lb._put(enc.encode(`L/${String(i).padStart(8, '0')}`), new Uint8Array(entryBytes), {});
    lb._writeSync({ sync: false });
    await suite.measure(
      'change feed: read 1,000 commits',
      {
        'rocksdb-raw range': () => rawRange(raw, enc.encode('L/'), 1000),
        'store.changes': () => feed.changes(Math.floor(Math.random() * 1000), { limit: 1000 }),
      },
      { anchor: 'rocksdb-raw range', opsPerCall: 1000 },
    );
    await feed.close();

    if (process.env['LATTICE_BENCH_LARGE'] === '1') await large(suite, raw, dir.path);
  } finally {
    await store.close();
    await synced.close();
    await indexed.close();
    await raw.close();
    await dir.remove();
  }
  return suite;
}
