/**
 * End to end through the WebSocket sync endpoint: a remote peer connects to the gateway's
 * `/api/v4/sync` with its own multiplexer, syncs with the gateway's peer, and its writes reach
 * a gRPC Observe stream on the gateway.
 */
import { describe, expect, it } from 'vitest';
import { createIdentity, Multiplexer, SystemClock } from '@lattice/multiplexer';
import { MergeEngine, syncOverMultiplexer } from '@lattice/merge';
import type { v1 } from '@lattice/proto';
import { DocumentStore, MemoryEngine } from '@lattice/store';
import { waitFor } from '@lattice/testing';
import { InProcessPeer, parseKeys, startGateway, WebSocketLinkDriver } from '@lattice/gateway';
import type { GatewayOptions } from '@lattice/gateway';
import * as grpc from '@grpc/grpc-js';
import { applyBatch, dec, observe, reader } from './helpers.js';

async function engineFor(peerId: string): Promise<MergeEngine> {
  return MergeEngine.open({ peerId, store: await DocumentStore.open(new MemoryEngine()) });
}

/** Peer A behind a gateway with a sync endpoint, and remote peer B with its own multiplexer. */
async function world(seed: number, options: Omit<GatewayOptions, 'sync'>, meshKeyA?: Uint8Array) {
  const clock = new SystemClock();
  const idA = createIdentity(new Uint8Array(32).fill(seed));
  const idB = createIdentity(new Uint8Array(32).fill(seed + 1));
  const a = await engineFor(idA.peerId);
  const b = await engineFor(idB.peerId);
  const gateway = await startGateway(new InProcessPeer(a), {
    grpcPort: 0,
    httpPort: 0,
    ...options,
    sync: {},
  });
  const muxA = new Multiplexer({ identity: idA, clock, meshKey: meshKeyA });
  const muxB = new Multiplexer({ identity: idB, clock });
  muxA.attach(gateway.links as WebSocketLinkDriver);
  const remoteDriver = new WebSocketLinkDriver();
  muxB.attach(remoteDriver);
  const errors: unknown[] = [];
  const stopA = syncOverMultiplexer(a, muxA, { onError: (_p, e) => errors.push(e) });
  const stopB = syncOverMultiplexer(b, muxB, { onError: (_p, e) => errors.push(e) });
  return {
    idA,
    idB,
    a,
    b,
    gateway,
    remoteDriver,
    errors,
    /** Connects B to the gateway's sync endpoint with `apiKey`. */
    connect: (apiKey: string) =>
      remoteDriver.connect(`ws://127.0.0.1:${gateway.httpPort}/api/v4/sync`, { apiKey }),
    async close() {
      stopA();
      stopB();
      await muxA.close();
      await muxB.close();
      await remoteDriver.close();
      await gateway.close();
      await a.close();
      await b.close();
      await a.store.close();
      await b.store.close();
    },
  };
}

