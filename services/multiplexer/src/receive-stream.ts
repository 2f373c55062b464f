/**
 * The receiving half of one stream: reorders fragments by stream offset, suppresses duplicates,
 * and cuts the in-order bytes into messages (each a varint length then its bytes).
 *
 * @remarks
 * Memory is bounded three ways: the window (nothing beyond `consumed + window` is accepted, so
 * at most `window` bytes wait per stream), the caller's {@link ReassemblyBudget} (out-of-order
 * bytes and reassemblies per peer and overall), and a cap on out-of-order ranges. Out-of-order
 * data older than the reassembly timeout is discarded ({@link ReceiveStream.expire}); the sender
 * still holds it until it is acknowledged cumulatively, so discarding loses nothing.
 */
import { MAX_SACK_RANGES } from './frame-codec.js';
import { muxError } from './errors.js';

/** Limits shared by the streams of a peer or of the whole multiplexer. */
export interface ReassemblyBudget {
  /** Out-of-order bytes buffered now, and their cap. */
  bufferedBytes: number;
  readonly maxBufferedBytes: number;
  /** Streams holding out-of-order data now, and their cap. */
  reassemblies: number;
  readonly maxReassemblies: number;
}

/** Counters of what was refused or dropped. */
export interface ReceiveCounters {
  duplicateBytes: number;
  /** Fragments beyond the window. */
  outOfRange: number;
  /** Fragments dropped because a cap was reached. */
  capDrops: number;
  /** Out-of-order ranges discarded after the reassembly timeout. */
  timeouts: number;
}

/** A message ready for the application, with the stream offset just past it. */
export interface ReceivedMessage {
  readonly data: Uint8Array;
  readonly endOffset: number;
}

interface Range {
  start: number;
  data: Uint8Array;
}

/** What {@link ReceiveStream.accept} did with a fragment. */
export type AcceptResult = 'in-order' | 'out-of-order' | 'duplicate' | 'out-of-range' | 'dropped';

/** Largest first buffer of a message being assembled; see `ReceiveStream#feed`. */
const FIRST_MESSAGE_BUFFER_BYTES = 64 * 1024;

/** See the module comment. */
export class ReceiveStream {
  /** Next offset expected in order. */
  next = 0;
  /** Offset up to which the application has taken its messages. */
  consumed = 0;
  readonly window: number;
  readonly maxMessageBytes: number;
  readonly maxRanges: number;
  readonly #budgets: readonly ReassemblyBudget[];
  readonly #counters: ReceiveCounters;
  readonly #deliver: (message: ReceivedMessage) => void;
  #ranges: Range[] = [];
  #rangeBytes = 0;
  #since = 0;
  // The message being assembled from in-order bytes: its varint length prefix as read so far,
  // then its bytes, copied into one buffer (see #feed).
  #lenValue = 0;
  #lenScale = 1;
  #lenBytes = 0;
  #need: number | undefined;
  #message: Uint8Array | undefined;
  #have = 0;
  readonly #ready: ReceivedMessage[] = [];

  constructor(options: {
    readonly window: number;
    readonly maxMessageBytes: number;
    readonly maxRanges: number;
    readonly budgets: readonly ReassemblyBudget[];
    readonly counters: ReceiveCounters;
    readonly deliver: (message: ReceivedMessage) => void;
  }) {
    this.window = options.window;
    this.maxMessageBytes = options.maxMessageBytes;
    this.maxRanges = options.maxRanges;
    this.#budgets = options.budgets;
    this.#counters = options.counters;
    this.#deliver = options.deliver;
  }

  /** The highest offset the sender may send up to (exclusive). */
  get limit(): number {
    return this.consumed + this.window;
  }

  /** Out-of-order bytes buffered. */
  get outOfOrderBytes(): number {
    return this.#rangeBytes;
  }

  /** In-order bytes of an incomplete message. */
  get partialBytes(): number {
    return this.#have + this.#lenBytes;
  }

  /** Whether the stream holds nothing but counters. */
  get isIdle(): boolean {
    return this.#ranges.length === 0 && this.#have === 0 && this.#lenBytes === 0;
  }

