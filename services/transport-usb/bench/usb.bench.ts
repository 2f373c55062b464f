// `pnpm bench usb`: goodput over a socat pty pair for 100 B, 10 KB and 1 MB messages — the
// multiplexer over `SerialLinkDriver`, the driver alone (the messages cut into frames of the
// advertised max size), and raw `serialport` writes of the same message bytes on ports opened
// with the same settings (the anchor) — and the framing overhead in bytes per frame.
//
// How it stays fair on a shared machine: every case runs a warm-up round and then RUNS rounds;
// each round runs every subject once, in a rotated order, on a fresh pair of ports, so a burst of
// load from elsewhere hits all subjects alike. The table shows each subject's median. Goodput is
// message bytes delivered to the receiving application per second, from the first write until
// the last byte arrives; framing and multiplexer headers and acks are the subjects' own cost.
//
// A pty ignores the baud rate: these are CPU costs of the stack on a pty, not line speeds; on a
// real UART every subject is capped at baud / 10 bytes/s. The baud still sets the advertised max
// frame (20 ms of line time): 115 200 baud gives 230 B frames, 4 000 000 gives 8 000 B frames,
// and both are measured (`LATTICE_USB_BAUDS=115200` for one).
import { loadavg } from 'node:os';
import { BenchSuite } from '@lattice/bench';
import { createIdentity, Multiplexer, type LinkId } from '@lattice/multiplexer';
import { socatPtyPair, type PtyPair } from '@lattice/testing';
import { SerialPort } from 'serialport';
import { frameOverheadBytes, SerialLinkDriver, serialMaxFrameBytes } from '../src/index.js';

const BAUDS = (process.env['LATTICE_USB_BAUDS'] ?? '115200,4000000').split(',').map(Number);
const RUNS = Number(process.env['LATTICE_USB_RUNS'] ?? 7);
const CASES = [
  { name: '100 B', size: 100, count: 10_000 },
  { name: '10 KB', size: 10_000, count: 200 },
  { name: '1 MB', size: 1_000_000, count: 4 },
] as const;

type Subject = (pair: PtyPair, baud: number, size: number, count: number) => Promise<number>;

/** The message of each size, built once: building 1 MB costs more CPU than sending it. */
const payloads = new Map<number, Uint8Array>();
function payload(size: number): Uint8Array {
  let p = payloads.get(size);
  if (p === undefined) {
    p = new Uint8Array(size);
    for (let i = 0; i < size; i++) p[i] = (i * 131 + 7) & 0xff;
    payloads.set(size, p);
  }
  return p;
}

async function openPort(path: string, baudRate: number): Promise<SerialPort> {
  const port = new SerialPort({ path, baudRate, autoOpen: false });
  // A port closed by the previous subject can stay locked for a few ms: serialport closes the fd
  // while a read of it may still be queued on the thread pool, and the lock goes with the last
  // reference. Seen after the multiplexer subject; retried here rather than slept over.
  for (let attempt = 0; ; attempt++) {
    try {
      await new Promise<void>((resolve, reject) =>
        port.open((e) => (e === null ? resolve() : reject(e))),
      );
      return port;
    } catch (error) {
      if (attempt >= 100 || !String(error).includes('Cannot lock port')) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/** Raw writes of `count` messages of `size` bytes, timed until the reader has them all. */
const raw: Subject = async (pair, baud, size, count) => {
  const [w, r] = await Promise.all([openPort(pair.a, baud), openPort(pair.b, baud)]);
  const total = size * count;
  const data = payload(size);
  let got = 0;
  const done = new Promise<void>((resolve) =>
    r.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (got >= total) resolve();
    }),
  );
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    if (!w.write(data)) await new Promise((resolve) => w.once('drain', resolve));
  }
  await done;
  const ms = performance.now() - start;
  await Promise.all([w, r].map((p) => new Promise((resolve) => p.close(resolve))));
  return total / 1e6 / (ms / 1000);
};

async function drivers(
  pair: PtyPair,
  baudRate: number,
): Promise<{ a: SerialLinkDriver; b: SerialLinkDriver; close(): Promise<void> }> {
  const a = new SerialLinkDriver({ ports: [pair.a], baudRate });
  const b = new SerialLinkDriver({ ports: [pair.b], baudRate });
  // Stops listening once both are up: a listener left behind would run for every frame.
  await new Promise<void>((resolve) => {
    const stops: (() => void)[] = [];
    const check = (): void => {
      if (a.links.length === 0 || b.links.length === 0) return;
      for (const stop of stops) stop();
      resolve();
    };
    stops.push(a.listen(check), b.listen(check));
  });
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
}

