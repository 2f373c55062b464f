// `pnpm bench usb`: goodput over a socat pty pair for 100 B, 10 KB and 1 MB messages — the
// multiplexer over `SerialLinkDriver`, the driver alone (frames of the advertised max size), and
// raw `serialport` writes of the same bytes in the same run (the anchor) — and the framing
// overhead in bytes per frame. A pty ignores the baud rate: these numbers are the CPU cost of
// the stack, not a line speed; on a real UART every subject is capped at baud / 10 bytes/s.
import { BenchSuite } from '@lattice/bench';
import { createIdentity, Multiplexer, type LinkId } from '@lattice/multiplexer';
import { socatPtyPair, type PtyPair } from '@lattice/testing';
import { SerialPort } from 'serialport';
import { frameOverheadBytes, SerialLinkDriver, serialMaxFrameBytes } from '../src/index.js';

// The configured baud sets the advertised max frame (20 ms of line time); the pty carries bytes
// as fast as the CPU allows. `LATTICE_USB_BAUD=4000000 pnpm bench usb` shows 4 KB frames.
const BAUD = Number(process.env['LATTICE_USB_BAUD'] ?? 115_200);
const CASES = [
  { name: '100 B', size: 100, count: 3_000 },
  { name: '10 KB', size: 10_000, count: 60 },
  { name: '1 MB', size: 1_000_000, count: 1 },
] as const;

function payload(size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 131 + 7) & 0xff);
}

async function openPort(path: string): Promise<SerialPort> {
  const port = new SerialPort({ path, baudRate: BAUD, autoOpen: false });
  await new Promise<void>((resolve, reject) =>
    port.open((e) => (e === null ? resolve() : reject(e))),
  );
  return port;
}

/** Raw writes of `count` chunks of `size` bytes, timed until the reader has them all. */
async function raw(pair: PtyPair, size: number, count: number): Promise<number> {
  const [w, r] = await Promise.all([openPort(pair.a), openPort(pair.b)]);
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
}

async function drivers(
  pair: PtyPair,
): Promise<{ a: SerialLinkDriver; b: SerialLinkDriver; close(): Promise<void> }> {
  const a = new SerialLinkDriver({ ports: [pair.a], baudRate: BAUD });
  const b = new SerialLinkDriver({ ports: [pair.b], baudRate: BAUD });
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (a.links.length > 0 && b.links.length > 0) resolve();
    };
    a.listen(check);
    b.listen(check);
  });
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
}

/** The driver alone: the same bytes cut into max-size frames. */
async function driverOnly(pair: PtyPair, size: number, count: number): Promise<number> {
  const { a, b, close } = await drivers(pair);
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
}

/** Two multiplexers over the drivers: messages, acks and retransmission included. */
async function multiplexed(pair: PtyPair, size: number, count: number): Promise<number> {
  const { a, b, close } = await drivers(pair);
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
}

/** The median of `RUNS` runs: this machine is shared, one run can stall. */
const RUNS = Number(process.env['LATTICE_USB_RUNS'] ?? 3);
async function median(run: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < RUNS; i++) values.push(await run());
  values.sort((x, y) => x - y);
  return values[Math.floor(values.length / 2)] as number;
}

export default async function usb(): Promise<BenchSuite> {
  const suite = new BenchSuite('usb');
  const pair = await socatPtyPair();
  try {
    for (const c of CASES) {
      const goodput = (subject: string, value: number, anchor?: string): void =>
        suite.record(c.name, subject, 'goodput', value, 'MB/s', anchor);
      goodput('serialport-raw', await median(() => raw(pair, c.size, c.count)), 'serialport-raw');
      goodput('lattice-driver', await median(() => driverOnly(pair, c.size, c.count)));
      goodput('lattice-mux', await median(() => multiplexed(pair, c.size, c.count)));
    }
    for (const n of [serialMaxFrameBytes(BAUD), 100]) {
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
  return suite;
}
