// `pnpm bench lan`: frames/s and MB/s over loopback TCP through the LAN link driver, against a raw
// Node TCP socket sending the same frame bytes in the same run (the anchor), and — separately —
// through two transport-lan services with the NATS bus hop on both sides.
//
// Same work for both: the sender pushes `count` frames of `size` bytes as fast as the socket
// takes them (the raw socket uses the same write strategy as the driver: writes of one tick
// corked into one syscall, stop at 256 KiB queued, resume on 'drain'); the receiver counts bytes
// until all arrived. The driver additionally frames each record (5 bytes), copies frames under
// 8 KiB into its send slab (larger ones go to the socket as they are) and copies a record that
// spans two socket reads on receive. After a warm-up round each, raw and driver run `ROUNDS`
// (5) times alternately and the median is reported, per wall second and per second of this
// process's CPU time (user + system; on a shared machine wall time also counts the time other
// processes held the CPU, while both subjects run in this one process, kernel TCP work included).
import net from 'node:net';
import { once } from 'node:events';
import { BenchSuite } from '@lattice/bench';
import { NatsBus } from '@lattice/bus';
import type { LinkId } from '@lattice/multiplexer';
import { Subjects, v1 } from '@lattice/proto';
import { createLogger } from '@lattice/service';
import { startNatsServer } from '@lattice/testing';
import { LanLinkDriver, startTransportLanService, transportLanConfigSchema } from '../src/index.js';

const MB = 1_000_000;
const ROUNDS = Number(process.env['LATTICE_BENCH_ROUNDS'] ?? 5);
const HWM = 256 * 1024;

interface Result {
  readonly seconds: number;
  /** CPU seconds of this process (user + system), or NaN when not measured. */
  readonly cpuSeconds: number;
  readonly frames: number;
  readonly bytes: number;
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

function payload(size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 13) & 0xff);
}

async function rawRound(size: number, count: number): Promise<Result> {
  const frame = Buffer.from(payload(size));
  const total = size * count;
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect({ port, host: '127.0.0.1' });
  client.setNoDelay(true);
  await once(client, 'connect');
  const [socket] = await accepted;
  let received = 0;
  const done = new Promise<void>((resolve) =>
    socket.on('data', (c: Buffer) => {
      received += c.length;
      if (received >= total) resolve();
    }),
  );
  const started = performance.now();
  const cpu = process.cpuUsage();
  let corked = false;
  for (let i = 0; i < count;) {
    while (i < count && client.writableLength < HWM) {
      if (!corked) {
        corked = true;
        client.cork();
        process.nextTick(() => {
          corked = false;
          client.uncork();
        });
      }
      client.write(frame);
      i++;
    }
    if (i < count) await once(client, 'drain');
  }
  await done;
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = cpuSince(cpu);
  client.destroy();
  socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { seconds, cpuSeconds, frames: count, bytes: total };
}

async function driverRound(size: number, count: number): Promise<Result> {
  const frame = payload(size);
  const b = await LanLinkDriver.start({ port: 0, host: '127.0.0.1' });
  const a = await LanLinkDriver.start({ port: false, peers: [`tcp://127.0.0.1:${b.port}`] });
  let received = 0;
  let writable: (() => void) | undefined;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const up = new Promise<LinkId>((resolve) =>
    a.listen((e) => {
      if (e.type === 'up') resolve(e.link.id);
      else if (e.type === 'writable') writable?.();
    }),
  );
  b.listen((e) => {
    if (e.type === 'frame' && ++received === count) resolveDone();
  });
  const id = await up;
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < count;) {
    while (i < count && a.send(id, frame)) i++;
    if (i < count) await new Promise<void>((resolve) => (writable = resolve));
  }
  await done;
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = cpuSince(cpu);
  await a.close();
  await b.close();
  return { seconds, cpuSeconds, frames: count, bytes: size * count };
}

