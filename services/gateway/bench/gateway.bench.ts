// `pnpm bench gateway`: Execute latency (p50/p99) and throughput for point reads and writes over
// gRPC and HTTP at 1 and 16 concurrent clients, against a bare @grpc/grpc-js echo server (the
// transport floor; the anchor) and a bare node:http echo server, all in the same run.
//
// Each client loops one request at a time for a fixed time; latencies of all clients are pooled.
// A case runs after a warm-up, three times; the table shows the median of the three runs.
// LATTICE_BENCH_TIME (ms per run, default 700) and LATTICE_BENCH_CLIENTS ("1,16") override.
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { BenchSuite } from '@lattice/bench';
import { MergeEngine } from '@lattice/merge';
import { v1 } from '@lattice/proto';
import { DocumentStore, encodeValue, MemoryEngine } from '@lattice/store';
import { dqlServiceDefinition, InProcessPeer, startGateway } from '@lattice/gateway';

const RUN_MS = Number(process.env['LATTICE_BENCH_TIME'] ?? 700);
const CLIENTS = (process.env['LATTICE_BENCH_CLIENTS'] ?? '1,16').split(',').map(Number);
const DOCS = 1_000;

type Op = (i: number) => Promise<unknown>;

async function runClients(
  clients: number,
  ms: number,
  op: Op,
): Promise<{ p50: number; p99: number; opsPerS: number }> {
  const latencies: number[] = [];
  const end = performance.now() + ms;
  let counter = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const i = counter++;
        const t = performance.now();
        await op(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0) * 1000;
  return { p50: at(0.5), p99: at(0.99), opsPerS: (latencies.length / elapsed) * 1000 };
}

const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

