/**
 * Two peers, each its own set of service processes on one real NATS server (merge with its
 * RocksDB store, multiplexer, LAN transport, gateway), linked by the LAN transport over loopback.
 * The SEMANTICS.md patterns run as user scenarios through each peer's HTTP API while the peers are
 * partitioned (a transport process killed), and the merged outcome is checked on both; then a
 * merge process is killed in the middle of a sync and restarted, and nothing acknowledged is lost.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { ProcessPeer } from '@lattice/cli/testing';
import { freePort, tempDir, waitFor, type TempDir } from '@lattice/testing';

const ADMIN = 'admin-token-0123456789';
const EU_READER = 'eu-reader-token-0123456789';

let bus: NatsBus;
let a: ProcessPeer;
let b: ProcessPeer;
const dirs: TempDir[] = [];

/** Waits until both peers answer `read` with equal, accepted values; returns that value. */
async function converged<T>(
  read: (p: ProcessPeer) => Promise<T>,
  accept: (v: T) => boolean,
  what: string,
): Promise<T> {
  try {
    return await waitFor(
      async () => {
        const [x, y] = await Promise.all([read(a), read(b)]);
        return JSON.stringify(x) === JSON.stringify(y) && accept(x) ? x : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, what },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await diagnostics()}`, { cause: e });
  }
}

/** Each peer's sync status and what its processes logged, for a failure message. */
async function diagnostics(): Promise<string> {
  const parts: string[] = [];
  for (const p of [a, b]) {
    const info = await p
      .dql('SELECT * FROM system:data_sync_info')
      .then((r) => JSON.stringify(r.items))
      .catch((e: unknown) => String(e));
    parts.push(`${p.options.name} data_sync_info: ${info}`);
    for (const [service, log] of p.logs)
      if (log) parts.push(`${p.options.name} ${service}:\n${log}`);
  }
  return parts.join('\n');
}

beforeAll(async () => {
  bus = await NatsBus.connect({ servers: inject('natsUrl'), name: 'fleet-test' });
  const ports = async () => ({
    lan: await freePort(),
    grpc: await freePort(),
    http: await freePort(),
  });
  for (let i = 0; i < 2; i++) dirs.push(await tempDir('lattice-fleet-'));
  const pa = await ports();
  const peer = (name: string, dir: TempDir, p: typeof pa, staticPeer?: string) =>
    new ProcessPeer({
      name: `fleet${name}`,
      natsUrl: inject('natsUrl'),
      dir: dir.path,
      ports: p,
      keysFile: join(dir.path, 'keys.json'),
      token: ADMIN,
      ...(staticPeer === undefined ? {} : { staticPeer }),
    });
  a = peer('a', dirs[0] as TempDir, pa);
  b = peer('b', dirs[1] as TempDir, await ports(), `tcp://127.0.0.1:${pa.lan}`);
  for (const p of [a, b]) {
    writeFileSync(
      join(p.options.dir, 'keys.json'),
      JSON.stringify({
        keys: [
          {
            name: 'admin',
            token: ADMIN,
            permission: { read: { everything: true }, write: { everything: true } },
          },
          {
            name: 'eu-reader',
            token: EU_READER,
            permission: { read: { queriesByCollection: { stores: ["_id.region = 'eu'"] } } },
          },
        ],
      }),
    );
    await p.startAll(bus);
  }
  for (const [p, stores] of [
    [a, 'SELECT * FROM stores'],
    [b, "SELECT * FROM stores WHERE _id.region = 'eu'"],
  ] as const) {
    for (const q of [
      'SELECT * FROM projects',
      'SELECT * FROM shipments',
      'SELECT * FROM docs',
      'SELECT * FROM orders',
      'SELECT * FROM bulk',
      stores,
    ]) {
      await p.merge(bus).subscribe(q);
    }
  }
}, 180_000);

