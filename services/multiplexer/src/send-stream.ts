/**
 * The sending half of one stream: the bytes not yet acknowledged, and a scoreboard of which byte
 * ranges are in flight (on which link, since when), lost (to be re-sent), or selectively acked.
 *
 * @remarks
 * The scoreboard's segments cover `[acked, sent)` exactly, in order, without overlap. A segment
 * is what one frame carried; re-sending a lost segment on a link with smaller frames splits it,
 * which only adds boundaries, so a cumulative or selective ack (always at a boundary of some
 * frame the receiver got) falls on segment boundaries. Data is released only by the cumulative
 * ack: a selectively acked segment is re-sent if the cumulative ack does not pass it in time,
 * because a receiver may discard out-of-order data (reassembly timeout, caps).
 */

/** What a segment is doing. */
export type SegmentState = 'inflight' | 'lost' | 'sacked';

/** One frame's worth of a stream's bytes. */
export interface Segment {
  start: number;
  end: number;
  state: SegmentState;
  /** The link it was last sent on (an opaque key), while in flight. */
  link: unknown;
  sentAt: number;
  /** The sending link's sequence number of its latest transmission (set by the session). */
  seq: number;
  /** When it was selectively acked. */
  sackedAt: number;
  /** Times sent; RTT samples come only from segments sent once (Karn). */
  transmissions: number;
  /** Bumped on every transmission or state change, so stale timer entries are recognized. */
  epoch: number;
  readonly stream: number;
}

/** See the module comment. */
export class SendStream {
  readonly id: number;
  /** Everything before this offset is acknowledged and released. */
  acked = 0;
  /** Everything before this offset has been sent at least once. */
  sent = 0;
  /** Offset just past the last byte queued. */
  end = 0;
  /** The receiver's limit (from its acks): nothing at or beyond it may be sent. */
  peerLimit: number;
  /** When the cumulative ack last moved. */
  ackedAt = 0;
  readonly #chunks: { start: number; data: Uint8Array }[] = [];
  #chunkHead = 0;
  readonly #segments: Segment[] = [];
  #segHead = 0;
  readonly #lost: Segment[] = [];
  /** Segments of the scoreboard (at or after its head) in state `sacked`. */
  #sacked = 0;

  constructor(id: number, peerLimit: number) {
    this.id = id;
    this.peerLimit = peerLimit;
  }

  /** Bytes queued and not yet acknowledged. */
  get bufferedBytes(): number {
    return this.end - this.acked;
  }

  /** Segments in the scoreboard. */
  get segmentCount(): number {
    return this.#segments.length - this.#segHead;
  }

