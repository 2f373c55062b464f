/**
 * A session's first messages lost on the way (a merge service whose feed had not caught up with
 * a new link loses what arrives first: a prefix of each direction's stream). Each case loses a
 * different prefix; both peers must still end up with each other's documents.
 */
import { describe, expect, it } from 'vitest';
import { InboxChannel, type MergeEngine } from '@lattice/merge';
import { contents, peer } from './helpers.js';

/** Timers fired by hand, in due order, on a clock the test advances. */
class ManualTimers {
  now = 0;
  readonly #pending = new Set<{ due: number; fn: () => void }>();
  readonly set = (ms: number, fn: () => void): (() => void) => {
    const t = { due: this.now + ms, fn };
    this.#pending.add(t);
    return () => this.#pending.delete(t);
  };
  get size(): number {
    return this.#pending.size;
  }
  /** Advances the clock by `ms` and runs what fell due. */
  advance(ms: number): void {
    this.now += ms;
    for (const t of [...this.#pending].sort((x, y) => x.due - y.due)) {
      if (t.due > this.now) continue;
      this.#pending.delete(t);
      t.fn();
    }
  }
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 50; i++) await new Promise<void>((r) => setImmediate(r));
};

/**
 * Peers A and B, each holding one document and subscribed to everything, linked so that the
 * first `lost.ab` messages from A to B and the first `lost.ba` from B to A never arrive.
 */
async function lossyPair(lost: { ab: number; ba: number }) {
  const timers = new ManualTimers();
  const options = { setTimer: timers.set, session: { helloRetryMs: 1_000 } };
  const a = await peer('A', options);
  const b = await peer('B', options);
  for (const [p, id] of [
    [a, 'a1'],
    [b, 'b1'],
  ] as const) {
    await p.execute('INSERT INTO c DOCUMENTS (:d)', { d: { _id: id } });
    await p.subscribe('SELECT * FROM c');
  }
  const dropped = { ab: 0, ba: 0 };
  const ends: { a?: InboxChannel; b?: InboxChannel } = {};
  const wire = (dir: 'ab' | 'ba', to: () => InboxChannel | undefined) => (m: Uint8Array) => {
    if (dropped[dir] < lost[dir]) dropped[dir]++;
    else to()?.deliver(m);
  };
  ends.a = new InboxChannel(wire('ab', () => ends.b));
  ends.b = new InboxChannel(wire('ba', () => ends.a));
  const done = Promise.allSettled([a.connect('B', ends.a), b.connect('A', ends.b)]);
  const synced = (): boolean => [a, b].every((p: MergeEngine) => contents(p, 'c').length === 2);
  return {
    a,
    b,
    timers,
    synced,
    dropped,
    async close() {
      ends.a?.close();
      ends.b?.close();
      await done;
    },
  };
}

describe('a sync session whose first messages are lost', () => {
  for (const [name, lost] of [
    ['both first hellos', { ab: 1, ba: 1 }],
    ["A's hello, its answer to B's and its subscriptions", { ab: 3, ba: 0 }],
    ["B's hello, its answer to A's and its subscriptions", { ab: 0, ba: 3 }],
    ['everything of the first round both ways', { ab: 3, ba: 3 }],
  ] as const) {
    it(`recovers when it loses ${name}`, async () => {
      const pair = await lossyPair(lost);
      try {
        await settle();
        for (let i = 0; i < 20 && !pair.synced(); i++) {
          pair.timers.advance(1_000 * 2 ** Math.min(i, 5));
          await settle();
        }
        expect(pair.synced()).toBe(true);
        expect(pair.dropped).toEqual(lost); // the whole prefix was lost, as the case says
        // Established on both sides: no hello retry left pending.
        expect(pair.timers.size).toBe(0);
      } finally {
        await pair.close();
      }
    });
  }

  it('stays stuck without its hello retry (what the retry is for)', async () => {
    const pair = await lossyPair({ ab: 1, ba: 1 });
    try {
      await settle();
      expect(pair.synced()).toBe(false);
      expect(pair.timers.size).toBe(2); // one retry per side, nothing else would move
    } finally {
      await pair.close();
    }
  });
});
