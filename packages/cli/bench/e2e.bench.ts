// `pnpm bench e2e`: a write on peer A (HTTP API) until it shows in an observer on peer B (gRPC
// Observe), p50/p99 over sequential writes. Two compositions of the same two peers, linked by the
// LAN transport over loopback, in one run: embedded (`lattice up`'s composition, every service of
// a peer in one process on a LocalBus; the anchor) and multi-process (each service its own
// process on one real nats-server), so the cost of the service split is a measured ratio.
// LATTICE_BENCH_WRITES (default 200) sets the number of writes per composition.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { BenchSuite } from '@lattice/bench';
import { LocalBus, NatsBus } from '@lattice/bus';
import { startPeer, type Peer } from '@lattice/cli';
import { ProcessPeer } from '@lattice/cli/testing';
import { DqlClient } from '@lattice/gateway';
import { v1 } from '@lattice/proto';
import { baseConfigSchema } from '@lattice/service';
import { decodeValue } from '@lattice/store';
import { freePort, startNatsServer } from '@lattice/testing';

const WRITES = Number(process.env['LATTICE_BENCH_WRITES'] ?? 200);
const QUERY = 'SELECT * FROM e2e';

interface Endpoints {
  readonly httpA: number;
  readonly grpcB: number;
}

/** Sequential writes on A, each timed until B's observer reports it; latencies in ms. */
async function measure(endpoints: Endpoints): Promise<number[]> {
  const client = new DqlClient(
    `127.0.0.1:${endpoints.grpcB}`,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client;
  const waiting = new Map<string, () => void>();
  const stream = client.makeServerStreamRequest(
    '/lattice.v1.DqlService/Observe',
    (r: v1.IObserveRequest) => Buffer.from(v1.ObserveRequest.encode(r).finish()),
    (b: Buffer) => v1.ObserveResponse.decode(b),
    { statement: QUERY },
  );
  stream.on('data', (batch: v1.ObserveResponse) => {
    for (const c of batch.changes) {
      const item = decodeValue(c.item ?? new Uint8Array(0)) as { _id?: string };
      if (item._id !== undefined) waiting.get(item._id)?.();
    }
  });
  stream.on('error', () => undefined);
  const write = async (id: string): Promise<void> => {
    const r = await fetch(`http://127.0.0.1:${endpoints.httpA}/api/v4/store/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        statement: 'INSERT INTO e2e DOCUMENTS (:d)',
        args: { d: { _id: id, n: 1 } },
      }),
    });
    if (r.status !== 200) throw new Error(`write failed: ${r.status} ${await r.text()}`);
  };
  const once = async (id: string): Promise<number> => {
    const seen = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${id} never reached B`)), 30_000);
      waiting.set(id, () => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve();
      });
    });
    const t0 = performance.now();
    await write(id);
    await seen;
    return performance.now() - t0;
  };
  // Warm-up: the link is up and both sessions sync before timing starts.
  for (let i = 0; i < 10; i++) await once(`warm-${i}-${Math.random()}`);
  const out: number[] = [];
  for (let i = 0; i < WRITES; i++) out.push(await once(`w-${i}-${Math.random()}`));
  stream.cancel();
  client.close();
  return out;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function embedded(): Promise<number[]> {
  const dirs = [mkdtempSync(join(tmpdir(), 'e2e-a-')), mkdtempSync(join(tmpdir(), 'e2e-b-'))];
  const lanA = await freePort();
  const peers: Peer[] = [];
  const buses = [new LocalBus(), new LocalBus()];
  try {
    for (const [i, bus] of buses.entries()) {
      peers.push(
        await startPeer({
          bus,
          config: baseConfigSchema.parse({ namespace: `e2e${i}` }),
          logger: pino({ level: 'silent' }),
          settings: {
            data: dirs[i],
            port: String(i === 0 ? lanA : 0),
            host: '127.0.0.1',
            peer: i === 1 ? `tcp://127.0.0.1:${lanA}` : '',
            discovery: 'false',
            grpcPort: '0',
            httpPort: '0',
          },
          subscribe: [QUERY],
        }),
      );
    }
    const [a, b] = peers as [Peer, Peer];
    return await measure({ httpA: a.gateway?.httpPort ?? 0, grpcB: b.gateway?.grpcPort ?? 0 });
  } finally {
    for (const p of peers) await p.stop();
    for (const bus of buses) await bus.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

async function processes(): Promise<number[]> {
  await using nats = await startNatsServer({ jetstream: false });
  const bus = await NatsBus.connect({ servers: nats.url, name: 'e2e-bench' });
  const dirs = [mkdtempSync(join(tmpdir(), 'e2e-pa-')), mkdtempSync(join(tmpdir(), 'e2e-pb-'))];
  const ports = async () => ({
    lan: await freePort(),
    grpc: await freePort(),
    http: await freePort(),
  });
  const pa = await ports();
  const a = new ProcessPeer({ name: 'e2ea', natsUrl: nats.url, dir: dirs[0] as string, ports: pa });
  const b = new ProcessPeer({
    name: 'e2eb',
    natsUrl: nats.url,
    dir: dirs[1] as string,
    ports: await ports(),
    staticPeer: `tcp://127.0.0.1:${pa.lan}`,
  });
  try {
    for (const p of [a, b]) {
      await p.startAll(bus);
      await p.merge(bus).subscribe(QUERY);
    }
    return await measure({ httpA: pa.http, grpcB: b.options.ports.grpc });
  } finally {
    await a.stopAll();
    await b.stopAll();
    await bus.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

export default async function run(): Promise<BenchSuite> {
  const suite = new BenchSuite('e2e');
  const name = 'write on A → observer on B';
  const results = {
    'lattice-embedded': await embedded(),
    'lattice-processes': await processes(),
  };
  for (const [subject, xs] of Object.entries(results)) {
    suite.record(name, subject, 'latency p50', pct(xs, 50), 'ms', 'lattice-embedded');
    suite.record(name, subject, 'latency p99', pct(xs, 99), 'ms', 'lattice-embedded');
  }
  return suite;
}
