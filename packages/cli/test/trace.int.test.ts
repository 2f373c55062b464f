/**
 * One trace across two peers, each its own set of service processes exporting spans over
 * OTLP/HTTP to a receiver this test runs: a gRPC Execute on peer A with a known trace id, then
 * the spans of that trace from A's gateway, A's merge service, A's multiplexer (the hop to the
 * link), B's merge service (the sync apply and its commit) and B's gateway (the observer that
 * reported the write).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, inject, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { ProcessPeer } from '@lattice/cli/testing';
import { DqlClient } from '@lattice/gateway';
import { v1 } from '@lattice/proto';
import { encodeValue } from '@lattice/store';
import { freePort, waitFor } from '@lattice/testing';

interface ExportedSpan {
  readonly traceId: string;
  readonly name: string;
  readonly service: string;
  readonly namespace: string;
}

const spans: ExportedSpan[] = [];
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      collect(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpJson);
    } catch {
      // Not JSON: the exporter is configured for JSON, so this would fail the test below.
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});

interface OtlpJson {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
    scopeSpans?: { spans?: { traceId: string; name: string }[] }[];
  }[];
}

function collect(body: OtlpJson): void {
  for (const rs of body.resourceSpans ?? []) {
    const attr = (k: string) =>
      rs.resource?.attributes?.find((a) => a.key === k)?.value.stringValue ?? '';
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          traceId: s.traceId,
          name: s.name,
          service: attr('service.name'),
          namespace: attr('lattice.peer.namespace'),
        });
      }
    }
  }
}

let bus: NatsBus;
let a: ProcessPeer;
let b: ProcessPeer;
const dirs: string[] = [];

beforeAll(async () => {
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  const env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
    OTEL_BSP_SCHEDULE_DELAY: '200',
  };
  bus = await NatsBus.connect({ servers: inject('natsUrl'), name: 'trace-test' });
  const ports = async () => ({
    lan: await freePort(),
    grpc: await freePort(),
    http: await freePort(),
  });
  dirs.push(mkdtempSync(join(tmpdir(), 'trace-a-')), mkdtempSync(join(tmpdir(), 'trace-b-')));
  const pa = await ports();
  a = new ProcessPeer({
    name: 'tracea',
    natsUrl: inject('natsUrl'),
    dir: dirs[0] as string,
    ports: pa,
    env,
  });
  b = new ProcessPeer({
    name: 'traceb',
    natsUrl: inject('natsUrl'),
    dir: dirs[1] as string,
    ports: await ports(),
    staticPeer: `tcp://127.0.0.1:${pa.lan}`,
    env,
  });
  for (const p of [a, b]) {
    await p.startAll(bus);
    await p.merge(bus).subscribe('SELECT * FROM traced');
  }
}, 120_000);

afterAll(async () => {
  await a?.stopAll();
  await b?.stopAll();
  await bus?.close();
  receiver.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('tracing across two peers of service processes', () => {
  it('one trace follows a write from the gRPC call on A to the observer on B', async () => {
    // B observes the collection through its gateway.
    const clientB = new DqlClient(
      `127.0.0.1:${b.options.ports.grpc}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client;
    let seenOnB = false;
    let liveOnB = false;
    const stream = clientB.makeServerStreamRequest(
      '/lattice.v1.DqlService/Observe',
      (r: v1.IObserveRequest) => Buffer.from(v1.ObserveRequest.encode(r).finish()),
      (buf: Buffer) => v1.ObserveResponse.decode(buf),
      { statement: 'SELECT * FROM traced' },
    );
    stream.on('data', (m: v1.ObserveResponse) => {
      if (m.kind === v1.ObserveBatchKind.OBSERVE_BATCH_KIND_INITIAL) liveOnB = true;
      if (m.changes.length > 0) seenOnB = true;
    });
    stream.on('error', () => undefined);
    // The observer is live (its initial result sent) before the write: a write that reached B
    // earlier would be in that initial result, not a change with the trace's update span.
    await waitFor(() => (liveOnB ? true : undefined), { timeoutMs: 30_000, what: 'B observing' });

    // The write on A, in a trace the test chose.
    const traceId = randomBytes(16).toString('hex');
    const metadata = new grpc.Metadata();
    metadata.set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
    const clientA = new DqlClient(
      `127.0.0.1:${a.options.ports.grpc}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client;
    await new Promise<void>((resolve, reject) =>
      clientA.makeUnaryRequest(
        '/lattice.v1.DqlService/Execute',
        (r: v1.IExecuteRequest) => Buffer.from(v1.ExecuteRequest.encode(r).finish()),
        (buf: Buffer) => v1.ExecuteResponse.decode(buf),
        {
          statement: 'INSERT INTO traced DOCUMENTS (:d)',
          args: encodeValue({ d: { _id: 't1', n: 1 } }),
        },
        metadata,
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    await waitFor(() => (seenOnB ? true : undefined), {
      timeoutMs: 30_000,
      what: 'the write on B',
    });

    const expected = [
      [a, 'lattice-gateway', 'DqlService/Execute'],
      [a, 'lattice-merge', 'handle merge.req.execute'],
      [a, 'lattice-merge', 'sync send'],
      [a, 'lattice-multiplexer', 'handle multiplexer.req.send'],
      [b, 'lattice-merge', 'sync apply'],
      [b, 'lattice-gateway', 'observers update'],
    ] as const;
    const found = () =>
      expected.map(([peer, service, name]) =>
        spans.some(
          (s) =>
            s.traceId === traceId &&
            s.service === service &&
            s.name === name &&
            s.namespace === peer.subjects.namespace,
        ),
      );
    await waitFor(() => (found().every(Boolean) ? true : undefined), {
      timeoutMs: 30_000,
      what: `every span of the trace (${JSON.stringify(
        expected.map(([p, s, n], i) => `${p.options.name} ${s} ${n}: ${found()[i]}`),
      )})`,
    }).catch((err: unknown) => {
      throw new Error(
        `${String(err)}; spans of the trace: ${JSON.stringify(spans.filter((s) => s.traceId === traceId))}`,
      );
    });
    stream.cancel();
    clientA.close();
    clientB.close();
  }, 90_000);
});
