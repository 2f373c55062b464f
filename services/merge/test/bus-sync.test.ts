/**
 * Sync with the multiplexer in another "process": each peer's merge engine reaches its
 * multiplexer only through the bus message API (`serveMultiplexerMessages` / `MultiplexerClient`),
 * one bus per peer as on two machines. Through a feed gap, a restart of the merge side and a
 * restart of the multiplexer side, the peers converge.
 */
import { LocalBus, type Bus } from '@lattice/bus';
import { syncOverMultiplexer, type MergeEngine } from '@lattice/merge';
import {
  createIdentity,
  LoopbackNetwork,
  Multiplexer,
  MultiplexerClient,
  serveMultiplexerMessages,
  SystemClock,
  type Identity,
  type LoopbackLinkDriver,
} from '@lattice/multiplexer';
import { restrictedDriver } from '@lattice/multiplexer/testing';
import { Subjects } from '@lattice/proto';
import { waitFor } from '@lattice/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { contents, peer } from './helpers.js';

const subjects = new Subjects('test');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** One side of a peer split in two: the multiplexer half (mux + its bus API). */
function multiplexerHalf(
  net: LoopbackNetwork,
  bus: Bus,
  identity: Identity,
  name: string,
): { mux: Multiplexer; driver: LoopbackLinkDriver; stop(): Promise<void> } {
  const mux = new Multiplexer({ identity, clock: new SystemClock() });
  const driver = net.driver(name);
  mux.attach(driver);
  const served = serveMultiplexerMessages(bus, subjects, mux, { heartbeatMs: 100 });
  return {
    mux,
    driver,
    async stop() {
      await served.stop();
      await mux.close();
    },
  };
}

