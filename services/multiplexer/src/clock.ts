/**
 * Time as the multiplexer sees it: a {@link Clock} that reads the time and sets timers.
 *
 * @remarks
 * Every timer of the multiplexer (retransmission, delayed acks, handshake deadlines, reassembly
 * timeouts) and of the loopback link goes through a clock, so tests run minutes of
 * {@link SimulatedClock} time in milliseconds of real time, deterministically: timers fire in
 * order of due time, ties in order of creation, and only when the test advances the clock.
 */

/** A timer set on a {@link Clock}. */
export interface Timer {
  cancel(): void;
}

/** Reads the time (milliseconds, may be fractional) and sets timers. */
export interface Clock {
  now(): number;
  /** Calls `fn` once after `delayMs` (≥ 0). */
  setTimer(delayMs: number, fn: () => void): Timer;
}

/** The real clock: `performance.now()` and `setTimeout` (unref'd so it never keeps a process alive). */
export class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    const handle = setTimeout(fn, Math.max(0, delayMs));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  }
}

interface SimTimer {
  readonly due: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** A clock that moves only when told to; see the module comment. */
export class SimulatedClock implements Clock {
  #now: number;
  #seq = 0;
  // A binary min-heap on (due, seq).
  readonly #heap: SimTimer[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Timers set and not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#heap.filter((t) => !t.cancelled).length;
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    const timer: SimTimer = {
      due: this.#now + Math.max(0, delayMs),
      seq: this.#seq++,
      fn,
      cancelled: false,
    };
    this.#push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Fires every timer due within the next `ms` milliseconds, then sets the time to now + ms. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const next = this.#peek();
      if (next === undefined || next.due > end) break;
      this.#pop();
      this.#now = Math.max(this.#now, next.due);
      next.fn();
    }
    this.#now = end;
  }

  /**
   * Fires timers one by one until `done()` holds, and returns the simulated time it took.
   * @throws RangeError when `maxMs` of simulated time pass first, or no timer is left.
   */
  runUntil(done: () => boolean, maxMs = 600_000): number {
    const start = this.#now;
    const end = start + maxMs;
    while (!done()) {
      const next = this.#peek();
      if (next === undefined)
        throw new RangeError('runUntil: no timer left and the condition does not hold');
      if (next.due > end)
        throw new RangeError(`runUntil: condition still false after ${maxMs} ms of simulated time`);
      this.#pop();
      this.#now = Math.max(this.#now, next.due);
      next.fn();
    }
    return this.#now - start;
  }

  /**
   * Like {@link runUntil}, but lets promises settle before each timer (for code that awaits,
   * such as a sender waiting for room): simulated time never moves while a microtask is pending.
   */
  async runUntilAsync(done: () => boolean, maxMs = 600_000): Promise<number> {
    const start = this.#now;
    const end = start + maxMs;
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (done()) return this.#now - start;
      const next = this.#peek();
      if (next === undefined)
        throw new RangeError('runUntilAsync: no timer left and the condition does not hold');
      if (next.due > end)
        throw new RangeError(
          `runUntilAsync: condition still false after ${maxMs} ms of simulated time`,
        );
      this.#pop();
      this.#now = Math.max(this.#now, next.due);
      next.fn();
    }
  }

  /** Like {@link advance}, letting promises settle before each timer. */
  async advanceAsync(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      const next = this.#peek();
      if (next === undefined || next.due > end) break;
      this.#pop();
      this.#now = Math.max(this.#now, next.due);
      next.fn();
    }
    this.#now = end;
  }

  #peek(): SimTimer | undefined {
    while (this.#heap.length > 0 && this.#heap[0]?.cancelled === true) this.#pop();
    return this.#heap[0];
  }

  #push(timer: SimTimer): void {
    const h = this.#heap;
    h.push(timer);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i] as SimTimer, h[parent] as SimTimer)) break;
      [h[i], h[parent]] = [h[parent] as SimTimer, h[i] as SimTimer];
      i = parent;
    }
  }

  #pop(): SimTimer | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l] as SimTimer, h[m] as SimTimer)) m = l;
        if (r < h.length && before(h[r] as SimTimer, h[m] as SimTimer)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as SimTimer, h[i] as SimTimer];
        i = m;
      }
    }
    return top;
  }
}

function before(a: SimTimer, b: SimTimer): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}
