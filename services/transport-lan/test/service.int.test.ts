import { afterEach, describe, expect, inject, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import {
  createIdentity,
  multiplexerConfigSchema,
  startMultiplexerService,
  type InboundMessage,
} from '@lattice/multiplexer';
import { Subjects, v1 } from '@lattice/proto';
import { checkHealth, createLogger, startService, type ServiceContext } from '@lattice/service';
import { waitFor } from '@lattice/testing';
import {
  startTransportLanService,
  transportLanConfigSchema,
  transportLanService,
  type TransportLanConfig,
} from '../src/index.js';

const logger = createLogger('silent', 'test');

async function until(condition: () => boolean, what: string): Promise<void> {
  // The multiplexer has no event for "a peer's session is connected" that a test can await
  // across processes' worth of bus hops, so this re-checks briefly.
  await waitFor(() => condition() || undefined, { what, intervalMs: 5 });
}

describe('transport-lan service over real NATS', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it('parses its settings from flags and variables', () => {
    const c = transportLanConfigSchema.parse({
      port: '0',
      peer: 'tcp://10.0.0.2:4040, tcp://[::1]:5000',
      discovery: 'false',
      maxConnections: '3',
    });
    expect(c.port).toBe(0);
    expect(c.peer).toEqual(['tcp://10.0.0.2:4040', 'tcp://[::1]:5000']);
    expect(c.discovery).toBe(false);
    expect(c.maxConnections).toBe(3);
    const d = transportLanConfigSchema.parse({});
    expect(d).toMatchObject({ port: 4040, discovery: true, maxConnections: 6, peer: [] });
    for (const bad of [{ peer: '10.0.0.2:4040' }, { port: '70000' }, { maxConnections: '0' }])
      expect(transportLanConfigSchema.safeParse(bad).success).toBe(false);
  });

  it('two LAN transports carry a multiplexer conversation between two peers, both ways', async () => {
    const url = inject('natsUrl');
    const tag = `lan${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
    const nsA = new Subjects(`${tag}a`);
    const nsB = new Subjects(`${tag}b`);
    const buses = await Promise.all(
      ['mux-a', 'mux-b', 'lan-a', 'lan-b', 'observer'].map((name) =>
        NatsBus.connect({ servers: url, name }),
      ),
    );
    for (const b of buses) cleanups.push(() => b.close());
    const [busMa, busMb, busLa, busLb, observer] = buses as [
      NatsBus,
      NatsBus,
      NatsBus,
      NatsBus,
      NatsBus,
    ];
    // The multiplexers subscribe first, so they see the transports' LinkUp.
    const mux = async (bus: NatsBus, ns: Subjects, seed: number) => {
      const m = await startMultiplexerService(
        {
          bus,
          logger,
          subjects: ns,
          config: multiplexerConfigSchema.parse({
            namespace: ns.namespace,
            natsUrl: url,
            transports: 'transport-lan',
            presenceIntervalMs: '0',
            // The test reads messages in process (messages()), not through the bus API.
            busMessages: 'false',
          }),
        },
        { identity: createIdentity(new Uint8Array(32).fill(seed)) },
      );
      cleanups.push(() => m.stop());
      return m;
    };
    const ma = await mux(busMa, nsA, 21);
    const mb = await mux(busMb, nsB, 22);
    const ups = observer.subscribe(nsA.linkEvent('transport-lan', 'up'));
    await observer.flush();
    const ctx = (
      bus: NatsBus,
      ns: Subjects,
      config: Record<string, string>,
    ): ServiceContext<TransportLanConfig> => ({
      bus,
      logger,
      subjects: ns,
      config: transportLanConfigSchema.parse({
        namespace: ns.namespace,
        natsUrl: url,
        host: '127.0.0.1',
        port: '0',
        discovery: 'false',
        ...config,
      }),
    });
    const la = await startTransportLanService(ctx(busLa, nsA, {}));
    cleanups.push(() => la.stop());
    const lb = await startTransportLanService(
      ctx(busLb, nsB, { peer: `tcp://127.0.0.1:${la.driver.port}` }),
    );
    cleanups.push(() => lb.stop());

    // The LinkUp the multiplexer sees, as the transport published it.
    for await (const m of ups) {
      const up = v1.LinkUp.decode(m.data);
      expect(up.transport).toBe('lan');
      expect(up.linkId).toBe(la.driver.links[0]?.id);
      expect(up.capabilities?.maxFrameBytes).toBe(65_536);
      expect(up.capabilities?.kind).toBe(v1.LinkKind.LINK_KIND_STREAM);
      break;
    }
    ups.unsubscribe();
    await until(
      () =>
        ma.multiplexer.peers().some((p) => p.connected) &&
        mb.multiplexer.peers().some((p) => p.connected),
      'multiplexer handshake over LAN',
    );
    expect(ma.multiplexer.peers()[0]?.peerId).toBe(mb.multiplexer.peerId);

    const toB = Array.from({ length: 12 }, (_, i) =>
      new Uint8Array(i % 3 === 0 ? 200_000 : 50).fill(i),
    );
    const toA = [new Uint8Array(70_000).fill(9), new Uint8Array(5).fill(3)];
    const gotB: InboundMessage[] = [];
    const gotA: InboundMessage[] = [];
    const readers = [
      (async () => {
        for await (const m of mb.multiplexer.messages()) if (gotB.push(m) === toB.length) break;
      })(),
      (async () => {
        for await (const m of ma.multiplexer.messages()) if (gotA.push(m) === toA.length) break;
      })(),
    ];
    for (const m of toB) await ma.multiplexer.send(mb.multiplexer.peerId, m);
    for (const m of toA) await mb.multiplexer.send(ma.multiplexer.peerId, m);
    await Promise.all(readers);
    // Compared as Buffers: vitest's deep equality walks large typed arrays element by element.
    const same = (got: InboundMessage[], want: Uint8Array[]): boolean =>
      got.length === want.length &&
      got.every((m, i) => Buffer.from(m.data).equals(want[i] ?? new Uint8Array(0)));
    expect(same(gotB, toB)).toBe(true);
    expect(same(gotA, toA)).toBe(true);
    expect(la.counters.framesToBus).toBeGreaterThan(0);
    expect(lb.counters.framesFromBus).toBeGreaterThan(0);

    // The remote transport stopping takes the link down on both multiplexers.
    await lb.stop();
    await until(
      () =>
        !ma.multiplexer.peers().some((p) => p.connected) &&
        !mb.multiplexer.peers().some((p) => p.connected),
      'peer down on both sides',
    );
  });

  it('starts as a service and answers health', async () => {
    const url = inject('natsUrl');
    const ns = new Subjects(`lanh${Date.now().toString(36)}`);
    const bus = await NatsBus.connect({ servers: url, name: 'lan-health' });
    cleanups.push(() => bus.close());
    const running = await startService(transportLanService, {
      bus,
      logger,
      subjects: ns,
      config: transportLanConfigSchema.parse({
        namespace: ns.namespace,
        natsUrl: url,
        host: '127.0.0.1',
        port: '0',
        discovery: 'false',
        maxConnections: '4',
      }),
    });
    cleanups.push(() => running.stop());
    const health = await checkHealth(bus, ns, 'transport-lan');
    expect(health.service).toBe('transport-lan');
    expect(health.details['lanInstanceId']).toMatch(/^[0-9a-f]{32}$/);
    expect(Number(health.details['port'])).toBeGreaterThan(0);
    expect(health.details['links']).toBe('0');
  });
});
