// End to end: two peers — merge engine, document store (memory engine), multiplexer and this
// package's serial driver — sync documents over a socat pty pair, through an unplug mid-sync.
import { describe, expect, it } from 'vitest';
import { createIdentity, Multiplexer } from '@lattice/multiplexer';
import { MergeEngine, syncOverMultiplexer } from '@lattice/merge';
import { DocumentStore, MemoryEngine } from '@lattice/store';
import { socatPtyPair } from '@lattice/testing';
import { SerialLinkDriver } from '../src/index.js';
import { FAST, waitFor } from './harness.js';

interface SyncPeer {
  readonly engine: MergeEngine;
  readonly mux: Multiplexer;
  readonly driver: SerialLinkDriver;
  /** Sync failures reported by `syncOverMultiplexer` (none expected). */
  readonly errors: unknown[];
  close(): Promise<void>;
}

/** One peer composed as `packages/cli/src/peer.ts` composes it, with the serial driver as its link. */
async function syncPeer(
  seed: number,
  path: string,
  name: string,
  /** Runs on the engine before the serial port opens (documents to sync once connected). */
  prepare?: (engine: MergeEngine) => Promise<void>,
): Promise<SyncPeer> {
  const identity = createIdentity(new Uint8Array(32).fill(seed));
  const store = await DocumentStore.open(new MemoryEngine(), { sync: false });
  const engine = MergeEngine.open({ peerId: identity.peerId, store });
  await prepare?.(engine);
  const mux = new Multiplexer({ identity });
  const driver = new SerialLinkDriver({ ...FAST, silenceMs: 1_000, ports: [path], name });
  const detach = mux.attach(driver);
  const errors: unknown[] = [];
  const stopSync = syncOverMultiplexer(engine, mux, { onError: (_peer, e) => errors.push(e) });
  await engine.subscribe('SELECT * FROM notes');
  return {
    engine,
    mux,
    driver,
    errors,
    close: async () => {
      stopSync();
      await engine.close();
      detach();
      await mux.close();
      await driver.close();
    },
  };
}

/** Every live note of a peer, sorted by `_id`. */
function notes(peer: SyncPeer): Record<string, unknown>[] {
  return peer.engine.store.select('SELECT * FROM notes ORDER BY _id') as Record<string, unknown>[];
}

function text(peer: SyncPeer, id: string): unknown {
  return peer.engine.store.get('notes', [id])[0]?.value?.['text'];
}

describe('two peers syncing over a socat pty pair', () => {
  it('carries an insert on A to B and an update on B back to A', async () => {
    await using pair = await socatPtyPair();
    const a = await syncPeer(21, pair.a, 'usb-a');
    const b = await syncPeer(22, pair.b, 'usb-b');
    try {
      await waitFor(() => a.mux.peers().some((p) => p.peerId === b.mux.peerId && p.connected), {
        what: 'A sees B over the serial link',
      });
      await a.engine.execute('INSERT INTO notes DOCUMENTS (:d)', {
        d: { _id: 'n1', text: 'written on A', tags: ['usb', 'serial'] },
      });
      await waitFor(() => text(b, 'n1') === 'written on A', { what: 'the insert on B' });
      expect(notes(b)).toEqual([{ _id: 'n1', text: 'written on A', tags: ['usb', 'serial'] }]);

      await b.engine.execute("UPDATE notes SET text = 'edited on B' WHERE _id = 'n1'");
      await waitFor(() => text(a, 'n1') === 'edited on B', { what: 'the update back on A' });
      expect(notes(a)).toEqual(notes(b));
      expect(notes(a)).toEqual([{ _id: 'n1', text: 'edited on B', tags: ['usb', 'serial'] }]);
      expect([...a.errors, ...b.errors]).toEqual([]);
      // The documents crossed the pty as serial frames, none of them damaged.
      expect(a.driver.counters[0]?.framesSent).toBeGreaterThan(0);
      expect(b.driver.counters[0]?.corrupt).toBe(0);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('converges with nothing lost when socat is killed mid-sync and restarted', async () => {
    await using pair = await socatPtyPair();
    const written = { a: [] as string[], b: [] as string[] };
    const writer =
      (side: 'a' | 'b', count: number) =>
      async (engine: MergeEngine): Promise<void> => {
        for (let i = 0; i < count; i++)
          await write(engine, side, `${side}${String(i).padStart(4, '0')}`);
      };
    const write = async (engine: MergeEngine, side: 'a' | 'b', id: string): Promise<void> => {
      await engine.execute('INSERT INTO notes DOCUMENTS (:d)', {
        d: { _id: id, text: `${id} `.repeat(100), side },
      });
      written[side].push(id); // acknowledged: it must end up on both peers
    };
    const has = (peer: SyncPeer, ids: readonly string[]): number =>
      peer.engine.store.get('notes', ids).filter((r) => r.value !== undefined).length;
    // Written before the ports open: ~0.9 MB on A and 60 KB on B to sync, a second or more.
    const a = await syncPeer(23, pair.a, 'usb-a', writer('a', 1_500));
    const b = await syncPeer(24, pair.b, 'usb-b', writer('b', 100));
    try {
      await waitFor(() => has(b, written.a) > 0, { what: 'the sync under way' });
      await pair.unplug();
      await waitFor(() => a.driver.links.length === 0 && b.driver.links.length === 0, {
        what: 'both links down',
      });
      // The cable went mid-sync: B holds part of A's documents.
      expect(has(b, written.a)).toBeLessThan(written.a.length);
      // Both sides keep writing while unplugged.
      for (let i = 0; i < 50; i++) {
        await write(a.engine, 'a', `a-offline-${i}`);
        await write(b.engine, 'b', `b-offline-${i}`);
      }
      // An update of a document each side holds, on each side.
      const edits = await Promise.all([
        a.engine.execute("UPDATE notes SET text = 'edited offline on A' WHERE _id = 'a1499'"),
        b.engine.execute("UPDATE notes SET text = 'edited offline on B' WHERE _id = 'b0001'"),
      ]);
      expect(edits.map((e) => e.mutatedIds)).toEqual([['a1499'], ['b0001']]);
      await pair.replug();
      // The edits first: cheap to check, and among the last to arrive.
      await waitFor(
        () =>
          text(b, 'a1499') === 'edited offline on A' &&
          text(a, 'b0001') === 'edited offline on B' &&
          has(a, written.b) === written.b.length &&
          has(b, written.a) === written.a.length,
        { what: 'convergence after the replug', timeoutMs: 60_000, intervalMs: 100 },
      );
      // Every acknowledged write is on both peers, and the peers hold the same documents.
      const all = [...written.a, ...written.b].sort();
      expect(notes(a).map((d) => d['_id'])).toEqual(all);
      expect(notes(a)).toEqual(notes(b));
      expect([...a.errors, ...b.errors]).toEqual([]);
      // The links really went down and came back (new link ids, a second open of each port).
      for (const p of [a, b]) expect(p.driver.counters[0]?.opens).toBeGreaterThanOrEqual(2);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 120_000);
});
