// `pnpm bench gateway`: Execute latency (p50/p99) and throughput for point reads and writes over
// gRPC and HTTP at 1, 16 and 128 concurrent clients, against a bare @grpc/grpc-js echo server (the
// transport floor; the anchor) and a bare node:http echo server, all in the same run; the same
// over gRPC with a key restricted to `_id LIKE 'car%'` (the cost of rewriting the statement);
// observer fan-out to 100 streams; 1,000 WebSocket peers connected to the gateway's sync
// endpoint (each a multiplexer handshake and a sync session) with the gateway's memory per
// peer, against 1,000 plain connections to a bare `ws` server. The remote ends run in a child
// process (bench/ws-peers.ts) so their memory is not counted; "connect all" runs from the child
// starting to connect until the gateway sees every peer handshaken and syncing (the remote side
// also spends its CPU on this machine: 1,000 identities, multiplexers and merge engines).
//
// Each client loops one request at a time for a fixed time; latencies of all clients are pooled.
// A case runs after a warm-up, three times; the table shows the median of the three runs.
// LATTICE_BENCH_TIME (ms per run, default 700), LATTICE_BENCH_CLIENTS ("1,16,128") and
// LATTICE_BENCH_WS_PEERS (1000) override.
import { spawn } from 'node:child_process';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as grpc from '@grpc/grpc-js';
import { WebSocketServer } from 'ws';
import { BenchSuite } from '@lattice/bench';
import { parse } from '@lattice/dql';
import { MergeEngine, syncOverMultiplexer } from '@lattice/merge';
import { createIdentity, Multiplexer, SystemClock } from '@lattice/multiplexer';
import { v1 } from '@lattice/proto';
import { DocumentStore, encodeValue, MemoryEngine } from '@lattice/store';
import {
  ApiKeys,
  authorizeStatement,
  dqlServiceDefinition,
  InProcessPeer,
  parseKeys,
  startGateway,
} from '@lattice/gateway';
import type { WebSocketLinkDriver } from '@lattice/gateway';

const RUN_MS = Number(process.env['LATTICE_BENCH_TIME'] ?? 700);
const CLIENTS = (process.env['LATTICE_BENCH_CLIENTS'] ?? '1,16,128').split(',').map(Number);
const WS_PEERS = Number(process.env['LATTICE_BENCH_WS_PEERS'] ?? 1_000);
const DOCS = 1_000;
const RESTRICTED_KEY = 'bench-restricted-key-0123456789';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Bytes the process holds (JS heap and buffers, and resident set) after a full collection. */
async function settledMemory(): Promise<{ heap: number; rss: number }> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external, rss: m.rss };
}

/**
 * Runs bench/ws-peers.ts in a child process; resolves when it starts connecting (after its own
 * start-up), with the time of that moment.
 */