  /**
   * Takes one fragment at a full stream offset.
   * @throws MuxError MUX_MESSAGE_TOO_LARGE when the stream announces a message over the limit
   *   (the peer is broken or hostile; the caller resets the session).
   */
  accept(offset: number, payload: Uint8Array, now: number): AcceptResult {
    let start = offset;
    const end = offset + payload.length;
    if (end > this.limit) {
      this.#counters.outOfRange++;
      return 'out-of-range';
    }
    if (end <= this.next) {
      this.#counters.duplicateBytes += payload.length;
      return 'duplicate';
    }
    let data = payload;
    if (start < this.next) {
      this.#counters.duplicateBytes += this.next - start;
      data = data.subarray(this.next - start);
      start = this.next;
    }
    if (start === this.next) {
      try {
        this.#feed(data);
        this.#drain(now);
      } finally {
        // Delivered only now, with the stream consistent: a receiver may re-enter (ack, consume).
        this.#flushReady();
      }
      return 'in-order';
    }
    return this.#insert(start, data, now);
  }

  /** Discards out-of-order data held since before `now - timeoutMs`; returns whether it did. */
  expire(now: number, timeoutMs: number): boolean {
    if (this.#ranges.length === 0 || now - this.#since < timeoutMs) return false;
    this.#counters.timeouts += this.#ranges.length;
    this.#clearRanges();
    return true;
  }

  /** Selective ranges for an ACK, relative to {@link next}, merged, at most 7. */
  sackRanges(): [number, number][] {
    const out: [number, number][] = [];
    for (const r of this.#ranges) {
      if (r.start <= this.next) continue; // not drained yet (never expected)
      const s = r.start - this.next;
      const e = s + r.data.length;
      const last = out[out.length - 1];
      if (last !== undefined && last[1] === s) last[1] = e;
      else if (out.length < MAX_SACK_RANGES) out.push([s, e]);
      else break;
    }
    return out;
  }

  /** Releases every buffer (session reset or close). */
  clear(): void {
    this.#clearRanges();
    this.#resetPrefix();
    this.#message = undefined;
    this.#have = 0;
    this.#need = undefined;
  }

  #resetPrefix(): void {
    this.#lenValue = 0;
    this.#lenScale = 1;
    this.#lenBytes = 0;
  }

