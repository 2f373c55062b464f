import { compilePermissions } from '@lattice/dql';
import { channelPair } from '@lattice/merge';
import type { MergeEngine } from '@lattice/merge';
import { waitFor } from '@lattice/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { contents, peer } from './helpers.js';

const open: MergeEngine[] = [];
async function mk(id: string): Promise<MergeEngine> {
  const p = await peer(id, { session: { batchSize: 20, window: 4 } });
  open.push(p);
  return p;
}
afterEach(async () => {
  for (const p of open.splice(0)) await p.close();
});

const settle = (what: string, cond: () => boolean) =>
  waitFor(() => cond() || undefined, { timeoutMs: 10_000, what });

// What the hub lets the app peer do: read regions 1 and 2 of cars, write region 1 only.
const appPermissions = compilePermissions({
  read: { queriesByCollection: { cars: ["_id.region = '1'", "_id.region = '2'"] } },
  write: { queriesByCollection: { cars: ["_id.region = '1'"] } },
});

/** Links hub and app, the hub restricting what the app may read and write. */
function restrictedLink(hub: MergeEngine, app: MergeEngine): void {
  const [ch, ca] = channelPair();
  void hub.connect(app.peerId, ch, { permissions: appPermissions });
  void app.connect(hub.peerId, ca);
}

const ids = (p: MergeEngine, c = 'cars') =>
  (contents(p, c) as { _id: { region: string; n: number } }[]).map(
    (d) => `${d._id.region}/${d._id.n}`,
  );

describe('permissions on sync links', () => {
  it('sends a restricted peer only what it may read, tombstones included', async () => {
    const hub = await mk('hub');
    const app = await mk('app');
    for (const region of ['1', '2', '3']) {
      for (let n = 0; n < 30; n++) {
        await hub.execute('INSERT INTO cars DOCUMENTS (:d)', {
          d: { _id: { region, n }, make: 'x' },
        });
      }
    }
    await hub.execute("INSERT INTO people DOCUMENTS ({'_id': 'p1'})");
    await app.subscribe('SELECT * FROM cars');
    await app.subscribe('SELECT * FROM people');
    restrictedLink(hub, app);
    await settle('regions 1 and 2', () => contents(app, 'cars').length === 60);
    await settle('idle', () => hub.syncStatus()[0]?.state === 'idle');
    expect(ids(app).every((id) => id.startsWith('1/') || id.startsWith('2/'))).toBe(true);
    expect(contents(app, 'people')).toEqual([]);

    // Later writes follow the same rule: the tail of the change log is filtered too.
    await hub.execute("UPDATE cars SET make = 'y'");
    await hub.execute('DELETE FROM cars WHERE _id.n = 0');
    await settle(
      'updates of permitted documents',
      () =>
        contents(app, 'cars').length === 58 &&
        (contents(app, 'cars') as { make: string }[]).every((d) => d.make === 'y'),
    );
    await settle('idle again', () => hub.syncStatus()[0]?.state === 'idle');
    expect(ids(app).some((id) => id.startsWith('3/'))).toBe(false);
  });

  it('refuses what a restricted peer may not write, and counts it', async () => {
    const hub = await mk('hub');
    const app = await mk('app');
    await hub.subscribe('SELECT * FROM cars');
    await hub.subscribe('SELECT * FROM people');
    await app.subscribe('SELECT * FROM cars');
    await app.execute(
      "INSERT INTO cars DOCUMENTS ({'_id': {'region': '1', 'n': 1}}), ({'_id': {'region': '2', 'n': 1}}), ({'_id': {'region': '3', 'n': 1}})",
    );
    await app.execute("INSERT INTO people DOCUMENTS ({'_id': 'intruder'})");
    restrictedLink(hub, app);
    await settle('region 1 written', () => contents(hub, 'cars').length === 1);
    await settle('app idle', () => app.syncStatus()[0]?.state === 'idle');
    expect(ids(hub)).toEqual(['1/1']);
    expect(contents(hub, 'people')).toEqual([]);
    // Region 2 is readable but not writable: not even asked for (the offer is answered "not
    // wanted"), so nothing is refused on arrival; the app's checkpoint still advanced.
    const status = hub.syncStatus()[0];
    expect(status?.receivedThrough).toBe(app.store.lastSeq);

    // A write to a document the app may read but not write does not reach the hub either.
    await hub.execute("INSERT INTO cars DOCUMENTS ({'_id': {'region': '2', 'n': 9}, 'v': 1})");
    await settle('hub document reaches app', () => contents(app, 'cars').length === 4);
    await app.execute('UPDATE cars SET v = 2 WHERE _id.n = 9');
    await app.execute("UPDATE cars SET v = 3 WHERE _id.region = '1'");
    await settle('permitted update arrives', () =>
      (contents(hub, 'cars') as { v?: number }[]).some((d) => d.v === 3),
    );
    await settle('app idle again', () => app.syncStatus()[0]?.state === 'idle');
    expect(
      (contents(hub, 'cars') as { _id: { n: number }; v?: number }[]).find((d) => d._id.n === 9)?.v,
    ).toBe(1);
    // The app knew the hub held that document, so it pushed the change without an offer: the
    // hub refused it on arrival.
    expect(hub.syncStatus()[0]?.documentsRefused).toBeGreaterThanOrEqual(1);
  });
});
