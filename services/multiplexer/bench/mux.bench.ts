// `pnpm bench mux`: the multiplexer's goodput against the raw capacity of its links (the `mux`
// row of shared/BENCHMARKS.md), a naive fragmenter with a 4-byte header on the same links, the
// wait of a small control message behind a bulk transfer, and the CPU cost against a raw TCP
// socket write of the same bytes.
//
// Goodput and waits run over loopback links in SIMULATED time: a link of B bytes/s takes
// size/B seconds per frame, so the numbers are exact accounting of bytes on the wire (acks,
// headers, retransmissions included) and do not depend on this machine. Only the last case (TCP)
// is measured in real time.
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { BenchSuite } from '@lattice/bench';
import {
  createIdentity,
  LoopbackNetwork,
  Multiplexer,
  Priority,
  SimulatedClock,
  type LoopbackLink,
  type LoopbackLinkDriver,
} from '@lattice/multiplexer';

const MB = 1_000_000;

interface World {
  clock: SimulatedClock;
  net: LoopbackNetwork;
  a: Multiplexer;
  b: Multiplexer;
  da: LoopbackLinkDriver;
  db: LoopbackLinkDriver;
  received: { count: number; bytes: number; streams: Set<number> };
}

function world(): World {
  const clock = new SimulatedClock();
  const net = new LoopbackNetwork({ clock, seed: 1 });
  const session = { maxSendBufferBytes: 2 ** 30 };
  const a = new Multiplexer({
    identity: createIdentity(new Uint8Array(32).fill(1)),
    clock,
    session,
  });
  const b = new Multiplexer({
    identity: createIdentity(new Uint8Array(32).fill(2)),
    clock,
    session,
  });
  const da = net.driver('a');
  const db = net.driver('b');
  a.attach(da);
  b.attach(db);
  const received = { count: 0, bytes: 0, streams: new Set<number>() };
  b.onMessage((m) => {
    received.count++;
    received.bytes += m.data.length;
    received.streams.add(m.stream);
  });
  return { clock, net, a, b, da, db, received };
}

function wireBytes(links: readonly LoopbackLink[]): number {
  return links.reduce((n, l) => n + l.stats.aToB.bytesSent + l.stats.bToA.bytesSent, 0);
}

function framesSent(links: readonly LoopbackLink[]): number {
  return links.reduce((n, l) => n + l.stats.aToB.framesSent + l.stats.bToA.framesSent, 0);
}

/** Lattice over `links` loopback links: payload bytes per simulated second, and wire overhead. */
function latticeGoodput(
  maxFrame: number,
  bandwidth: number,
  linkCount: number,
  size: number,
  total: number,
) {
  const w = world();
  const links = Array.from({ length: linkCount }, () =>
    w.net.connect(w.da, w.db, {
      maxFrameBytes: maxFrame,
      bandwidthBytesPerS: bandwidth,
      latencyMs: 5,
    }),
  );
  w.clock.runUntil(
    () => w.a.session(w.b.peerId)?.linkIds.length === linkCount && w.b.peers().length === 1,
  );
  const wire0 = wireBytes(links);
  const frames0 = framesSent(links);
  const n = Math.max(1, Math.round(total / size));
  const message = new Uint8Array(size).fill(7);
  // Several interleaved streams of equal size.
  for (let i = 0; i < n; i++) void w.a.send(w.b.peerId, message, { stream: 2 + (i % 3) });
  const t = w.clock.runUntil(() => w.received.count === n, 3_600_000);
  const payload = w.received.bytes;
  const wire = wireBytes(links) - wire0;
  const frames = framesSent(links) - frames0;
  return {
    goodput: payload / (t / 1000),
    overheadPerFrame: (wire - payload) / frames,
  };
}

/**
 * The naive fragmenter: a 4-byte header (2-byte message id, 2-byte fragment index) then payload,
 * no acks, no retransmission, no priorities; frames go to whichever link is free.
 */
function naiveGoodput(
  maxFrame: number,
  bandwidth: number,
  linkCount: number,
  size: number,
  total: number,
): number {
  const clock = new SimulatedClock();
  const net = new LoopbackNetwork({ clock, seed: 1 });
  const da = net.driver('a');
  const db = net.driver('b');
  const links = Array.from({ length: linkCount }, () =>
    net.connect(da, db, { maxFrameBytes: maxFrame, bandwidthBytesPerS: bandwidth, latencyMs: 5 }),
  );
  const per = maxFrame - 4;
  const n = Math.max(1, Math.round(total / size));
  const fragmentsPerMessage = Math.max(1, Math.ceil(size / per));
  let next = 0;
  const totalFragments = n * fragmentsPerMessage;
  let receivedBytes = 0;
  let receivedFragments = 0;
  db.listen((e) => {
    if (e.type === 'frame') {
      receivedBytes += e.data.length - 4;
      receivedFragments++;
    }
  });
  const frame = (k: number): Uint8Array => {
    const index = k % fragmentsPerMessage;
    const bytes = Math.min(per, size - index * per);
    const f = new Uint8Array(4 + Math.max(0, bytes));
    f[0] = (k / fragmentsPerMessage) & 0xff;
    f[2] = index & 0xff;
    return f;
  };
  const pump = (): void => {
    for (const l of links) {
      while (next < totalFragments && da.send(l.id, frame(next))) next++;
    }
  };
  da.listen((e) => {
    if (e.type === 'writable') pump();
  });
  pump();
  const t = clock.runUntil(() => receivedFragments === totalFragments, 3_600_000);
  return receivedBytes / (t / 1000);
}

