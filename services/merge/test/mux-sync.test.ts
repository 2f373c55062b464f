/**
 * Sync over the real multiplexer: two peers' merge engines on two Multiplexers joined by lossy,
 * small-MTU loopback links (real time), through a link cut and a second link.
 */
import { createIdentity, LoopbackNetwork, Multiplexer, SystemClock } from '@lattice/multiplexer';
import { syncOverMultiplexer } from '@lattice/merge';
import type { MergeEngine } from '@lattice/merge';
import { waitFor } from '@lattice/testing';
import { describe, expect, it } from 'vitest';
import { contents, peer } from './helpers.js';

describe('sync over the multiplexer', () => {
  it('converges over a lossy 185-byte link, survives a cut, and fails over to a second link', async () => {
    const clock = new SystemClock();
    const net = new LoopbackNetwork({ clock, seed: 7 });
    const idA = createIdentity(new Uint8Array(32).fill(11));
    const idB = createIdentity(new Uint8Array(32).fill(12));
    const muxA = new Multiplexer({ identity: idA, clock });
    const muxB = new Multiplexer({ identity: idB, clock });
    const da = net.driver('a');
    const db = net.driver('b');
    muxA.attach(da);
    muxB.attach(db);
    const a: MergeEngine = await peer(idA.peerId);
    const b: MergeEngine = await peer(idB.peerId);
    const errors: unknown[] = [];
    const stopA = syncOverMultiplexer(a, muxA, { onError: (_p, e) => errors.push(e) });
    const stopB = syncOverMultiplexer(b, muxB, { onError: (_p, e) => errors.push(e) });
    try {
      await a.subscribe('SELECT * FROM notes');
      await b.subscribe('SELECT * FROM notes');
      for (let i = 0; i < 40; i++) {
        await a.execute('INSERT INTO notes DOCUMENTS (:d)', {
          d: { _id: `a${i}`, text: 'x'.repeat(300) },
        });
      }
      await b.execute("INSERT INTO notes DOCUMENTS ({'_id': 'b0', 'text': 'from b'})");
      const lossy = {
        maxFrameBytes: 185,
        bandwidthBytesPerS: 2_000_000,
        latencyMs: 2,
        loss: 0.05,
        duplicate: 0.02,
        jitterMs: 2,
      };
      const link1 = net.connect(da, db, lossy);
      await waitFor(
        () =>
          contents(b, 'notes').length === 41 && contents(a, 'notes').length === 41
            ? true
            : undefined,
        {
          timeoutMs: 20_000,
          what: 'first sync',
        },
      );
      expect(contents(a, 'notes')).toEqual(contents(b, 'notes'));

      // Cut the link, write on both sides, bring up another link: everything arrives once.
      link1.drop('cut');
      await a.execute("UPDATE notes SET text = 'edited on a' WHERE _id = 'a3'");
      await b.execute("UPDATE notes SET text = 'edited on b' WHERE _id = 'b0'");
      net.connect(da, db, { ...lossy, maxFrameBytes: 512 });

      await waitFor(
        () =>
          b.store.get('notes', ['a3'])[0]?.value?.['text'] === 'edited on a' &&
          a.store.get('notes', ['b0'])[0]?.value?.['text'] === 'edited on b'
            ? true
            : undefined,
        { timeoutMs: 20_000, what: 'sync after the cut' },
      );
      expect(contents(a, 'notes')).toEqual(contents(b, 'notes'));
      expect(errors).toEqual([]);
    } finally {
      stopA();
      stopB();
      await a.close();
      await b.close();
      await muxA.close();
      await muxB.close();
    }
  }, 60_000);
});