describe('WebSocket sync endpoint, end to end', () => {
  it('admits an app on its key alone when the gateway peer is in a mesh with a shared key', async () => {
    const { idA, idB, a, b, errors, ...w } = await world(
      25,
      { apiKeys: ['k'] },
      new Uint8Array(32).fill(9),
    );
    try {
      await a.subscribe('SELECT * FROM notes');
      await w.connect('k');
      await b.execute("INSERT INTO notes DOCUMENTS ({'_id': 'n1'})");
      await waitFor(() => (a.store.get('notes', ['n1'])[0]?.value ? true : undefined), {
        what: "the app's note on the gateway peer",
      });
      expect(a.syncStatus().map((s) => s.remotePeer)).toEqual([idB.peerId]);
      expect(b.syncStatus().map((s) => s.remotePeer)).toEqual([idA.peerId]);
      expect(errors).toEqual([]);
    } finally {
      await w.close();
    }
  });

  it('a remote peer syncs through the gateway; its transaction reaches an Observe stream whole', async () => {
    const { idB, a, b, gateway, errors, ...w } = await world(21, { apiKeys: ['k'] });
    const client = new grpc.Client(
      `127.0.0.1:${gateway.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer k');
    const stream = observe(client, { statement: 'SELECT * FROM notes ORDER BY _id' }, md);
    try {
      await a.subscribe('SELECT * FROM notes');
      const next = reader<v1.ObserveResponse>(stream);
      let items = applyBatch([], await next());
      expect(items).toEqual([]);
      await w.connect('k');
      await b.execute('INSERT INTO notes DOCUMENTS (:x), (:y)', {
        x: { _id: 'n1', text: 'from afar' },
        y: { _id: 'n2', text: 'also' },
      });
      const batch = await next();
      expect(batch.changes.map((c) => c.kind)).toEqual([1, 1]);
      items = applyBatch(items, batch);
      expect(items).toEqual([
        { _id: 'n1', text: 'from afar' },
        { _id: 'n2', text: 'also' },
      ]);
      await waitFor(
        () => (a.syncStatus().some((s) => s.remotePeer === idB.peerId) ? true : undefined),
        { what: 'sync status of the remote' },
      );
      expect(gateway.links?.size).toBe(1);
      expect(errors).toEqual([]);
      expect(dec(batch.changes[0]?.item ?? new Uint8Array())).toEqual({
        _id: 'n1',
        text: 'from afar',
      });
    } finally {
      stream.cancel();
      client.close();
      await w.close();
    }
  });
  it('a restricted key syncs only what it may read, and its writes outside the permission are refused', async () => {
    const region1 = { queriesByCollection: { cars: ["_id.region = '1'"] } };
    const { idA, idB, a, b, errors, ...w } = await world(31, {
      keys: parseKeys({
        keys: [
          {
            name: 'region-1',
            token: 'region-1-token-0123456789',
            permission: { read: region1, write: region1 },
          },
        ],
      }),
    });
    try {
      await a.execute('INSERT INTO cars DOCUMENTS (:x), (:y)', {
        x: { _id: { region: '1', n: 1 }, make: 'Volvo' },
        y: { _id: { region: '2', n: 1 }, make: 'Fiat' },
      });
      await a.execute("INSERT INTO secrets DOCUMENTS ({'_id': 's', 'pin': 1234})");
      await a.subscribe('SELECT * FROM cars');
      await b.subscribe('SELECT * FROM cars');
      await b.subscribe('SELECT * FROM secrets');
      await b.execute('INSERT INTO cars DOCUMENTS (:x), (:y)', {
        x: { _id: { region: '1', n: 2 }, make: 'Saab' },
        y: { _id: { region: '2', n: 2 }, make: 'Kia' },
      });
      await w.connect('region-1-token-0123456789');
      const cars = (p: MergeEngine) =>
        (p.store.select('SELECT * FROM cars ORDER BY _id') as { make: string }[]).map(
          (d) => d.make,
        );
      await waitFor(() => (cars(b).length === 3 ? true : undefined), { what: 'region 1 on b' });
      await waitFor(() => (cars(a).length === 3 ? true : undefined), { what: 'region 1 on a' });
      const idle = (p: MergeEngine, remote: string) =>
        p.syncStatus().find((s) => s.remotePeer === remote)?.state === 'idle';
      await waitFor(() => (idle(a, idB.peerId) && idle(b, idA.peerId) ? true : undefined), {
        what: 'both idle',
      });
      expect(cars(b).sort()).toEqual(['Saab', 'Volvo', 'Kia'].sort());
      // b keeps its own region 2 car; it never received a's region 2 car or the secrets.
      expect(cars(b)).not.toContain('Fiat');
      expect(b.store.select('SELECT * FROM secrets')).toEqual([]);
      expect(cars(a).sort()).toEqual(['Fiat', 'Saab', 'Volvo']);
      expect(errors).toEqual([]);
    } finally {
      await w.close();
    }
  });
});
