/**
 * End to end over the fake radio: two peers (merge engine + memory store + multiplexer + BLE
 * driver; one central, one peripheral) sync documents at a BLE budget of 20 000 B/s and MTU 185,
 * in real time.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@lattice/testing';
import { FakeAir } from '../src/testing.js';
import { bleSyncPair, contents, type BleSyncPair } from './sync-peers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function world(): Promise<{ air: FakeAir; pair: BleSyncPair }> {
  const air = new FakeAir({ mtu: 185, bytesPerS: 20_000, radioQueueFrames: 8 });
  const pair = await bleSyncPair(air, { driver: { bandwidthBytesPerS: 20_000 } });
  cleanups.push(
    () => air.close(),
    () => pair.close(),
  );
  await pair.a.engine.subscribe('SELECT * FROM notes');
  await pair.b.engine.subscribe('SELECT * FROM notes');
  return { air, pair };
}

const text = (p: BleSyncPair['a'], id: string): unknown =>
  p.engine.store.get('notes', [id])[0]?.value?.['text'];

describe('two peers syncing over BLE (fake radio, 20 KB/s, MTU 185)', () => {
  it('a document inserted on the central appears on the peripheral, and an edit flows back', async () => {
    const { air, pair } = await world();
    const { a, b } = pair;
    pair.start();
    await pair.peerUp;
    // The multiplexers reached each other over BLE and nothing else.
    expect(a.mux.peers()[0]?.links.map((l) => l.transport)).toEqual(['ble']);
    expect(a.ble.links[0]?.capabilities.maxFrameBytes).toBe(182);

    await a.engine.execute('INSERT INTO notes DOCUMENTS (:d)', {
      d: { _id: 'n1', text: 'from the central', tags: ['ble', 'e2e'] },
    });
    await waitFor(() => text(b, 'n1') === 'from the central', { what: 'n1 on the peripheral' });

    await b.engine.execute("UPDATE notes SET text = 'edited on the peripheral' WHERE _id = 'n1'");
    await b.engine.execute('INSERT INTO notes DOCUMENTS (:d)', {
      d: { _id: 'n2', text: 'from the peripheral' },
    });
    await waitFor(
      () => text(a, 'n1') === 'edited on the peripheral' && text(a, 'n2') === 'from the peripheral',
      { what: 'the edit and n2 on the central' },
    );
    expect(contents(a, 'notes')).toEqual(contents(b, 'notes'));
    expect(contents(a, 'notes')).toHaveLength(2);
    // It went over the radio, paced: value bytes in both directions and nothing lost on air.
    expect(a.ble.counters.bytesOut).toBeGreaterThan(0);
    expect(b.ble.counters.bytesOut).toBeGreaterThan(0);
    expect(air.stats.bytesDelivered).toBe(a.ble.counters.bytesIn + b.ble.counters.bytesIn);
    expect(air.stats.overflows).toBe(0);
    expect(pair.errors).toEqual([]);
  });

  it('a 40-document collection reaches the peripheral through a radio cut mid-sync', async () => {
    const { air, pair } = await world();
    const { a, b } = pair;
    // ~600 B each, ~24 KB in all: about 1.3 s of air at 20 KB/s. Random text, so that the sync
    // protocol's deflate cannot shrink it to a single short burst.
    for (let i = 0; i < 40; i++) {
      await a.engine.execute('INSERT INTO notes DOCUMENTS (:d)', {
        d: {
          _id: `d${String(i).padStart(2, '0')}`,
          n: i,
          text: randomBytes(435).toString('base64'),
        },
      });
    }
    pair.start();
    await pair.peerUp;
    // A third of the bytes crossed (the engine sends documents in batches, each one message).
    await waitFor(() => b.ble.counters.bytesIn > 8_000, { what: 'a third across', intervalMs: 2 });
    expect(contents(b, 'notes').length).toBeLessThan(40);
    air.cut();
    await b.engine.execute('INSERT INTO notes DOCUMENTS (:d)', {
      d: { _id: 'late', text: 'written on the peripheral while the radio was cut' },
    });
    await waitFor(() => contents(b, 'notes').length === 41 && contents(a, 'notes').length === 41, {
      what: 'both peers hold all 41 documents',
      timeoutMs: 30_000,
    });
    expect(contents(a, 'notes')).toEqual(contents(b, 'notes'));
    expect(air.stats.connections).toBeGreaterThanOrEqual(2); // it did reconnect
    expect(air.stats.overflows).toBe(0);
    expect(pair.errors).toEqual([]);
  });
});