async function remotePeers(
  mode: 'bare' | 'lattice',
  url: string,
  key: string,
  n: number,
): Promise<{ started: number; stop: () => Promise<void> }> {
  const script = fileURLToPath(new URL('./ws-peers.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, mode, url, key, String(n)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const started = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (/^start$/m.test(out)) resolve(performance.now());
    });
    child.once('exit', (code) => reject(new Error(`ws-peers exited with ${code}: ${out}`)));
  });
  return {
    started,
    stop: async () => {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function until(what: string, done: () => boolean, timeoutMs = 180_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
  const restrictedKeys = parseKeys({
    keys: [
      {
        name: 'restricted',
        token: RESTRICTED_KEY,
        permission: {
          read: { queriesByCollection: { cars: ["_id LIKE 'car%'"] } },
          write: { queriesByCollection: { cars: ["_id LIKE 'car%'"] } },
        },
      },
    ],
  });

  // The statement rewrite alone, in process (network-free, so less noisy than the cases below):
  // what a restricted key adds to each statement, next to parsing it once (the peer parses the
  // statement again either way).
  const principal = new ApiKeys([], restrictedKeys).check(`Bearer ${RESTRICTED_KEY}`);
  const pointRead = 'SELECT * FROM cars WHERE _id = :id';
  await suite.measure(
    'restrict a point read (in process)',
    {
      'dql-parse': () => parse(pointRead),
      'lattice-authorize': () => authorizeStatement(principal, pointRead, { id: 'car1' }),
    },
    { anchor: 'dql-parse', timeMs: 500 },
  );

  const store = await DocumentStore.open(new MemoryEngine());
  const identity = createIdentity(new Uint8Array(32).fill(7));
  const engine = MergeEngine.open({ peerId: identity.peerId, store });
  const gateway = await startGateway(new InProcessPeer(engine), {
    grpcPort: 0,
    httpPort: 0,
    apiKeys: ['bench-key'],
    keys: restrictedKeys,
    sync: {
      maxConnections: WS_PEERS + 100,
      maxFrameBytes: 65_536,
    },
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
  const restrictedMd = new grpc.Metadata();
  restrictedMd.set('authorization', `Bearer ${RESTRICTED_KEY}`);
  const exec = dqlServiceDefinition.execute;

  const grpcExecute = (
    statement: string,
    args: Record<string, unknown>,
    metadata: grpc.Metadata = md,
  ) =>
    new Promise<unknown>((resolve, reject) =>
      grpcClient.makeUnaryRequest(
        exec.path,
        exec.requestSerialize,
        exec.responseDeserialize,
        v1.ExecuteRequest.create({ statement, args: encodeValue(args) }),
        metadata,
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
        'lattice-grpc-restricted': (i) => grpcExecute(w.statement, w.args(i), restrictedMd),
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

    // WebSocket peers. The anchor: plain connections to a bare `ws` server in this process.
    const bareWs = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((r) => bareWs.once('listening', () => r()));
    const wsCase = `WebSocket: ${WS_PEERS.toLocaleString('en-US')} peers connected`;
    const before = await settledMemory();
    const bare = await remotePeers(
      'bare',
      `ws://127.0.0.1:${(bareWs.address() as AddressInfo).port}`,
      'none',
      WS_PEERS,
    );
    await until('bare connections', () => bareWs.clients.size === WS_PEERS);
    const bareMs = performance.now() - bare.started;
    const bareMem = await settledMemory();
    suite.record(wsCase, 'ws-bare', 'connect all', bareMs, 'ms', 'ws-bare');
    suite.record(
      wsCase,
      'ws-bare',
      'heap per peer',
      (bareMem.heap - before.heap) / WS_PEERS,
      'bytes',
    );
    suite.record(wsCase, 'ws-bare', 'rss per peer', (bareMem.rss - before.rss) / WS_PEERS, 'bytes');
    await bare.stop();
    await new Promise<void>((r) => bareWs.close(() => r()));

    // Lattice: the gateway's peer runs a multiplexer over the sync endpoint's links and a sync
    // session per remote peer, as `lattice up` composes it.
    const mux = new Multiplexer({ identity, clock: new SystemClock(), maxPeers: WS_PEERS + 100 });
    mux.attach(gateway.links as WebSocketLinkDriver);
    const stopSync = syncOverMultiplexer(engine, mux);
    try {
      const base = await settledMemory();
      const peers = await remotePeers(
        'lattice',
        `ws://127.0.0.1:${gateway.httpPort}/api/v4/sync`,
        'bench-key',
        WS_PEERS,
      );
      await until(
        'every remote peer handshaken and syncing',
        () =>
          mux.peers().filter((p) => p.connected).length === WS_PEERS &&
          engine.syncStatus().filter((x) => x.state !== 'closed').length === WS_PEERS,
      );
      const ms = performance.now() - peers.started;
      const mem = await settledMemory();
      suite.record(wsCase, 'lattice-ws', 'connect all', ms, 'ms');
      suite.record(
        wsCase,
        'lattice-ws',
        'heap per peer',
        (mem.heap - base.heap) / WS_PEERS,
        'bytes',
      );
      suite.record(wsCase, 'lattice-ws', 'rss per peer', (mem.rss - base.rss) / WS_PEERS, 'bytes');
      await peers.stop();
    } finally {
      stopSync();
      await mux.close();
    }
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