  #clearRanges(): void {
    if (this.#ranges.length > 0) {
      for (const b of this.#budgets) {
        b.bufferedBytes -= this.#rangeBytes;
        b.reassemblies--;
      }
    }
    this.#ranges = [];
    this.#rangeBytes = 0;
  }

  #insert(start: number, data: Uint8Array, now: number): AcceptResult {
    const ranges = this.#ranges;
    // Trim against existing ranges (the first copy wins), collecting the new pieces.
    const pieces: Range[] = [];
    let s = start;
    const end = start + data.length;
    let i = lowerBound(ranges, s);
    if (i > 0) {
      const prev = ranges[i - 1] as Range;
      const prevEnd = prev.start + prev.data.length;
      if (prevEnd > s) s = Math.min(prevEnd, end);
    }
    while (s < end) {
      const r = ranges[i];
      if (r === undefined || r.start >= end) {
        pieces.push({ start: s, data: data.subarray(s - start, end - start) });
        break;
      }
      if (r.start > s) pieces.push({ start: s, data: data.subarray(s - start, r.start - start) });
      s = Math.max(s, r.start + r.data.length);
      i++;
    }
    const fresh = pieces.reduce((n, p) => n + p.data.length, 0);
    if (fresh === 0) {
      this.#counters.duplicateBytes += data.length;
      return 'duplicate';
    }
    const opening = ranges.length === 0;
    const fits =
      ranges.length + pieces.length <= this.maxRanges &&
      this.#budgets.every(
        (b) =>
          b.bufferedBytes + fresh <= b.maxBufferedBytes &&
          (!opening || b.reassemblies < b.maxReassemblies),
      );
    if (!fits) {
      this.#counters.capDrops++;
      return 'dropped';
    }
    this.#counters.duplicateBytes += data.length - fresh;
    if (opening) {
      this.#since = now;
      for (const b of this.#budgets) b.reassemblies++;
    }
    for (const p of pieces) {
      // Copy (a Buffer's slice would not): the frame is valid only during its event, and its
      // buffer must not stay alive through a view.
      ranges.splice(lowerBound(ranges, p.start), 0, {
        start: p.start,
        data: new Uint8Array(p.data),
      });
    }
    this.#rangeBytes += fresh;
    for (const b of this.#budgets) b.bufferedBytes += fresh;
    return 'out-of-order';
  }

  #drain(now: number): void {
    const ranges = this.#ranges;
    let released = 0;
    let removed = 0;
    while (removed < ranges.length) {
      const r = ranges[removed] as Range;
      if (r.start > this.next) break;
      removed++;
      released += r.data.length;
      const end = r.start + r.data.length;
      if (end > this.next) this.#feed(r.data.subarray(this.next - r.start));
    }
    if (removed === 0) return;
    ranges.splice(0, removed);
    this.#rangeBytes -= released;
    for (const b of this.#budgets) {
      b.bufferedBytes -= released;
      if (ranges.length === 0) b.reassemblies--;
    }
    // Progress restarts the reassembly timeout for what is still out of order.
    this.#since = now;
  }

  /**
   * Cuts in-order bytes into messages.
   *
   * @remarks
   * Each message is copied once, into a buffer of its own: the fragments are views of link
   * frames, valid only during their frame event (the link contract) and not to be kept alive
   * through a view anyway. The buffer is allocated when the first
   * bytes arrive, at the message's size up to {@link FIRST_MESSAGE_BUFFER_BYTES} (or the bytes at
   * hand, if more), and doubled as bytes arrive, capped at the size; so an announced length costs
   * memory only as its bytes come, and a large message is copied at most twice more in total.
   */
  #feed(bytes: Uint8Array): void {
    const n = bytes.length;
    this.next += n;
    const base = this.next - n;
    let pos = 0;
    while (pos < n) {
      const need = this.#need;
      if (need === undefined) {
        const b = bytes[pos++] as number;
        this.#lenValue += (b & 0x7f) * this.#lenScale;
        this.#lenBytes++;
        if (b >= 0x80) {
          if (this.#lenBytes >= 4) this.#tooLarge(Number.MAX_SAFE_INTEGER);
          this.#lenScale *= 128;
          continue;
        }
        const length = this.#lenValue;
        this.#resetPrefix();
        if (length > this.maxMessageBytes) this.#tooLarge(length);
        this.#need = length;
        if (length === 0) {
          this.#message = new Uint8Array(0);
          this.#complete(base + pos);
        }
        continue;
      }
      const have = this.#have;
      const take = Math.min(need - have, n - pos);
      let buf = this.#message;
      if (buf === undefined) {
        buf = new Uint8Array(Math.min(need, Math.max(FIRST_MESSAGE_BUFFER_BYTES, take)));
        this.#message = buf;
      } else if (have + take > buf.length) {
        const grown = new Uint8Array(Math.min(need, Math.max(2 * buf.length, have + take)));
        grown.set(buf.length === have ? buf : buf.subarray(0, have));
        buf = grown;
        this.#message = buf;
      }
      // A plain view (a Buffer's subarray costs more): `bytes` may be a Buffer.
      buf.set(new Uint8Array(bytes.buffer, bytes.byteOffset + pos, take), have);
      this.#have = have + take;
      pos += take;
      if (this.#have === need) this.#complete(base + pos);
    }
  }

  #flushReady(): void {
    while (this.#ready.length > 0) this.#deliver(this.#ready.shift() as ReceivedMessage);
  }

  #complete(endOffset: number): void {
    // The buffer reached the message's size exactly (every growth is capped at it).
    const data = this.#message as Uint8Array;
    this.#message = undefined;
    this.#have = 0;
    this.#need = undefined;
    this.#ready.push({ data, endOffset });
  }

  #tooLarge(length: number): never {
    throw muxError('MUX_MESSAGE_TOO_LARGE', `peer announced a message of ${length} bytes`, {
      bytes: String(length),
      max: String(this.maxMessageBytes),
    });
  }
}

function lowerBound(ranges: readonly Range[], start: number): number {
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((ranges[mid] as Range).start < start) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
