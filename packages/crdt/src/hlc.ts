/**
 * Hybrid logical clock.
 *
 * A time is one safe integer: `wallMs * 2048 + counter`. Comparing times is comparing numbers;
 * when the counter overflows it carries into the wall part (the clock runs up to 2047 events
 * ahead of the wall clock per millisecond, then borrows from the future), and wall times up to
 * 2^42 ms (year 2109) fit below 2^53. A full timestamp is the time plus the peer id, which
 * breaks ties.
 */
import { crdtError } from './errors.js';
import type { PeerId } from './ids.js';

/** A packed hybrid-logical-clock time (see module docs). */
export type HlcTime = number & { readonly __hlcTime: true };

/** A time and the peer that produced it: the identity ("dot") of a write. */
export interface Timestamp {
  readonly time: HlcTime;
  readonly peer: PeerId;
}

/** Logical events per millisecond before the counter carries into the wall part. */
export const HLC_COUNTER_SPAN = 2048;
/** Largest wall time (ms since the epoch) a time can hold. */
export const HLC_MAX_WALL = 2 ** 42 - 1;
/** Default bound on how far a remote time may be ahead of our wall clock. */
export const DEFAULT_MAX_DRIFT_MS = 60_000;

/** Packs a wall time and counter into an {@link HlcTime}. */
export function packHlc(wallMs: number, counter = 0): HlcTime {
  if (!Number.isInteger(wallMs) || wallMs < 0 || wallMs > HLC_MAX_WALL)
    throw new RangeError(`wall time out of range: ${wallMs}`);
  if (!Number.isInteger(counter) || counter < 0 || counter >= HLC_COUNTER_SPAN)
    throw new RangeError(`counter out of range: ${counter}`);
  return (wallMs * HLC_COUNTER_SPAN + counter) as HlcTime;
}

/** The wall-clock milliseconds of a time. */
export function hlcWall(time: HlcTime): number {
  return Math.floor(time / HLC_COUNTER_SPAN);
}

/** The logical counter of a time. */
export function hlcCounter(time: HlcTime): number {
  return time % HLC_COUNTER_SPAN;
}

/** Orders timestamps: by time, then by peer id. */
export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  return a.peer === b.peer ? 0 : a.peer < b.peer ? -1 : 1;
}

/** Options of a {@link HybridClock}. */
export interface HybridClockOptions {
  readonly peer: PeerId;
  /** Current wall time in ms; injected so tests and the simulator are deterministic. */
  readonly wallClock: () => number;
  /** The last time this peer issued or saw, persisted before the previous shutdown. */
  readonly highWaterMark?: HlcTime;
  /** How far (ms) a remote time may be ahead of our wall clock before it is refused. */
  readonly maxDriftMs?: number;
}

/**
 * A hybrid logical clock for one peer.
 *
 * @remarks
 * Never runs backwards: each {@link HybridClock.now} is greater than every time issued or received
 * before, also across restarts when the caller persists {@link HybridClock.highWaterMark} and passes it
 * back. {@link HybridClock.receive} takes the max of local, remote and wall time, but refuses (throws
 * `CRDT_CLOCK_DRIFT`, clock unchanged) a remote time more than `maxDriftMs` ahead of our wall clock,
 * so one peer with a broken clock cannot drag every clock into the future. A remote time exactly
 * at the bound is accepted.
 */
export class HybridClock {
  readonly peer: PeerId;
  readonly maxDriftMs: number;
  readonly #wallClock: () => number;
  #last: number;

  constructor(options: HybridClockOptions) {
    this.peer = options.peer;
    this.#wallClock = options.wallClock;
    this.maxDriftMs = options.maxDriftMs ?? DEFAULT_MAX_DRIFT_MS;
    this.#last = options.highWaterMark ?? -1;
  }

  /** The latest time issued or received; persist it to stay monotonic across restarts. */
  get highWaterMark(): HlcTime {
    return Math.max(this.#last, 0) as HlcTime;
  }

  /** A new timestamp, greater than every time issued or received before. */
  now(): Timestamp {
    const wall = this.#wall();
    const physical = wall * HLC_COUNTER_SPAN;
    this.#last = physical > this.#last ? physical : this.#last + 1;
    return { time: this.#last as HlcTime, peer: this.peer };
  }

  /**
   * Takes a remote time into account, so the next {@link HybridClock.now} is greater than it.
   * @throws `CRDT_CLOCK_DRIFT` if `remote` is more than `maxDriftMs` ahead of our wall clock.
   */
  receive(remote: HlcTime): HlcTime {
    const wall = this.#wall();
    if (hlcWall(remote) > wall + this.maxDriftMs) {
      throw crdtError(
        'CRDT_CLOCK_DRIFT',
        `remote time is ${hlcWall(remote) - wall} ms ahead of the wall clock`,
        {
          remoteWallMs: String(hlcWall(remote)),
          localWallMs: String(wall),
          maxDriftMs: String(this.maxDriftMs),
        },
      );
    }
    this.#last = Math.max(this.#last, remote, wall * HLC_COUNTER_SPAN);
    return this.#last as HlcTime;
  }

  #wall(): number {
    const w = Math.floor(this.#wallClock());
    return Math.min(Math.max(w, 0), HLC_MAX_WALL);
  }
}
