import { waitFor } from '@lattice/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { MergeEngine } from '@lattice/merge';
import { contents, link, peer } from './helpers.js';

const open: MergeEngine[] = [];
async function mk(id: string): Promise<MergeEngine> {
  const p = await peer(id, { session: { batchSize: 50, window: 4 } });
  open.push(p);
  return p;
}
afterEach(async () => {
  for (const p of open.splice(0)) await p.close();
});

const settle = (what: string, cond: () => boolean) =>
  waitFor(() => cond() || undefined, { timeoutMs: 10_000, what });

describe('sync between two peers', () => {
  it('sends what the other subscribed to, then only the changed field', async () => {
    const a = await mk('a');
    const b = await mk('b');
    const fields = Object.fromEntries(
      Array.from({ length: 100 }, (_, i) => [`f${i}`, `value number ${i}`]),
    );
    for (let i = 0; i < 120; i++)
      await a.execute('INSERT INTO cars DOCUMENTS (:d)', { d: { _id: `car${i}`, ...fields } });
    await b.subscribe('SELECT * FROM cars');
    const l = link(a, b);
    await settle('initial sync', () => contents(b, 'cars').length === 120);
    expect(contents(b, 'cars')).toEqual(contents(a, 'cars'));
    const initial = l.bytes.a;
    const docBytes = JSON.stringify(contents(a, 'cars')[0]).length;
    expect(initial).toBeGreaterThan(120 * docBytes * 0.5);

    await settle('idle', () => a.syncStatus()[0]?.state === 'idle');
    const before = l.bytes.a;
    await a.execute("UPDATE cars SET f7 = 'changed' WHERE _id = 'car3'");
    await settle(
      'incremental sync',
      () => (b.store.get('cars', ['car3'])[0]?.value?.['f7'] as string) === 'changed',
    );
    const incremental = l.bytes.a - before;
    // One field and its metadata, plus the offer/deltas framing: far below one document.
    expect(incremental).toBeLessThan(docBytes / 4);
    expect(contents(b, 'cars')).toEqual(contents(a, 'cars'));
    await settle('acknowledged', () => (a.syncStatus()[0]?.ackedThrough ?? 0) >= a.store.lastSeq);
  });

  it('goes quiet between two empty peers (no busy loop)', async () => {
    const a = await mk('a');
    const b = await mk('b');
    await a.subscribe('SELECT * FROM x');
    await b.subscribe('SELECT * FROM x');
    const l = link(a, b);
    await settle(
      'idle',
      () => a.syncStatus()[0]?.state === 'idle' && b.syncStatus()[0]?.state === 'idle',
    );
    const bytes = l.bytes.a + l.bytes.b;
    await new Promise((r) => setTimeout(r, 200));
    expect(l.bytes.a + l.bytes.b).toBe(bytes);
    expect(bytes).toBeLessThan(1_000);
  });

  it('replicates by subscription: partial, added later, and frozen when no longer matching', async () => {
    const a = await mk('a');
    const b = await mk('b');
    await a.execute(
      "INSERT INTO cars DOCUMENTS ({'_id': 1, 'color': 'red'}), ({'_id': 2, 'color': 'blue'}), ({'_id': 3, 'color': 'red'})",
    );
    await a.execute("INSERT INTO people DOCUMENTS ({'_id': 'p', 'name': 'x'})");
    await b.subscribe("SELECT * FROM cars WHERE color = 'red'");
    link(a, b);
    await settle('red cars', () => contents(b, 'cars').length === 2);
    expect(contents(b, 'cars')).toEqual([
      { _id: 1, color: 'red' },
      { _id: 3, color: 'red' },
    ]);
    expect(contents(b, 'people')).toEqual([]);
    // Car 3 stops matching on A: B keeps its last matching copy.
    await a.execute("UPDATE cars SET color = 'green' WHERE _id = 3");
    await a.execute("UPDATE cars SET color = 'red', seats = 4 WHERE _id = 1");
    await settle('car 1 update', () => b.store.get('cars', [1])[0]?.value?.['seats'] === 4);
    expect(b.store.get('cars', [3])[0]?.value).toEqual({ _id: 3, color: 'red' });
    // A subscription added later brings what newly matches, whole.
    await b.subscribe('SELECT * FROM people');
    await settle('people', () => contents(b, 'people').length === 1);
    expect(contents(b, 'people')).toEqual([{ _id: 'p', name: 'x' }]);
    expect(b.subscriptions.map((s) => s.statement)).toEqual([
      "SELECT * FROM cars WHERE color = 'red'",
      'SELECT * FROM people',
    ]);
  });

  it('converges under concurrent edits on both sides', async () => {
    const a = await mk('a');
    const b = await mk('b');
    await a.subscribe('SELECT * FROM tasks');
    await b.subscribe('SELECT * FROM tasks');
    link(a, b);
    await Promise.all([
      a.execute(
        "INSERT INTO tasks DOCUMENTS ({'_id': 't', 'items': {'a1': 'from a'}, 'title': 'A'})",
      ),
      b.execute(
        "INSERT INTO tasks DOCUMENTS ({'_id': 't', 'items': {'b1': 'from b'}, 'title': 'B'})",
      ),
    ]);
    for (let i = 0; i < 10; i++) {
      await a.execute(`UPDATE tasks SET items.a${i} = ${i}`);
      await b.execute(`UPDATE tasks SET items.b${i} = ${i}`);
    }
    await settle(
      'convergence',
      () =>
        JSON.stringify(contents(a, 'tasks')) === JSON.stringify(contents(b, 'tasks')) &&
        Object.keys((contents(a, 'tasks')[0] as { items: object }).items).length === 20,
    );
    const [t] = contents(a, 'tasks') as { items: Record<string, unknown> }[];
    expect(Object.keys(t?.items ?? {}).sort()).toEqual(
      [
        ...Array.from({ length: 10 }, (_, i) => `a${i}`),
        ...Array.from({ length: 10 }, (_, i) => `b${i}`),
      ].sort(),
    );
  });

  it('sends tombstones to peers that had the document, and not to the others', async () => {
    const a = await mk('a');
    const b = await mk('b');
    const c = await mk('c');
    await b.subscribe('SELECT * FROM c');
    await c.subscribe('SELECT * FROM c');
    await a.execute("INSERT INTO c DOCUMENTS ({'_id': 1}), ({'_id': 2})");
    link(a, b);
    await settle('b has both', () => contents(b, 'c').length === 2);
    await a.execute('DELETE FROM c WHERE _id = 1');
    await settle('b got the delete', () => b.store.get('c', [1])[0]?.tombstone === true);
    expect(contents(b, 'c')).toEqual([{ _id: 2 }]);
    link(a, c); // c never had document 1
    await settle('c has 2', () => contents(c, 'c').length === 1);
    await settle(
      'a idle to c',
      () => a.syncStatus().find((s) => s.remotePeer === 'c')?.state === 'idle',
    );
    expect(c.store.get('c', [1])).toEqual([]);
  });

  it('brings back what an eviction removed while a subscription still matches it', async () => {
    const a = await mk('a');
    const b = await mk('b');
    await a.execute(
      "INSERT INTO c DOCUMENTS ({'_id': 1, 'keep': true}), ({'_id': 2, 'keep': false})",
    );
    await a.execute("INSERT INTO other DOCUMENTS ({'_id': 'o'})");
    await b.subscribe('SELECT * FROM c WHERE keep = true');
    link(a, b);
    await settle('first', () => contents(b, 'c').length === 1);
    // A local document of a collection b does not subscribe to: evicted, it stays gone.
    await b.execute("INSERT INTO mine DOCUMENTS ({'_id': 'm'})");
    await b.execute('EVICT FROM mine');
    await b.execute('EVICT FROM c WHERE _id = 1');
    expect(contents(b, 'c')).toEqual([]);
    await settle('document 1 came back', () => contents(b, 'c').length === 1);
    expect(contents(b, 'c')).toEqual([{ _id: 1, keep: true }]);
    expect(contents(b, 'mine')).toEqual([]);
    // Later changes keep flowing after the rescan.
    await a.execute('UPDATE c SET v = 2 WHERE _id = 1');
    await settle('update after eviction', () => b.store.get('c', [1])[0]?.value?.['v'] === 2);
  });

  it('relays across a line of peers with no direct link', async () => {
    const ps = await Promise.all(['p1', 'p2', 'p3', 'p4', 'p5'].map(mk));
    for (const p of ps) await p.subscribe('SELECT * FROM notes');
    for (let i = 0; i + 1 < ps.length; i++) link(ps[i] as MergeEngine, ps[i + 1] as MergeEngine);
    await ps[0]?.execute("INSERT INTO notes DOCUMENTS ({'_id': 'n', 'from': 'p1'})");
    await ps[4]?.execute("INSERT INTO notes DOCUMENTS ({'_id': 'm', 'from': 'p5'})");
    await settle('everyone has both', () => ps.every((p) => contents(p, 'notes').length === 2));
  });

  it('resumes from its checkpoint after a reconnect', async () => {
    const a = await mk('a');
    const b = await mk('b');
    await b.subscribe('SELECT * FROM c');
    for (let i = 0; i < 200; i++)
      await a.execute('INSERT INTO c DOCUMENTS (:d)', { d: { _id: i, v: i } });
    const first = link(a, b);
    await settle('first sync', () => contents(b, 'c').length === 200);
    await settle('acked', () => (a.syncStatus()[0]?.ackedThrough ?? 0) >= a.store.lastSeq);
    first.close();
    await first.done;
    await a.execute('UPDATE c SET v = -1 WHERE _id = 7');
    const second = link(a, b);
    await settle('second sync', () => b.store.get('c', [7])[0]?.value?.['v'] === -1);
    await settle(
      'idle again',
      () => a.syncStatus().find((s) => s.remotePeer === 'b')?.state === 'idle',
    );
    // Only the one changed document was offered, not the 200.
    expect(second.bytes.a).toBeLessThan(first.bytes.a / 20);
  });
});
