// Per-frame CPU of the multiplexer (issue #11): frames/s through two multiplexers joined by a
// fast in-process link, in simulated time, so the wall time is the CPU the two multiplexers
// spend (the link only queues each frame and hands it over on the next timer, without copying
// it or refusing it; the multiplexer's in-flight cap paces the sender).
//
// Fixed workload: frames of 512 B, 1 KiB and 4 KiB, on a link with its own checksum (as USB's
// serial framing) and on one without (the multiplexer adds its CRC-32, as on plain TCP);
// 64 000 × the frame size in bytes (about
// 64 000 data frames) sent as messages of 10 KB, and of 1 MB, on the bulk stream. Frames are
// counted both ways (data and acks).
// Each case runs ROUNDS times after one warm-up round; the median is printed, per second of
// this process's CPU time (user + system: on a shared machine, wall time also counts the time
// other processes held the CPU) and per wall second.
//
// Run (against the built dist, as services run): `pnpm exec tsc -b services/multiplexer &&
// pnpm exec tsx services/multiplexer/bench/frame-rate.ts` (ROUNDS=5 by default).
import {
  asLinkId,
  createIdentity,
  Multiplexer,
  Priority,
  SimulatedClock,
  type LinkDriver,
  type LinkInfo,
  type LinkListener,
} from '@lattice/multiplexer';

const ROUNDS = Number(process.env['ROUNDS'] ?? 5);

/** One end of the fast link; see the header comment. */
class FastLinkEnd implements LinkDriver {
  readonly name = 'fast-link';
  peer: FastLinkEnd | undefined;
  framesSent = 0;
  readonly #clock: SimulatedClock;
  readonly #info: LinkInfo;
  readonly #listeners = new Set<LinkListener>();
  #queue: Uint8Array[] = [];
  #scheduled = false;

  constructor(clock: SimulatedClock, info: LinkInfo) {
    this.#clock = clock;
    this.#info = info;
  }

  listen(listener: LinkListener): () => void {
    this.#listeners.add(listener);
    listener({ type: 'up', link: this.#info });
    return () => this.#listeners.delete(listener);
  }

  send(_linkId: unknown, frame: Uint8Array): boolean {
    this.framesSent++;
    (this.peer as FastLinkEnd).#receive(frame);
    return true;
  }

  #receive(frame: Uint8Array): void {
    this.#queue.push(frame);
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#clock.setTimer(0, () => {
      this.#scheduled = false;
      const frames = this.#queue;
      this.#queue = [];
      const linkId = this.#info.id;
      for (const data of frames)
        for (const l of this.#listeners) l({ type: 'frame', linkId, data });
    });
  }

  closeLink(): void {
    // The link lives as long as the round.
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }
}

function round(
  maxFrameBytes: number,
  checksummed: boolean,
  size: number,
  total: number,
): { seconds: number; cpuSeconds: number; frames: number } {
  const clock = new SimulatedClock();
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
  const info = (remoteAddress: string): LinkInfo => ({
    id: asLinkId('fast'),
    transport: 'fast',
    remoteAddress,
    capabilities: {
      maxFrameBytes,
      kind: 1,
      reliable: true,
      ordered: true,
      bandwidthBytesPerS: 0,
      latencyMs: 0,
      checksummed,
    },
  });
  const ea = new FastLinkEnd(clock, info('b'));
  const eb = new FastLinkEnd(clock, info('a'));
  ea.peer = eb;
  eb.peer = ea;
  let received = 0;
  b.onMessage(() => {
    received++;
  });
  a.attach(ea);
  b.attach(eb);
  clock.runUntil(() => a.session(b.peerId) !== undefined && b.peers().length === 1);
  const frames0 = ea.framesSent + eb.framesSent;
  const n = Math.round(total / size);
  const message = new Uint8Array(size).fill(7);
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) void a.send(b.peerId, message, { stream: Priority.BULK });
  clock.runUntil(() => received === n, 3_600_000);
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  const seconds = (performance.now() - started) / 1000;
  const frames = ea.framesSent + eb.framesSent - frames0;
  void a.close();
  void b.close();
  return { seconds, cpuSeconds, frames };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] as number;
};

// FRAMES=512,4096 and CHECKSUM=link|mux narrow the run.
const frameSizes = (process.env['FRAMES'] ?? '512,1024,4096').split(',').map(Number);
const checksums = { link: [true], mux: [false] }[process.env['CHECKSUM'] ?? ''] ?? [true, false];
const cases = checksums.flatMap((checksummed) =>
  frameSizes.flatMap((maxFrameBytes) =>
    (
      [
        ['10 KB', 10_000],
        ['1 MB', 1_000_000],
      ] as const
    ).map(([label, size]) => ({ checksummed, maxFrameBytes, label, size })),
  ),
);
for (const { checksummed, maxFrameBytes, label, size } of cases) {
  const total = 64_000 * maxFrameBytes;
  round(maxFrameBytes, checksummed, size, total); // warm-up
  const perCpu: number[] = [];
  const perWall: number[] = [];
  let frames = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const res = round(maxFrameBytes, checksummed, size, total);
    frames = res.frames;
    perCpu.push(res.frames / res.cpuSeconds);
    perWall.push(res.frames / res.seconds);
  }
  const k = (xs: readonly number[]): string => xs.map((x) => Math.round(x / 1000)).join('/');
  console.log(
    `${checksummed ? 'link checksum' : 'mux CRC-32   '}, frame ${String(maxFrameBytes).padStart(4)} B, ` +
      `${label.padEnd(5)} msgs: ${Math.round(median(perCpu)).toLocaleString('en')} frames per CPU s ` +
      `(${((median(perCpu) * total) / frames / 1e6).toFixed(1)} MB per CPU s), ` +
      `${Math.round(median(perWall)).toLocaleString('en')} frames per wall s; ` +
      `${frames} frames both ways; rounds ${k(perCpu)} k per CPU s`,
  );
}
