/** The merge service on real NATS: DQL through the bus, subscriptions kept, sync status; the store API served alongside. */
import { NatsBus } from '@lattice/bus';
import { hasCode } from '@lattice/errors';
import { MergeClient, mergeConfigSchema, startMergeService } from '@lattice/merge';
import { Subjects } from '@lattice/proto';
import { createLogger } from '@lattice/service';
import { StoreClient } from '@lattice/store';
import { tempDir } from '@lattice/testing';
import { describe, expect, inject, it } from 'vitest';

describe('merge service over NATS', () => {
  it('executes DQL, keeps subscriptions across a restart and serves the store', async () => {
    await using dir = await tempDir('lattice-merge-svc-');
    const bus = await NatsBus.connect({ servers: inject('natsUrl') });
    const subjects = new Subjects(`merge${process.pid}`);
    const config = mergeConfigSchema.parse({ namespace: `merge${process.pid}`, data: dir.path });
    const ctx = { bus, subjects, config, logger: createLogger('silent', 'merge-test') };
    let svc = await startMergeService(ctx);
    try {
      const client = new MergeClient(bus, subjects, { timeoutMs: 5_000 });
      const ins = await client.execute("INSERT INTO cars DOCUMENTS ({'_id': 'a', 'n': 1}), (:d)", {
        d: { _id: 'b', n: 2 },
      });
      expect(ins).toMatchObject({ mutatedIds: ['a', 'b'], queryType: 'INSERT', commitSeq: 1 });
      expect((await client.execute('SELECT * FROM cars WHERE n > :n', { n: 1 })).items).toEqual([
        { _id: 'b', n: 2 },
      ]);
      const err = await client.execute('SELEC').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(hasCode(err, 'DQL_SYNTAX')).toBe(true);
      await client.subscribe('SELECT * FROM cars WHERE n > :n', { n: 0 });
      const status = await client.syncStatus();
      expect(status.lastCommit).toBe(1);
      const peerId = status.peerId;
      // The store's own API answers from the same process.
      expect(await new StoreClient(bus, subjects).select('SELECT _id FROM cars')).toEqual([
        { _id: 'a' },
        { _id: 'b' },
      ]);

      await svc.stop();
      svc = await startMergeService(ctx);
      expect(await client.subscriptions()).toEqual([
        { statement: 'SELECT * FROM cars WHERE n > :n', args: { n: 0 } },
      ]);
      expect((await client.syncStatus()).peerId).toBe(peerId); // the identity survives restarts
      expect((await client.execute('SELECT count(*) AS c FROM cars')).items).toEqual([{ c: 2 }]);
    } finally {
      await svc.stop();
      await bus.close();
    }
  });
});