/** A bus that loses the next `loss.drop` items of the multiplexer's inbound feed. */
function lossyInbound(bus: Bus, loss: { drop: number }): Bus {
  return new Proxy(bus, {
    get(target, property) {
      if (property === 'publish') {
        return (subject: string, data: Uint8Array): void => {
          if (subject.endsWith('inbound') && data.length > 40 && loss.drop > 0) loss.drop -= 1;
          else target.publish(subject, data);
        };
      }
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
}

/** The other half: a merge engine syncing through a client on the bus. */
function mergeHalf(
  engine: MergeEngine,
  bus: LocalBus,
): { client: MultiplexerClient; problems: string[]; stop(): void } {
  const problems: string[] = [];
  const client = new MultiplexerClient({
    bus,
    subjects,
    peerId: engine.peerId,
    maxRetryMs: 200,
    onProblem: (m) => problems.push(m),
  });
  const stopSync = syncOverMultiplexer(engine, client);
  return {
    client,
    problems,
    stop() {
      stopSync();
      client.close();
    },
  };
}

const converged = (a: MergeEngine, b: MergeEngine, n: number) => (): true | undefined => {
  const x = contents(a, 'notes');
  return x.length === n && JSON.stringify(x) === JSON.stringify(contents(b, 'notes'))
    ? true
    : undefined;
};

describe('sync through the multiplexer bus API', () => {
  it('converges, and survives a feed gap and restarts of either half', async () => {
    const net = new LoopbackNetwork({ clock: new SystemClock(), seed: 3 });
    const idA = createIdentity(new Uint8Array(32).fill(21));
    const idB = createIdentity(new Uint8Array(32).fill(22));
    const busA = new LocalBus();
    const busB = new LocalBus();
    cleanups.push(
      () => busA.close(),
      () => busB.close(),
    );
    const lossA = { drop: 0 };
    let muxA = multiplexerHalf(net, lossyInbound(busA, lossA), idA, 'a');
    const muxB = multiplexerHalf(net, busB, idB, 'b');
    cleanups.push(() => muxB.stop());
    const a = await peer(idA.peerId);
    const b = await peer(idB.peerId);
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    let mergeA = mergeHalf(a, busA);
    const mergeB = mergeHalf(b, busB);
    cleanups.push(() => mergeB.stop());
    await a.subscribe('SELECT * FROM notes');
    await b.subscribe('SELECT * FROM notes');
    const link = { maxFrameBytes: 512, bandwidthBytesPerS: 5_000_000, latencyMs: 1 };
    net.connect(muxA.driver, muxB.driver, link);

    for (let i = 0; i < 30; i++) {
      await a.execute('INSERT INTO notes DOCUMENTS (:d)', { d: { _id: `a${i}`, n: i } });
    }
    await b.execute("INSERT INTO notes DOCUMENTS ({'_id': 'b0', 'n': 0})");
    await waitFor(converged(a, b, 31), { timeoutMs: 20_000, what: 'first sync over the bus' });
    expect(mergeA.client.peers()).toEqual([{ peerId: idB.peerId, connected: true }]);

    // Feed items lost on the bus (as for a slow NATS subscriber) — here B's next message to A:
    // the client sees the gap at the next item (a heartbeat at the latest), resets its sessions,
    // and the peers still converge.
    lossA.drop = 1;
    await b.execute("UPDATE notes SET n = 200 WHERE _id = 'b0'");
    await a.execute("UPDATE notes SET n = 100 WHERE _id = 'a1'");
    await waitFor(
      () =>
        b.store.get('notes', ['a1'])[0]?.value?.['n'] === 100 &&
        a.store.get('notes', ['b0'])[0]?.value?.['n'] === 200
          ? true
          : undefined,
      { timeoutMs: 20_000, what: 'sync after a feed disruption' },
    );
    expect(lossA.drop).toBe(0);
    expect(mergeA.client.counters.missedItems).toBeGreaterThan(0);

    // The merge half of A restarts (a new client on the same store): it learns the connected
    // peers from the multiplexer and resumes.
    mergeA.stop();
    await b.execute("INSERT INTO notes DOCUMENTS ({'_id': 'b1', 'n': 1})");
    mergeA = mergeHalf(a, busA);
    await waitFor(converged(a, b, 32), { timeoutMs: 20_000, what: 'sync after a merge restart' });

    // The multiplexer half of A restarts (a new instance, same identity): sessions end and begin
    // again over the new link.
    await muxA.stop();
    await a.execute("INSERT INTO notes DOCUMENTS ({'_id': 'a-late', 'n': 1})");
    muxA = multiplexerHalf(net, busA, idA, 'a2');
    expect(mergeA.client.counters.instances).toBe(0);
    net.connect(muxA.driver, muxB.driver, link);
    await waitFor(converged(a, b, 33), { timeoutMs: 30_000, what: 'sync after a mux restart' });
    expect(mergeA.client.counters.instances).toBe(1);
    expect(mergeA.problems.filter((p) => p.includes('another peer id'))).toEqual([]);
    mergeA.stop();
    await muxA.stop();
  }, 90_000);

  it("carries a restricted peer's permissions through the bus API, live and in the snapshot", async () => {
    const net = new LoopbackNetwork({ clock: new SystemClock(), seed: 5 });
    const idHub = createIdentity(new Uint8Array(32).fill(41));
    const idApp = createIdentity(new Uint8Array(32).fill(42));
    const busHub = new LocalBus();
    const busApp = new LocalBus();
    cleanups.push(
      () => busHub.close(),
      () => busApp.close(),
    );
    // The hub's transport reports the app as restricted to region 1 (read and write).
    const region1 = { queriesByCollection: { notes: { queries: ["_id.region = '1'"] } } };
    const muxHub = new Multiplexer({ identity: idHub, clock: new SystemClock() });
    const driverHub = net.driver('hub');
    muxHub.attach(restrictedDriver(driverHub, { read: region1, write: region1 }));
    const served = serveMultiplexerMessages(busHub, subjects, muxHub, { heartbeatMs: 100 });
    cleanups.push(async () => {
      await served.stop();
      await muxHub.close();
    });
    const muxApp = multiplexerHalf(net, busApp, idApp, 'app');
    cleanups.push(() => muxApp.stop());
    const hub = await peer(idHub.peerId);
    const app = await peer(idApp.peerId);
    cleanups.push(
      () => hub.close(),
      () => app.close(),
    );
    for (const region of ['1', '2']) {
      await hub.execute('INSERT INTO notes DOCUMENTS (:d)', { d: { _id: { region, n: 1 } } });
      await app.execute('INSERT INTO notes DOCUMENTS (:d)', { d: { _id: { region, n: 2 } } });
    }
    await hub.subscribe('SELECT * FROM notes');
    await app.subscribe('SELECT * FROM notes');
    let mergeHub = mergeHalf(hub, busHub);
    const mergeApp = mergeHalf(app, busApp);
    cleanups.push(() => mergeApp.stop());
    net.connect(driverHub, muxApp.driver, { maxFrameBytes: 512, latencyMs: 1 });
    const regions = (p: MergeEngine) =>
      (contents(p, 'notes') as { _id: { region: string; n: number } }[])
        .map((d) => `${d._id.region}/${d._id.n}`)
        .sort();
    await waitFor(
      () => (regions(app).length === 3 && regions(hub).length === 3 ? true : undefined),
      {
        what: 'region 1 both ways (live peer-up event)',
      },
    );
    expect(regions(app)).toEqual(['1/1', '1/2', '2/2']);
    expect(regions(hub)).toEqual(['1/1', '1/2', '2/1']);
    const [seen] = mergeHub.client.peers();
    expect(seen?.peerId).toBe(idApp.peerId);
    expect(seen?.permissions?.write?.queriesByCollection?.['notes']?.queries).toEqual([
      "_id.region = '1'",
    ]);

    // A merge half that joins late learns the permissions from the peers snapshot.
    mergeHub.stop();
    mergeHub = mergeHalf(hub, busHub);
    cleanups.push(() => mergeHub.stop());
    await hub.execute('INSERT INTO notes DOCUMENTS (:d)', { d: { _id: { region: '2', n: 3 } } });
    await hub.execute('INSERT INTO notes DOCUMENTS (:d)', { d: { _id: { region: '1', n: 3 } } });
    await waitFor(() => (regions(app).includes('1/3') ? true : undefined), {
      what: 'region 1 after the restart (snapshot)',
    });
    await waitFor(
      () =>
        hub.syncStatus().find((x) => x.remotePeer === idApp.peerId)?.state === 'idle'
          ? true
          : undefined,
      { what: 'hub idle' },
    );
    expect(regions(app)).toEqual(['1/1', '1/2', '1/3', '2/2']);
  }, 60_000);

  it('refuses to sync through a multiplexer with another identity, and says so', async () => {
    const net = new LoopbackNetwork({ clock: new SystemClock(), seed: 4 });
    const bus = new LocalBus();
    cleanups.push(() => bus.close());
    const half = multiplexerHalf(net, bus, createIdentity(new Uint8Array(32).fill(31)), 'x');
    cleanups.push(() => half.stop());
    const engine = await peer(createIdentity(new Uint8Array(32).fill(32)).peerId);
    cleanups.push(() => engine.close());
    const merge = mergeHalf(engine, bus);
    cleanups.push(() => merge.stop());
    await waitFor(() => (merge.problems.length > 0 ? true : undefined), {
      timeoutMs: 5_000,
      what: 'a problem report',
    });
    expect(merge.problems[0]).toMatch(/another peer id/);
    expect(merge.client.peers()).toEqual([]);
  });

  it('keeps the order of messages to one peer while sends wait', async () => {
    const bus = new LocalBus();
    cleanups.push(() => bus.close());
    const received: number[] = [];
    const fake = {
      peerId: 'p-self' as never,
      async send(_peer: string, data: Uint8Array) {
        // Early messages wait longer: without the client's per-peer chain they would overtake.
        await new Promise((r) => setTimeout(r, 20 - (data[0] as number)));
        received.push(data[0] as number);
      },
      on: () => () => undefined,
      onMessage: () => () => undefined,
      peers: () => [],
    };
    const served = serveMultiplexerMessages(bus, subjects, fake);
    cleanups.push(() => served.stop());
    const client = new MultiplexerClient({ bus, subjects, peerId: 'p-self' });
    cleanups.push(() => client.close());
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => client.send('p-other', new Uint8Array([i]))),
    );
    expect(received).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