afterAll(async () => {
  for (const p of [a, b]) await p?.stopAll();
  await bus?.close();
  for (const d of dirs) await d[Symbol.asyncDispose]();
});

describe('a fleet of service processes on NATS', () => {
  it('the patterns of SEMANTICS.md merge across a partition', async () => {
    // Shared starting points, synced before the partition.
    await a.dql('INSERT INTO projects DOCUMENTS (:p)', {
      p: { _id: 'p1', tasks: { t1: { title: 'plan', done: false } } },
    });
    await a.dql('INSERT INTO docs DOCUMENTS (:d)', {
      d: { _id: 'd1', title: 'draft', assignee: 'ann', body: 'text' },
    });
    await a.dql('INSERT INTO orders DOCUMENTS (:o)', {
      o: { _id: 'o1', items: { i1: { sku: 'apple', qty: 1 } }, payments: {} },
    });
    await a.dql("INSERT INTO shipments DOCUMENTS ({'_id': 's1', 'status_log': {}})");
    // Every starting document, on both: B's partitioned writes update them.
    await converged(
      (p) =>
        Promise.all([
          p.one('projects', 'p1'),
          p.one('docs', 'd1'),
          p.one('orders', 'o1'),
          p.one('shipments', 's1'),
        ]),
      (docs) => docs.every((d) => d !== undefined),
      'the starting documents on both peers',
    );

    // Partition: B's LAN transport process dies. Both peers keep writing.
    await b.kill('transport-lan');
    await a.dql(
      "UPDATE projects SET tasks.t2 = {'title': 'build', 'done': false}, tasks.t1.title = 'plan v2' WHERE _id = 'p1'",
    );
    await b.dql(
      "UPDATE projects SET tasks.t3 = {'title': 'ship', 'done': false}, tasks.t1.done = true WHERE _id = 'p1'",
    );
    // Audit log, status-keyed: every transition survives.
    await a.dql(
      "UPDATE shipments SET status_log.packed = '2026-11-20T10:00:00.000Z' WHERE _id = 's1'",
    );
    await b.dql(
      "UPDATE shipments SET status_log.shipped = '2026-11-20T11:00:00.000Z' WHERE _id = 's1'",
    );
    // Smart upsert from two devices: only what each changed is written.
    await a.dql('INSERT INTO docs DOCUMENTS (:d) ON ID CONFLICT DO UPDATE_LOCAL_DIFF', {
      d: { _id: 'd1', title: 'final', assignee: 'ann', body: 'text' },
    });
    await b.dql('INSERT INTO docs DOCUMENTS (:d) ON ID CONFLICT DO UPDATE_LOCAL_DIFF', {
      d: { _id: 'd1', title: 'draft', assignee: 'bob', body: 'text' },
    });
    // A cart with payments: concurrent additions to both maps, and a counter.
    await a.dql(
      "UPDATE orders (paid COUNTER) APPLY paid INCREMENT BY 5 SET items.i2 = {'sku': 'pear', 'qty': 2}, payments.p1 = {'amount': 5} WHERE _id = 'o1'",
    );
    await b.dql(
      "UPDATE orders (paid COUNTER) APPLY paid INCREMENT BY 7 SET items.i3 = {'sku': 'fig', 'qty': 3}, payments.p2 = {'amount': 7} WHERE _id = 'o1'",
    );
    // Composite _id for access control: B subscribes to region eu only.
    await a.dql('INSERT INTO stores DOCUMENTS (:eu), (:us)', {
      eu: { _id: { region: 'eu', location: 'paris', id: 1 }, name: 'Paris' },
      us: { _id: { region: 'us', location: 'nyc', id: 2 }, name: 'NYC' },
    });

    // The partition heals: the transport process comes back.
    await b.start('transport-lan', bus);
    const project = await converged(
      (p) => p.one('projects', 'p1'),
      (x) => Object.keys((x?.['tasks'] as object | undefined) ?? {}).length === 3,
      'the tasks map merged',
    );
    expect(project?.['tasks']).toEqual({
      t1: { title: 'plan v2', done: true },
      t2: { title: 'build', done: false },
      t3: { title: 'ship', done: false },
    });
    const shipment = await converged(
      (p) => p.one('shipments', 's1'),
      (x) => Object.keys((x?.['status_log'] as object | undefined) ?? {}).length === 2,
      'the audit log merged',
    );
    const log = shipment?.['status_log'] as Record<string, string>;
    expect(log).toEqual({
      packed: '2026-11-20T10:00:00.000Z',
      shipped: '2026-11-20T11:00:00.000Z',
    });
    // The current state is derived at read time: the latest transition.
    expect(
      Object.entries(log)
        .sort((x, y) => x[1].localeCompare(y[1]))
        .at(-1)?.[0],
    ).toBe('shipped');
    expect(
      await converged(
        (p) => p.one('docs', 'd1'),
        (x) => x?.['assignee'] === 'bob' && x['title'] === 'final',
        'both smart upserts kept',
      ),
    ).toEqual({ _id: 'd1', title: 'final', assignee: 'bob', body: 'text' });
    const order = await converged(
      (p) => p.one('orders', 'o1'),
      (x) => x?.['paid'] === 12,
      'the cart merged',
    );
    expect(Object.keys(order?.['items'] as object).sort()).toEqual(['i1', 'i2', 'i3']);
    expect(order?.['payments']).toEqual({ p1: { amount: 5 }, p2: { amount: 7 } });

    // Composite _id: B holds only region eu; on A, a key that may read only region eu sees
    // only that, and may not write.
    await waitFor(
      async () => ((await b.dql('SELECT * FROM stores')).items.length === 1 ? true : undefined),
      {
        timeoutMs: 30_000,
        what: 'the eu store on B',
      },
    );
    expect((await b.dql('SELECT * FROM stores')).items).toEqual([
      { _id: { region: 'eu', location: 'paris', id: 1 }, name: 'Paris' },
    ]);
    expect((await a.dql('SELECT * FROM stores')).items).toHaveLength(2);
    expect((await a.dql('SELECT name FROM stores', {}, EU_READER)).items).toEqual([
      { name: 'Paris' },
    ]);
    await expect(
      a.dql(
        "INSERT INTO stores DOCUMENTS ({'_id': {'region': 'eu', 'location': 'x', 'id': 3}})",
        {},
        EU_READER,
      ),
    ).rejects.toThrow(/403/);
  }, 180_000);

  it('a merge process killed mid-sync restarts from its store; nothing acknowledged is lost', async () => {
    const docs = Array.from({ length: 300 }, (_, i) => ({
      _id: `k${i}`,
      n: i,
      pad: 'x'.repeat(200),
    }));
    for (let i = 0; i < docs.length; i += 50) {
      const r = await a.dql(
        `INSERT INTO bulk DOCUMENTS ${docs
          .slice(i, i + 50)
          .map((_, j) => `(:d${j})`)
          .join(', ')}`,
        Object.fromEntries(docs.slice(i, i + 50).map((d, j) => [`d${j}`, d])),
      );
      expect(r.mutatedDocumentIds).toHaveLength(50);
      if (i === 100) await b.kill('merge'); // B's merge dies while A's writes stream to it.
    }
    // B acknowledged writes of its own before dying? Write one more after the restart too.
    await b.start('merge', bus);
    await b.dql("INSERT INTO bulk DOCUMENTS ({'_id': 'from-b', 'n': -1})");
    const count = await converged(
      async (p) => (await p.dql('SELECT COUNT(*) AS n FROM bulk')).items[0]?.['n'],
      (n) => n === 301,
      'every bulk document on both peers',
    );
    expect(count).toBe(301);
    // What B had before it died is still there.
    expect(await b.one('projects', 'p1')).toMatchObject({ tasks: { t3: { title: 'ship' } } });
  }, 180_000);
});