  /** Appends bytes (a message's length prefix and body). */
  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#chunks.push({ start: this.end, data });
    this.end += data.length;
  }

  /** Whether something can be sent now (a lost segment, or new bytes within the peer's limit). */
  hasWork(): boolean {
    return this.#firstLost() !== undefined || this.sent < Math.min(this.end, this.peerLimit);
  }

  /**
   * Takes the next range to send, at most `budget` bytes: a lost segment first, else new bytes.
   * @returns the segment (marked in flight on `link`) and its bytes, or undefined.
   */
  take(
    budget: number,
    link: unknown,
    now: number,
  ): { segment: Segment; bytes: Uint8Array; retransmit: boolean } | undefined {
    const lost = this.#firstLost();
    if (lost !== undefined) {
      if (lost.end - lost.start > budget) {
        // Split: the front goes now, the rest stays lost.
        const rest: Segment = { ...lost, start: lost.start + budget, epoch: lost.epoch + 1 };
        lost.end = lost.start + budget;
        const idx = this.#indexOf(lost);
        this.#segments.splice(idx + 1, 0, rest);
        this.#lost.shift();
        this.#insertLost(rest);
      } else {
        this.#lost.shift();
      }
      this.#mark(lost, link, now);
      return { segment: lost, bytes: this.#read(lost.start, lost.end), retransmit: true };
    }
    const stop = Math.min(this.end, this.peerLimit, this.sent + budget);
    if (stop <= this.sent) return undefined;
    const segment: Segment = {
      start: this.sent,
      end: stop,
      state: 'inflight',
      link,
      sentAt: now,
      sackedAt: 0,
      seq: 0,
      transmissions: 0,
      epoch: 0,
      stream: this.id,
    };
    this.#segments.push(segment);
    this.sent = stop;
    this.#mark(segment, link, now);
    return { segment, bytes: this.#read(segment.start, segment.end), retransmit: false };
  }

  /** Undoes a {@link take} whose frame the link refused. */
  untake(segment: Segment, retransmit: boolean): void {
    segment.transmissions--;
    segment.epoch++;
    segment.link = undefined;
    const last = this.#segments[this.#segments.length - 1];
    if (!retransmit && last === segment && segment.end === this.sent) {
      this.#segments.pop();
      this.sent = segment.start;
      return;
    }
    segment.state = 'lost';
    this.#insertLost(segment);
  }

  /** Marks a segment lost (timeout, link down) so it is re-sent; returns whether it was in flight. */
  markLost(segment: Segment): boolean {
    if (segment.state === 'lost' || segment.end <= this.acked) return false;
    if (segment.state === 'sacked') this.#sacked--;
    segment.state = 'lost';
    segment.link = undefined;
    segment.epoch++;
    this.#insertLost(segment);
    return true;
  }

  /**
   * Applies a cumulative ack and selective ranges (full offsets).
   * @returns segments newly acknowledged, with the state they were in (for RTT samples and link
   *   accounting).
   */
  ack(
    cumulative: number,
    ranges: readonly (readonly [number, number])[],
    now: number,
  ): { segment: Segment; was: SegmentState; link: unknown }[] {
    const done: { segment: Segment; was: SegmentState; link: unknown }[] = [];
    if (cumulative > this.acked && cumulative <= this.sent) {
      const segs = this.#segments;
      while (this.#segHead < segs.length) {
        const s = segs[this.#segHead] as Segment;
        if (s.end > cumulative) {
          if (s.start < cumulative) s.start = cumulative; // not expected: acks fall on boundaries
          break;
        }
        if (s.state !== 'sacked') done.push({ segment: s, was: s.state, link: s.link });
        else this.#sacked--; // leaves the scoreboard
        s.state = 'sacked';
        s.link = undefined;
        s.epoch++;
        this.#segHead++;
      }
      if (this.#segHead > 1024 && this.#segHead * 2 > segs.length) {
        segs.splice(0, this.#segHead);
        this.#segHead = 0;
      }
      this.acked = cumulative;
      this.ackedAt = now;
      this.#releaseChunks();
    }
    for (const [start, end] of ranges) {
      if (end <= this.acked || start >= this.sent) continue;
      let i = this.#lowerBound(start);
      while (i < this.#segments.length) {
        const s = this.#segments[i] as Segment;
        if (s.start >= end) break;
        if (s.end <= end && s.start >= start && s.state !== 'sacked') {
          done.push({ segment: s, was: s.state, link: s.link });
          this.#sacked++;
          s.state = 'sacked';
          s.link = undefined;
          s.epoch++;
          s.sackedAt = now;
        }
        i++;
      }
    }
    return done;
  }

  /** Re-sends selectively acked segments not passed by the cumulative ack for `timeoutMs`. */
  renege(now: number, timeoutMs: number): number {
    let n = 0;
    for (let i = this.#segHead; i < this.#segments.length; i++) {
      const s = this.#segments[i] as Segment;
      if (s.state === 'sacked' && now - s.sackedAt >= timeoutMs && this.markLost(s)) n++;
    }
    return n;
  }

  /** Every segment in flight (for a link going down). */
  *inflight(): Iterable<Segment> {
    for (let i = this.#segHead; i < this.#segments.length; i++) {
      const s = this.#segments[i] as Segment;
      if (s.state === 'inflight') yield s;
    }
  }

  /** Whether a sacked segment waits for the cumulative ack. */
  hasSacked(): boolean {
    // A count, not a scan: the session asks after every ack, with hundreds of segments in flight.
    return this.#sacked > 0;
  }

  #mark(segment: Segment, link: unknown, now: number): void {
    segment.state = 'inflight';
    segment.link = link;
    segment.sentAt = now;
    segment.transmissions++;
    segment.epoch++;
  }

  #firstLost(): Segment | undefined {
    while (this.#lost.length > 0) {
      const s = this.#lost[0] as Segment;
      if (s.state === 'lost' && s.end > this.acked) return s;
      this.#lost.shift();
    }
    return undefined;
  }

  #insertLost(segment: Segment): void {
    // Lowest offsets go first: they hold back in-order delivery.
    const lost = this.#lost;
    let lo = 0;
    let hi = lost.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((lost[mid] as Segment).start < segment.start) lo = mid + 1;
      else hi = mid;
    }
    lost.splice(lo, 0, segment);
  }

  #indexOf(segment: Segment): number {
    const i = this.#lowerBound(segment.start);
    return this.#segments[i] === segment ? i : this.#segments.indexOf(segment);
  }

  #lowerBound(start: number): number {
    let lo = this.#segHead;
    let hi = this.#segments.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#segments[mid] as Segment).end <= start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #read(start: number, end: number): Uint8Array {
    const chunks = this.#chunks;
    let lo = this.#chunkHead;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((chunks[mid] as { start: number }).start <= start) lo = mid;
      else hi = mid - 1;
    }
    const first = chunks[lo] as { start: number; data: Uint8Array };
    if (end <= first.start + first.data.length) {
      return first.data.subarray(start - first.start, end - first.start);
    }
    const out = new Uint8Array(end - start);
    let pos = 0;
    for (let i = lo; pos < out.length; i++) {
      const c = chunks[i] as { start: number; data: Uint8Array };
      const from = Math.max(start, c.start) - c.start;
      const to = Math.min(end, c.start + c.data.length) - c.start;
      out.set(c.data.subarray(from, to), pos);
      pos += to - from;
    }
    return out;
  }

  #releaseChunks(): void {
    const chunks = this.#chunks;
    while (this.#chunkHead < chunks.length) {
      const c = chunks[this.#chunkHead] as { start: number; data: Uint8Array };
      if (c.start + c.data.length > this.acked) break;
      chunks[this.#chunkHead] = { start: c.start, data: new Uint8Array(0) };
      this.#chunkHead++;
    }
    if (this.#chunkHead > 64 && this.#chunkHead * 2 > chunks.length) {
      chunks.splice(0, this.#chunkHead);
      this.#chunkHead = 0;
    }
  }
}