/** The driver alone: each message cut into frames of the advertised max size. */
const driverOnly: Subject = async (pair, baud, size, count) => {
  const { a, b, close } = await drivers(pair, baud);
  const id = a.links[0]?.id as LinkId;
  const max = a.capabilities.maxFrameBytes;
  const total = size * count;
  const data = payload(size);
  let got = 0;
  const done = new Promise<void>((resolve) =>
    b.listen((e) => {
      if (e.type === 'frame' && (got += e.data.length) >= total) resolve();
    }),
  );
  let wake: (() => void) | undefined;
  a.listen((e) => {
    if (e.type === 'writable') wake?.();
  });
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    for (let at = 0; at < size; at += max) {
      const frame = data.subarray(at, Math.min(size, at + max));
      while (!a.send(id, frame)) await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  await done;
  const ms = performance.now() - start;
  await close();
  return total / 1e6 / (ms / 1000);
};

/** Two multiplexers over the drivers: messages, acks and retransmission included. */
const multiplexed: Subject = async (pair, baud, size, count) => {
  const { a, b, close } = await drivers(pair, baud);
  const session = { maxSendBufferBytes: 2 ** 26 };
  const ma = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(1)), session });
  const mb = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(2)), session });
  ma.attach(a);
  mb.attach(b);
  await new Promise<void>((resolve) =>
    ma.on((e) => {
      if (e.type === 'peer-up') resolve();
    }),
  );
  let got = 0;
  const done = new Promise<void>((resolve) =>
    mb.onMessage(() => {
      if (++got === count) resolve();
    }),
  );
  const data = payload(size);
  const start = performance.now();
  for (let i = 0; i < count; i++) await ma.send(mb.peerId, data);
  await done;
  const ms = performance.now() - start;
  await Promise.all([ma.close(), mb.close()]);
  await close();
  return (size * count) / 1e6 / (ms / 1000);
};

const SUBJECTS: readonly (readonly [string, Subject])[] = [
  ['serialport-raw', raw],
  ['lattice-driver', driverOnly],
  ['lattice-mux', multiplexed],
];

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length / 2;
  return sorted.length % 2 === 1
    ? (sorted[Math.floor(mid)] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export default async function usb(): Promise<BenchSuite> {
  const suite = new BenchSuite('usb');
  const load = (): string =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  console.error(`usb: load average at start ${load()}`);
  const pair = await socatPtyPair();
  try {
    for (const baud of BAUDS) {
      const frame = serialMaxFrameBytes(baud);
      for (const c of CASES) {
        const name = `${c.name}, ${frame} B frames`;
        const values = new Map<string, number[]>(SUBJECTS.map(([s]) => [s, []]));
        const cpus = new Map<string, number[]>(SUBJECTS.map(([s]) => [s, []]));
        for (let round = 0; round <= RUNS; round++) {
          for (let k = 0; k < SUBJECTS.length; k++) {
            const [subject, run] = SUBJECTS[(round + k) % SUBJECTS.length] as [string, Subject];
            const cpu = process.cpuUsage();
            const value = await run(pair, baud, c.size, c.count);
            const used = process.cpuUsage(cpu);
            if (round === 0) continue; // round 0 warms up
            values.get(subject)?.push(value);
            // CPU of this process (both ends, user + system) per MB delivered, setup included.
            cpus.get(subject)?.push((used.user + used.system) / 1000 / ((c.size * c.count) / 1e6));
          }
        }
        for (const [subject, v] of values) {
          suite.record(name, subject, 'goodput', median(v), 'MB/s', 'serialport-raw');
        }
        for (const [subject, v] of cpus) suite.record(name, subject, 'CPU per MB', median(v), 'ms');
      }
    }
    for (const n of new Set([100, ...BAUDS.map((b) => serialMaxFrameBytes(b))])) {
      suite.record(
        `framing, ${n} B frame`,
        'lattice-driver',
        'overhead',
        frameOverheadBytes(n),
        'bytes',
      );
    }
  } finally {
    await pair.stop();
  }
  console.error(`usb: load average at end ${load()}`);
  return suite;
}