export default async function run(): Promise<BenchSuite> {
  const suite = new BenchSuite('gateway');
  const store = await DocumentStore.open(new MemoryEngine());
  const engine = MergeEngine.open({ peerId: 'bench', store });
  const gateway = await startGateway(new InProcessPeer(engine), {
    grpcPort: 0,
    httpPort: 0,
    apiKeys: ['bench-key'],
  });
  for (let i = 0; i < DOCS; i += 100) {
    const docs = Object.fromEntries(
      Array.from({ length: 100 }, (_, j) => [
        `d${j}`,
        { _id: `car${i + j}`, make: 'Fiat', n: i + j },
      ]),
    );
    await engine.execute(
      `INSERT INTO cars DOCUMENTS ${Object.keys(docs)
        .map((k) => `(:${k})`)
        .join(', ')}`,
      docs,
    );
  }

  // The anchors: bare grpc-js and node:http servers that echo the request bytes.
  const echo = new grpc.Server();
  echo.addService(
    {
      echo: {
        path: '/bench.Echo/Echo',
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    {
      echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
        cb(null, call.request),
    },
  );
  const echoPort = await new Promise<number>((resolve, reject) =>
    echo.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  const httpEcho = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  });
  await new Promise<void>((r) => httpEcho.listen(0, '127.0.0.1', r));
  const httpEchoPort = (httpEcho.address() as AddressInfo).port;

  const grpcClient = new grpc.Client(
    `127.0.0.1:${gateway.grpcPort}`,
    grpc.credentials.createInsecure(),
  );
  const echoClient = new grpc.Client(`127.0.0.1:${echoPort}`, grpc.credentials.createInsecure());
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(...CLIENTS) });
  const md = new grpc.Metadata();
  md.set('authorization', 'Bearer bench-key');
  const exec = dqlServiceDefinition.execute;

  const grpcExecute = (statement: string, args: Record<string, unknown>) =>
    new Promise<unknown>((resolve, reject) =>
      grpcClient.makeUnaryRequest(
        exec.path,
        exec.requestSerialize,
        exec.responseDeserialize,
        v1.ExecuteRequest.create({ statement, args: encodeValue(args) }),
        md,
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );
  const grpcEcho = (bytes: Buffer) =>
    new Promise<unknown>((resolve, reject) =>
      echoClient.makeUnaryRequest(
        '/bench.Echo/Echo',
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );
  const httpPost = (port: number, path: string, body: string) =>
    new Promise<unknown>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            authorization: 'Bearer bench-key',
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            res.statusCode === 200
              ? resolve(Buffer.concat(chunks))
              : reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString()}`)),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const workloads = [
    {
      name: 'point read',
      statement: 'SELECT * FROM cars WHERE _id = :id',
      args: (i: number) => ({ id: `car${i % DOCS}` }),
    },
    {
      name: 'point write',
      statement: 'UPDATE cars SET n = :n WHERE _id = :id',
      args: (i: number) => ({ id: `car${i % DOCS}`, n: i }),
    },
  ];
  try {
    for (const w of workloads) {
      const sample = v1.ExecuteRequest.encode({
        statement: w.statement,
        args: encodeValue(w.args(0)),
      }).finish();
      const sampleBytes = Buffer.from(sample);
      const sampleJson = JSON.stringify({ statement: w.statement, args: w.args(0) });
      const subjects: Record<string, Op> = {
        'grpc-echo': () => grpcEcho(sampleBytes),
        'http-echo': () => httpPost(httpEchoPort, '/', sampleJson),
        'lattice-grpc': (i) => grpcExecute(w.statement, w.args(i)),
        'lattice-http': (i) =>
          httpPost(
            gateway.httpPort,
            '/api/v4/store/execute',
            JSON.stringify({ statement: w.statement, args: w.args(i) }),
          ),
      };
      for (const clients of CLIENTS) {
        const caseName = `${w.name}, ${clients} client${clients === 1 ? '' : 's'}`;
        for (const [subject, op] of Object.entries(subjects)) {
          await runClients(clients, Math.min(200, RUN_MS), op); // warm-up
          const runs = [];
          for (let r = 0; r < 3; r++) runs.push(await runClients(clients, RUN_MS, op));
          suite.record(caseName, subject, 'p50', median(runs.map((x) => x.p50)), 'µs', 'grpc-echo');
          suite.record(caseName, subject, 'p99', median(runs.map((x) => x.p99)), 'µs', 'grpc-echo');
          suite.record(
            caseName,
            subject,
            'throughput',
            median(runs.map((x) => x.opsPerS)),
            'ops/s',
            'grpc-echo',
          );
        }
      }
    }

    // Observer fan-out: 100 Observe streams on one query; time from a write's answer until
    // every stream has received its batch.
    const STREAMS = 100;
    const streams = Array.from({ length: STREAMS }, () =>
      grpcClient.makeServerStreamRequest(
        dqlServiceDefinition.observe.path,
        dqlServiceDefinition.observe.requestSerialize,
        dqlServiceDefinition.observe.responseDeserialize,
        v1.ObserveRequest.create({ statement: "SELECT * FROM cars WHERE _id = 'car1'" }),
        md,
        {},
      ),
    );
    let waiting: { commit: number; done: () => void } | undefined;
    const seen = new Map<number, number>();
    for (const st of streams) {
      st.on('data', (m: v1.ObserveResponse) => {
        if (m.kind !== v1.ObserveBatchKind.OBSERVE_BATCH_KIND_CHANGES) return;
        seen.set(m.commitId, (seen.get(m.commitId) ?? 0) + 1);
        if (waiting && seen.get(waiting.commit) === STREAMS) waiting.done();
      });
      st.on('error', () => undefined); // cancelled at the end
    }
    const fanout: number[] = [];
    for (let i = 0; i < 60; i++) {
      const t = performance.now();
      const r = (await grpcExecute("UPDATE cars SET n = :n WHERE _id = 'car1'", {
        n: -i,
      })) as v1.ExecuteResponse;
      await new Promise<void>((resolve) => {
        waiting = { commit: r.commitId, done: resolve };
        if (seen.get(r.commitId) === STREAMS) resolve();
      });
      if (i >= 10) fanout.push((performance.now() - t) * 1000); // the first 10 warm up
    }
    fanout.sort((x, y) => x - y);
    const q = (p: number) =>
      fanout[Math.min(fanout.length - 1, Math.floor(p * fanout.length))] ?? 0;
    suite.record(
      'observer fan-out, 100 streams (write → all delivered)',
      'lattice-grpc',
      'p50',
      q(0.5),
      'µs',
    );
    suite.record(
      'observer fan-out, 100 streams (write → all delivered)',
      'lattice-grpc',
      'p99',
      q(0.99),
      'µs',
    );
    for (const st of streams) st.cancel();
  } finally {
    grpcClient.close();
    echoClient.close();
    agent.destroy();
    await gateway.close();
    echo.forceShutdown();
    await new Promise<void>((r) => httpEcho.close(() => r()));
    await engine.close();
    await store.close();
  }
  return suite;
}