/** How long a small control message waits behind a bulk transfer, beyond its own transmission. */
function controlWait(maxFrame: number, bandwidth: number): number {
  const w = world();
  const latencyMs = 5;
  w.net.connect(w.da, w.db, { maxFrameBytes: maxFrame, bandwidthBytesPerS: bandwidth, latencyMs });
  w.clock.runUntil(() => w.a.session(w.b.peerId) !== undefined && w.b.peers().length === 1);
  void w.a.send(w.b.peerId, new Uint8Array(4 * MB - 16), { stream: Priority.BULK });
  let worst = 0;
  // Ten probes at different points of a frame's transmission.
  for (let probe = 0; probe < 10; probe++) {
    w.clock.advance(((maxFrame * 1000) / bandwidth) * (3 + probe * 1.37));
    const before = w.received.count;
    const sentAt = w.clock.now();
    void w.a.send(w.b.peerId, new Uint8Array(30), { stream: Priority.CONTROL });
    w.clock.runUntil(() => w.received.count > before);
    // Its own transmission: 31 stream bytes (length prefix + body) in frames of 4-byte headers.
    const frames = Math.ceil(31 / (maxFrame - 4));
    const own = ((31 + 4 * frames) * 1000) / bandwidth;
    worst = Math.max(worst, w.clock.now() - sentAt - latencyMs - own);
  }
  return worst;
}

export default async function run(): Promise<BenchSuite> {
  const suite = new BenchSuite('mux');

  for (const maxFrame of [20, 185, 244, 512, 65_536]) {
    const bandwidth = maxFrame <= 512 ? 100_000 : 10 * MB;
    for (const linkCount of [1, 2]) {
      for (const [label, size] of [
        ['100 B', 100],
        ['10 KB', 10_000],
        ['1 MB', MB],
      ] as const) {
        const total = maxFrame <= 512 ? Math.max(size, 300_000) : Math.max(size, 10 * MB);
        const caseName = `goodput, frame ${maxFrame} B, ${linkCount} link${linkCount > 1 ? 's' : ''}, ${label} msgs (simulated time)`;
        const capacity = bandwidth * linkCount;
        const lattice = latticeGoodput(maxFrame, bandwidth, linkCount, size, total);
        suite.record(caseName, 'link capacity', 'goodput', capacity / MB, 'MB/s', 'link capacity');
        suite.record(caseName, 'lattice', 'goodput', lattice.goodput / MB, 'MB/s');
        suite.record(
          caseName,
          'naive 4-byte header',
          'goodput',
          naiveGoodput(maxFrame, bandwidth, linkCount, size, total) / MB,
          'MB/s',
        );
        suite.record(
          caseName,
          'lattice',
          'wire bytes per frame beyond payload (headers, acks, length prefixes)',
          lattice.overheadPerFrame,
          'bytes',
        );
      }
    }
  }

  for (const maxFrame of [20, 185, 512, 65_536]) {
    const bandwidth = maxFrame <= 512 ? 100_000 : 10 * MB;
    const caseName = `control msg behind bulk, frame ${maxFrame} B (simulated ms beyond its own transmission)`;
    suite.record(
      caseName,
      'one bulk frame',
      'wait',
      (maxFrame * 1000) / bandwidth,
      'ms',
      'one bulk frame',
    );
    suite.record(caseName, 'lattice (worst of 10)', 'wait', controlWait(maxFrame, bandwidth), 'ms');
  }

  // Real time: CPU cost of pushing 4 MB through two multiplexers (unlimited loopback, 64 KiB
  // frames) against writing the same bytes to a raw TCP socket on localhost.
  const bytes = 4 * MB;
  const server = createServer();
  let sink: (n: number) => void = () => undefined;
  server.on('connection', (s: Socket) => s.on('data', (d: Buffer) => sink(d.length)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  client.setNoDelay(true);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const chunk = Buffer.alloc(65_536, 7);
  const w = world();
  w.net.connect(w.da, w.db, { maxFrameBytes: 65_536, bandwidthBytesPerS: Infinity, latencyMs: 0 });
  w.clock.runUntil(() => w.a.session(w.b.peerId) !== undefined && w.b.peers().length === 1);
  const message = new Uint8Array(MB).fill(7);
  await suite.measure(
    '4 MB over TCP-sized frames (real time, CPU)',
    {
      'tcp-raw': () =>
        new Promise<void>((resolve) => {
          let got = 0;
          sink = (n) => {
            got += n;
            if (got >= bytes) resolve();
          };
          for (let sent = 0; sent < bytes; sent += chunk.length) client.write(chunk);
        }),
      lattice: () => {
        const target = w.received.count + 4;
        for (let i = 0; i < 4; i++) void w.a.send(w.b.peerId, message, { stream: Priority.BULK });
        w.clock.runUntil(() => w.received.count >= target);
      },
    },
    { anchor: 'tcp-raw', timeMs: 2_000 },
  );
  client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const subject of ['tcp-raw', 'lattice']) {
    const row = suite.rows.find(
      (r) => r.case.startsWith('4 MB') && r.subject === subject && r.metric === 'throughput',
    );
    if (row !== undefined) {
      suite.record(row.case, subject, 'bytes moved', (row.value * bytes) / MB, 'MB/s');
    }
  }
  await w.a.close();
  await w.b.close();
  return suite;
}
