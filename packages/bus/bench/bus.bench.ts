// `pnpm bench bus`: request/reply round trip and publish throughput, LocalBus and NatsBus,
// side by side with raw @nats-io client calls on the same nats-server (the anchor).
import { connect } from '@nats-io/transport-node';
import { BenchSuite } from '@lattice/bench';
import { LocalBus, NatsBus, serve } from '@lattice/bus';
import { startNatsServer } from '@lattice/testing';

export default async function run(): Promise<BenchSuite> {
  const suite = new BenchSuite('bus');
  const server = await startNatsServer({ jetstream: false });
  const raw = await connect({ servers: server.url });
  const rawResponder = await connect({ servers: server.url });
  const nats = await NatsBus.connect({ servers: server.url });
  const natsResponder = await NatsBus.connect({ servers: server.url });
  const local = new LocalBus();
  try {
    rawResponder.subscribe('bench.raw.echo', {
      callback: (_e, m) => {
        m.respond(m.data);
      },
    });
    const natsServer = serve(natsResponder, 'bench.lattice.echo', (req) => req.data, {
      service: 'bench',
    });
    const localServer = serve(local, 'bench.local.echo', (req) => req.data, { service: 'bench' });
    await rawResponder.flush();
    await natsResponder.flush();

    for (const [label, size] of [
      ['100 B', 100],
      ['10 KB', 10_000],
    ] as const) {
      const payload = new Uint8Array(size).fill(7);
      await suite.measure(
        `request/reply ${label}`,
        {
          'nats-raw': () => raw.request('bench.raw.echo', payload, { timeout: 5_000 }),
          'lattice-nats': () => nats.request('bench.lattice.echo', payload),
          'lattice-local': () => local.request('bench.local.echo', payload),
        },
        { anchor: 'nats-raw' },
      );
    }

    const batch = 1_000;
    for (const [label, size] of [
      ['100 B', 100],
      ['10 KB', 10_000],
    ] as const) {
      const payload = new Uint8Array(size).fill(7);
      const rawSink = rawResponder.subscribe('bench.raw.sink', { callback: () => undefined });
      const natsSink = natsResponder.subscribe('bench.lattice.sink', { maxPending: 10_000_000 });
      void (async () => {
        for await (const _ of natsSink); // drain as fast as the subscriber can
      })();
      await suite.measure(
        `publish ${label} (×${batch}, flushed)`,
        {
          'nats-raw': async () => {
            for (let i = 0; i < batch; i++) raw.publish('bench.raw.sink', payload);
            await raw.flush();
          },
          'lattice-nats': async () => {
            for (let i = 0; i < batch; i++) nats.publish('bench.lattice.sink', payload);
            await nats.flush();
          },
        },
        { anchor: 'nats-raw', opsPerCall: batch },
      );
      rawSink.unsubscribe();
      natsSink.unsubscribe();
    }
    await natsServer.stop();
    await localServer.stop();
  } finally {
    await raw.close();
    await rawResponder.close();
    await nats.close();
    await natsResponder.close();
    await local.close();
    await server.stop();
  }
  return suite;
}
