/**
 * The store service over real NATS: concurrent commits from several client connections, queries
 * in pages, the committed event, index builds with progress events, and bad requests.
 */
import { encodeDocId } from '@lattice/crdt';
import { NatsBus } from '@lattice/bus';
import type { Bus } from '@lattice/bus';
import { hasCode } from '@lattice/errors';
import { Subjects, v1 } from '@lattice/proto';
import { DocumentStore, MemoryEngine, RocksEngine, serveStore, StoreClient } from '@lattice/store';
import { tempDir } from '@lattice/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { put } from './helpers.js';

describe('store service over NATS', () => {
  const subjects = new Subjects(`store${process.pid}`);
  let serverBus: Bus;
  const clients: Bus[] = [];
  let store: DocumentStore;
  let served: { stop(): Promise<void> };
  let dir: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    const url = inject('natsUrl');
    dir = await tempDir('lattice-store-svc-');
    serverBus = await NatsBus.connect({ servers: url, name: 'store' });
    store = await DocumentStore.open(new RocksEngine(dir.path));
    served = serveStore(serverBus, subjects, store, { maxRequestBytes: 256 * 1024 });
    await serverBus.flush();
    for (let i = 0; i < 4; i++)
      clients.push(await NatsBus.connect({ servers: url, name: `client${i}` }));
  });

  afterAll(async () => {
    await served.stop();
    await store.close();
    for (const c of clients) await c.close();
    await serverBus.close();
    await dir.remove();
  });

  it('takes concurrent commits from several connections, each durable once acknowledged', async () => {
    const committed: number[] = [];
    const events = clients[0]!.subscribe(subjects.event('store', 'committed'));
    await clients[0]!.flush();
    const results = await Promise.all(
      clients.flatMap((bus, c) =>
        Array.from({ length: 25 }, (_, i) =>
          new StoreClient(bus, subjects).commit({
            writes: [put('cars', { _id: `${c}-${i}`, c, i })],
          }),
        ),
      ),
    );
    const seqs = results.map((r) => r.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    for await (const msg of events) {
      committed.push(v1.Committed.decode(msg.data).commitSeq);
      if (committed.length === 100) break;
    }
    events.unsubscribe();
    expect([...committed].sort((a, b) => a - b)).toEqual(seqs);
    expect(committed).toEqual([...committed].sort((a, b) => a - b)); // published in commit order
    const client = new StoreClient(clients[1]!, subjects);
    const got = await client.get('cars', ['0-0', '3-24', 'nope'], true);
    expect(got.docs.map((d) => d.found)).toEqual([true, true, false]);
    expect(got.docs[0]?.record?.versionVector).toEqual([{ peer: 'p1', counter: 1 }]);
  });

  it('answers queries page by page and serves the change log', async () => {
    const client = new StoreClient(clients[2]!, subjects);
    const items = await client.select('SELECT _id FROM cars WHERE c = :c ORDER BY i', { c: 2 }, 7);
    expect(items).toEqual(Array.from({ length: 25 }, (_, i) => ({ _id: `2-${i}` })));
    const pages: number[] = [];
    for await (const page of client.pages('SELECT * FROM cars', {}, 30)) pages.push(page.length);
    expect(pages).toEqual([30, 30, 30, 10]);
    const changes = await client.changes(90, 'cars');
    expect(changes.commits.map((c) => c.commitSeq)).toEqual([
      91, 92, 93, 94, 95, 96, 97, 98, 99, 100,
    ]);
    expect(changes.lastSeq).toBe(100);
  });

  it('builds an index on request, publishing progress', async () => {
    const client = new StoreClient(clients[3]!, subjects);
    const progress = clients[3]!.subscribe(subjects.event('store', 'index-progress'));
    await clients[3]!.flush();
    const def = await client.createIndex('cars', 'by_c', ['c']);
    expect(def).toEqual({ collection: 'cars', name: 'by_c', path: ['c'], ready: true });
    let last: v1.IndexProgress | undefined;
    for await (const msg of progress) {
      last = v1.IndexProgress.decode(msg.data);
      if (last.done === last.total && last.total > 0) break;
    }
    progress.unsubscribe();
    expect(last?.total).toBe(100);
    const indexes = await client.listIndexes('cars');
    expect(indexes.indexes.map((i) => i.name)).toEqual(['by_c']);
    const explained = await client.select('EXPLAIN SELECT * FROM cars WHERE c = 1');
    expect(JSON.stringify(explained)).toContain('by_c');
    const stats = await client.stats();
    expect(stats.collections.map((c) => [c.collection, c.documents, c.indexes])).toEqual([
      ['cars', 100, 1],
    ]);
    // RocksDB's own size estimates travel too (fresh writes sit in the memtable).
    expect(Number(stats.engineMemoryBytes) + Number(stats.engineDiskBytes)).toBeGreaterThan(0);
  });

  it('refuses bad requests with typed errors and stores nothing', async () => {
    const bus = clients[0]!;
    const before = store.lastSeq;
    const call = (op: string, data: Uint8Array) =>
      bus.request(subjects.request('store', op), data, { timeoutMs: 5_000 });
    const expectCode = async (p: Promise<unknown>, code: string) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(hasCode(err, code), String(err)).toBe(true);
    };
    await expectCode(
      call('commit', Uint8Array.of(0xff, 0xff, 0xff, 0x0f)),
      'STORE_INVALID_ARGUMENT',
    );
    await expectCode(call('commit', new Uint8Array(300 * 1024)), 'BUS_PAYLOAD_TOO_LARGE');
    await expectCode(
      call(
        'commit',
        v1.CommitRequest.encode({
          writes: [{ collection: 'cars', docId: Uint8Array.of(0x99) }],
        }).finish(),
      ),
      'STORE_INVALID_ARGUMENT',
    );
    await expectCode(
      call(
        'commit',
        v1.CommitRequest.encode({
          writes: [
            {
              collection: 'cars',
              docId: encodeDocId('v'),
              state: Uint8Array.of(1),
              value: Uint8Array.of(0xc1),
            },
          ],
        }).finish(),
      ),
      'STORE_INVALID_ARGUMENT',
    );
    await expectCode(
      call(
        'commit',
        v1.CommitRequest.encode({ writes: [{ collection: '', docId: encodeDocId('v') }] }).finish(),
      ),
      'STORE_INVALID_ARGUMENT',
    );
    await expectCode(
      call('query', v1.QueryRequest.encode({ statement: 'SELECT FROM' }).finish()),
      'DQL_SYNTAX',
    );
    await expectCode(
      call(
        'query',
        v1.QueryRequest.encode({
          statement: 'SELECT * FROM c',
          args: Uint8Array.of(0x01),
        }).finish(),
      ),
      'STORE_INVALID_ARGUMENT',
    );
    await expectCode(
      call(
        'create-index',
        v1.CreateIndexRequest.encode({ collection: 'cars', name: 'x', path: [] }).finish(),
      ),
      'STORE_INVALID_INDEX',
    );
    await expectCode(
      call('drop-index', v1.DropIndexRequest.encode({ collection: 'cars', name: 'nope' }).finish()),
      'STORE_UNKNOWN_INDEX',
    );
    await expectCode(
      call('next-page', v1.NextPageRequest.encode({ cursor: 'gone' }).finish()),
      'STORE_CURSOR_EXPIRED',
    );
    expect(store.lastSeq).toBe(before);
    expect(store.stats().collections.map((c) => c.collection)).toEqual(['cars']);
  });
});

describe('store service on the memory engine', () => {
  it('serves the same API in-process', async () => {
    const { LocalBus } = await import('@lattice/bus');
    const bus = new LocalBus();
    const subjects = new Subjects('mem');
    const store = await DocumentStore.open(new MemoryEngine());
    const served = serveStore(bus, subjects, store);
    const client = new StoreClient(bus, subjects);
    await client.commit({ writes: [put('a', { _id: 1, x: 'y' })] });
    expect(await client.select('SELECT x FROM a')).toEqual([{ x: 'y' }]);
    await client.commit({ writes: [], checkpoints: { peerB: Uint8Array.of(5) } });
    expect([...((await client.getCheckpoint('peerB')) ?? [])]).toEqual([5]);
    expect(await client.getCheckpoint('peerC')).toBeUndefined();
    await served.stop();
    await store.close();
    await bus.close();
  });
});
