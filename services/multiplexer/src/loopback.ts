/**
 * A loopback link driver: pairs of in-process link ends with a configurable frame size, bandwidth,
 * latency, loss and drops, in simulated or real time.
 *
 * @remarks
 * A {@link LoopbackNetwork} owns a clock and a seeded random generator; `connect(a, b)` opens a
 * link between two {@link LoopbackLinkDriver}s. Each direction transmits one frame at a time: a
 * frame occupies the sender for `bytes / bandwidth` seconds, then arrives `latency` later unless
 * lost. While a frame is being transmitted the end refuses further frames until `writable` (which
 * fires the moment the transmitter is free, so the link never idles while frames wait), so a multiplexer above it decides what goes next at every frame (priorities)
 * and the link's capacity is exactly `bandwidth` bytes per second.
 */
import { SystemClock, type Clock } from './clock.js';
import { muxError } from './errors.js';
import {
  asLinkId,
  type LinkCapabilities,
  type LinkDriver,
  type LinkEvent,
  type LinkId,
  type LinkInfo,
  type LinkListener,
} from './link-driver.js';

/** A small fast seeded generator (mulberry32), returning [0, 1). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Settings of one loopback link. */
export interface LoopbackLinkOptions {
  /** Largest frame (default 512). */
  readonly maxFrameBytes?: number;
  /** Bytes per second each way; Infinity for no limit (default 1 000 000). */
  readonly bandwidthBytesPerS?: number;
  /** One-way latency in ms (default 1). */
  readonly latencyMs?: number;
  /** Probability that a frame is lost (default 0). */
  readonly loss?: number;
  /** Probability that a frame is delivered twice (default 0). */
  readonly duplicate?: number;
  /** Extra random delay up to this many ms, which reorders frames (default 0). */
  readonly jitterMs?: number;
  /** Declared as checksummed (default true; false makes the multiplexer add a CRC). */
  readonly checksummed?: boolean;
  /** Transport name reported in link events (default `loopback`). */
  readonly transport?: string;
  /**
   * How far ahead of its transmitter the link accepts frames, in ms of transmit time (a UART
   * FIFO, a socket buffer; default 0: one frame at a time). Throughput stays capped at the
   * bandwidth either way; with a real clock a few ms absorb timer lateness, which otherwise
   * idles the transmitter between frames of a fast link.
   */
  readonly transmitBufferMs?: number;
}

/** Counters of one direction of a loopback link. */
export interface LoopbackDirectionStats {
  framesSent: number;
  bytesSent: number;
  framesLost: number;
  framesDelivered: number;
  bytesDelivered: number;
  /** Simulated ms the transmitter spent sending. */
  busyMs: number;
}

/** One open loopback link between two ends. */
export interface LoopbackLink {
  readonly id: LinkId;
  /** Counters of frames from end `a` to end `b`, and from `b` to `a`. */
  readonly stats: { readonly aToB: LoopbackDirectionStats; readonly bToA: LoopbackDirectionStats };
  /** Cuts the link: both ends report it down; frames in flight are lost. */
  drop(reason?: string): void;
  readonly isUp: boolean;
}

interface Direction {
  readonly from: LoopbackLinkDriver;
  readonly to: LoopbackLinkDriver;
  busyUntil: number;
  blocked: boolean;
  wakePending: boolean;
  readonly stats: LoopbackDirectionStats;
}

interface LinkRecord {
  readonly id: LinkId;
  readonly options: Required<LoopbackLinkOptions>;
  readonly ab: Direction;
  readonly ba: Direction;
  up: boolean;
}

/** A set of loopback links sharing a clock and a random generator; see the module comment. */
export class LoopbackNetwork {
  readonly clock: Clock;
  readonly random: () => number;
  #nextId = 0;

  constructor(options: { readonly clock?: Clock; readonly seed?: number } = {}) {
    this.clock = options.clock ?? new SystemClock();
    this.random = seededRandom(options.seed ?? 1);
  }

  /** A new driver (one side of links, usually one per multiplexer). */
  driver(name = 'loopback'): LoopbackLinkDriver {
    return new LoopbackLinkDriver(this, name);
  }

  /** Opens a link between two drivers; both report it up. */
  connect(
    a: LoopbackLinkDriver,
    b: LoopbackLinkDriver,
    options: LoopbackLinkOptions = {},
  ): LoopbackLink {
    const o: Required<LoopbackLinkOptions> = {
      maxFrameBytes: options.maxFrameBytes ?? 512,
      bandwidthBytesPerS: options.bandwidthBytesPerS ?? 1_000_000,
      latencyMs: options.latencyMs ?? 1,
      loss: options.loss ?? 0,
      duplicate: options.duplicate ?? 0,
      jitterMs: options.jitterMs ?? 0,
      checksummed: options.checksummed ?? true,
      transport: options.transport ?? 'loopback',
      transmitBufferMs: options.transmitBufferMs ?? 0,
    };
    const id = asLinkId(`lo${this.#nextId++}`);
    const stats = (): LoopbackDirectionStats => ({
      framesSent: 0,
      bytesSent: 0,
      framesLost: 0,
      framesDelivered: 0,
      bytesDelivered: 0,
      busyMs: 0,
    });
    const dir = (from: LoopbackLinkDriver, to: LoopbackLinkDriver): Direction => ({
      from,
      to,
      busyUntil: 0,
      blocked: false,
      wakePending: false,
      stats: stats(),
    });
    const record: LinkRecord = { id, options: o, ab: dir(a, b), ba: dir(b, a), up: true };
    const capabilities: LinkCapabilities = {
      maxFrameBytes: o.maxFrameBytes,
      kind: 1, // LINK_KIND_DATAGRAM
      reliable: o.loss === 0 && o.duplicate === 0,
      ordered: o.jitterMs === 0,
      bandwidthBytesPerS: Number.isFinite(o.bandwidthBytesPerS) ? o.bandwidthBytesPerS : 0,
      latencyMs: o.latencyMs,
      checksummed: o.checksummed,
    };
    a._attach(record, record.ab, capabilities, b.name);
    b._attach(record, record.ba, capabilities, a.name);
    const drop = (reason = 'dropped'): void => this._drop(record, reason);
    return {
      id,
      stats: { aToB: record.ab.stats, bToA: record.ba.stats },
      get isUp() {
        return record.up;
      },
      drop,
    };
  }