/** Frames published on the bus to transport A, carried over TCP, read from the bus at B. */
async function busRound(url: string, size: number, count: number): Promise<Result> {
  const logger = createLogger('silent', 'bench');
  const tag = `lanbench${Date.now().toString(36)}`;
  const nsA = new Subjects(`${tag}a`);
  const nsB = new Subjects(`${tag}b`);
  const [busA, busB, busC] = await Promise.all(
    ['lan-a', 'lan-b', 'client'].map((name) => NatsBus.connect({ servers: url, name })),
  );
  if (busA === undefined || busB === undefined || busC === undefined) throw new Error('no bus');
  const config = (ns: Subjects, extra: Record<string, string>) =>
    transportLanConfigSchema.parse({
      namespace: ns.namespace,
      natsUrl: url,
      host: '127.0.0.1',
      port: '0',
      discovery: 'false',
      ...extra,
    });
  const upB = busC.subscribe(nsB.linkEvent('transport-lan', 'up'));
  const upA = busC.subscribe(nsA.linkEvent('transport-lan', 'up'));
  const inB = busC.subscribe(nsB.allFramesIn('transport-lan'), { maxPending: 10_000_000 });
  await busC.flush();
  const la = await startTransportLanService({
    bus: busA,
    logger,
    subjects: nsA,
    config: config(nsA, {}),
  });
  const lb = await startTransportLanService({
    bus: busB,
    logger,
    subjects: nsB,
    config: config(nsB, { peer: `tcp://127.0.0.1:${la.driver.port}` }),
  });
  let linkA = '';
  for await (const m of upA) {
    linkA = v1.LinkUp.decode(m.data).linkId;
    break;
  }
  for await (const _ of upB) break;
  const message = v1.LinkFrame.encode({ linkId: linkA, data: payload(size) }).finish();
  const out = nsA.framesOut('transport-lan', linkA);
  let received = 0;
  const started = performance.now();
  const reader = (async () => {
    for await (const _ of inB) if (++received === count) break;
  })();
  // Paced in batches so the transport's bounded queue (8 MiB) is never the bottleneck.
  for (let i = 0; i < count; i++) {
    busC.publish(out, message);
    if (i % 256 === 255) await busC.flush();
    while (i - received > (4 * 1024 * 1024) / size) await new Promise((r) => setImmediate(r));
  }
  await reader;
  const seconds = (performance.now() - started) / 1000;
  inB.unsubscribe();
  await la.stop();
  await lb.stop();
  await Promise.all([busA.close(), busB.close(), busC.close()]);
  return { seconds, cpuSeconds: NaN, frames: count, bytes: size * count };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] as number;
}

function best(results: readonly Result[]): Result {
  return results.reduce((x, y) => (y.seconds < x.seconds ? y : x));
}

export default async function run(): Promise<BenchSuite> {
  const suite = new BenchSuite('lan');
  const nats = await startNatsServer();
  try {
    for (const size of [64, 1_024, 16_384, 65_536]) {
      const count = Math.min(200_000, Math.floor((256 * MB) / size));
      const caseName = `${count} frames of ${size} B, loopback TCP`;
      const raw: Result[] = [];
      const lan: Result[] = [];
      await rawRound(size, count); // warm-up
      await driverRound(size, count);
      for (let r = 0; r < ROUNDS; r++) {
        raw.push(await rawRound(size, count));
        lan.push(await driverRound(size, count));
      }
      const busCount = Math.min(count, 20_000);
      const bus = best([await busRound(nats.url, size, busCount)]);
      const anchor = 'raw TCP socket';
      for (const [subject, results] of [
        ['raw TCP socket', raw],
        ['lattice LanLinkDriver', lan],
        ['lattice via NATS (transport-lan ×2, bus hop both sides)', [bus]],
      ] as const) {
        const rate = (f: (r: Result) => number): number => median(results.map(f));
        suite.record(
          caseName,
          subject,
          'frames/s',
          rate((r) => r.frames / r.seconds),
          'ops/s',
          anchor,
        );
        suite.record(
          caseName,
          subject,
          'payload',
          rate((r) => r.bytes / MB / r.seconds),
          'MB/s',
          anchor,
        );
        if (subject !== 'raw TCP socket' && subject !== 'lattice LanLinkDriver') continue;
        const perCpu = rate((r) => r.bytes / MB / r.cpuSeconds);
        suite.record(caseName, subject, 'payload per CPU second', perCpu, 'MB/s', anchor);
      }
    }
  } finally {
    await nats.stop();
  }
  return suite;
}
