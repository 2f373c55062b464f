/**
 * Pacing of one BLE link direction: a window of writes in flight and a byte budget per second.
 *
 * @remarks
 * The radio (the controller's ACL buffers, the stack's ATT queue) holds only a few packets;
 * writing faster than the air carries them fills the queue until writes fail or the stack drops
 * them. A {@link Pacer} therefore admits a frame only when (1) fewer than `windowFrames` writes are
 * in flight — a write leaves the window when the stack calls back (noble's write callback fires
 * when the ATT command left its queue) or, for notifications that have no callback, at once — and
 * (2) the token bucket of `bytesPerS` (burst: `burstBytes`) holds the frame's bytes. A refused
 * frame arms one timer (or waits for the next completion) and `onWritable` fires when a frame of
 * that size would be admitted, so a sender is never left waiting and never polls.
 */

/** Settings of a {@link Pacer}. */
export interface PacerOptions {
  /** Budget in bytes per second (a write is charged what it costs on air); Infinity for none. */
  readonly bytesPerS: number;
  /** Writes in flight at most (the stack's queue depth we allow ourselves). */
  readonly windowFrames: number;
  /** Bucket size in bytes (at least one largest frame). */
  readonly burstBytes: number;
  /** Called once each time a refused sender may try again. */
  readonly onWritable: () => void;
  /** Milliseconds clock (default `performance.now`). */
  readonly now?: () => number;
}

/** See the module comment. */
export class Pacer {
  readonly #o: PacerOptions;
  readonly #now: () => number;
  #tokens: number;
  #at: number;
  #inFlight = 0;
  #blockedBytes: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: PacerOptions) {
    if (options.windowFrames < 1) throw new RangeError('windowFrames must be at least 1');
    if (!(options.bytesPerS > 0)) throw new RangeError('bytesPerS must be positive');
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
    this.#tokens = options.burstBytes;
    this.#at = this.#now();
  }

  /** Writes admitted and not yet completed. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Admits a write of `bytes` (the caller must then call {@link complete} once), or refuses it. */
  tryTake(bytes: number): boolean {
    if (this.#closed) return false;
    this.#refill();
    if (this.#inFlight < this.#o.windowFrames && this.#tokens >= bytes) {
      this.#tokens -= bytes;
      this.#inFlight++;
      return true;
    }
    this.#blockedBytes = Math.max(this.#blockedBytes ?? 0, bytes);
    this.#arm();
    return false;
  }

  /** A write left the stack's queue. */
  complete(): void {
    if (this.#inFlight > 0) this.#inFlight--;
    this.#arm();
  }

  /** Stops the timer; no `onWritable` follows. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #refill(): void {
    const now = this.#now();
    if (Number.isFinite(this.#o.bytesPerS)) {
      this.#tokens = Math.min(
        this.#o.burstBytes,
        this.#tokens + ((now - this.#at) * this.#o.bytesPerS) / 1000,
      );
    } else {
      this.#tokens = this.#o.burstBytes;
    }
    this.#at = now;
  }

  #arm(): void {
    if (this.#closed || this.#blockedBytes === undefined || this.#timer !== undefined) return;
    if (this.#inFlight >= this.#o.windowFrames) return; // complete() re-arms
    this.#refill();
    const need = Math.min(this.#blockedBytes, this.#o.burstBytes) - this.#tokens;
    const wait = need <= 0 ? 0 : Math.ceil((need * 1000) / this.#o.bytesPerS);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed) return;
      this.#blockedBytes = undefined;
      this.#o.onWritable();
    }, wait);
  }
}