  /** @internal */
  _drop(record: LinkRecord, reason: string): void {
    if (!record.up) return;
    record.up = false;
    record.ab.from._detach(record.id, reason);
    record.ba.from._detach(record.id, reason);
  }

  /** @internal Transmits a frame, or refuses it while the transmitter is busy. */
  _send(record: LinkRecord, dir: Direction, frame: Uint8Array): boolean {
    if (!record.up) return false;
    const now = this.clock.now();
    const ahead = record.options.transmitBufferMs;
    if (dir.busyUntil > now + ahead) {
      dir.blocked = true;
      if (!dir.wakePending) {
        // Wake the sender when the transmitter has room. A real clock may fire a little early;
        // the refused retry then schedules the next wake, so a sender is never left waiting.
        dir.wakePending = true;
        this.clock.setTimer(dir.busyUntil - ahead - now, () => {
          dir.wakePending = false;
          if (!record.up || !dir.blocked) return;
          dir.blocked = false;
          dir.from._emit({ type: 'writable', linkId: record.id });
        });
      }
      return false;
    }
    this.#transmit(record, dir, frame, now);
    return true;
  }

  #transmit(record: LinkRecord, dir: Direction, frame: Uint8Array, now: number): void {
    const o = record.options;
    const txMs = Number.isFinite(o.bandwidthBytesPerS)
      ? (frame.length * 1000) / o.bandwidthBytesPerS
      : 0;
    // Transmission starts when the frames accepted before it are out.
    const start = Math.max(now, dir.busyUntil);
    dir.busyUntil = start + txMs;
    dir.stats.framesSent++;
    dir.stats.bytesSent += frame.length;
    dir.stats.busyMs += txMs;
    const copies = this.random() < o.loss ? 0 : this.random() < o.duplicate ? 2 : 1;
    if (copies === 0) dir.stats.framesLost++;
    for (let i = 0; i < copies; i++) {
      const delay =
        start - now + txMs + o.latencyMs + (o.jitterMs > 0 ? this.random() * o.jitterMs : 0);
      const data = new Uint8Array(frame); // a copy, even of a Buffer
      this.clock.setTimer(delay, () => {
        if (!record.up) return;
        dir.stats.framesDelivered++;
        dir.stats.bytesDelivered += data.length;
        dir.to._emit({ type: 'frame', linkId: record.id, data });
      });
    }
  }
}

/** One side of loopback links; see the module comment. */
export class LoopbackLinkDriver implements LinkDriver {
  readonly name: string;
  readonly #network: LoopbackNetwork;
  readonly #links = new Map<LinkId, { record: LinkRecord; dir: Direction; info: LinkInfo }>();
  readonly #listeners = new Set<LinkListener>();
  #closed = false;

  constructor(network: LoopbackNetwork, name: string) {
    this.#network = network;
    this.name = name;
  }

  /** Links currently up at this end. */
  get links(): readonly LinkInfo[] {
    return [...this.#links.values()].map((l) => l.info);
  }

  listen(listener: LinkListener): () => void {
    this.#listeners.add(listener);
    for (const { info } of this.#links.values()) listener({ type: 'up', link: info });
    return () => this.#listeners.delete(listener);
  }

  send(linkId: LinkId, frame: Uint8Array): boolean {
    const link = this.#links.get(linkId);
    if (link === undefined) return false;
    if (frame.length > link.info.capabilities.maxFrameBytes) {
      throw muxError('MUX_FRAME_TOO_LARGE', `frame of ${frame.length} bytes on link ${linkId}`, {
        linkId,
        bytes: String(frame.length),
        max: String(link.info.capabilities.maxFrameBytes),
      });
    }
    return this.#network._send(link.record, link.dir, frame);
  }

  closeLink(linkId: LinkId, _reasonCode: string, reason: string): void {
    const link = this.#links.get(linkId);
    if (link !== undefined) this.#network._drop(link.record, reason);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const { record } of [...this.#links.values()]) this.#network._drop(record, 'closed');
    this.#listeners.clear();
  }

  /** @internal */
  _attach(
    record: LinkRecord,
    dir: Direction,
    capabilities: LinkCapabilities,
    remote: string,
  ): void {
    if (this.#closed) return;
    const info: LinkInfo = {
      id: record.id,
      transport: record.options.transport,
      capabilities,
      remoteAddress: remote,
    };
    this.#links.set(record.id, { record, dir, info });
    this._emit({ type: 'up', link: info });
  }

  /** @internal */
  _detach(id: LinkId, reason: string): void {
    if (!this.#links.delete(id)) return;
    this._emit({ type: 'down', linkId: id, reasonCode: '', reason });
  }

  /** @internal */
  _emit(event: LinkEvent): void {
    if (this.#closed) return;
    for (const l of [...this.#listeners]) l(event);
  }
}
