/**
 * One remote peer's session: eight reliable, ordered message streams carried over every
 * authenticated link that reaches the peer.
 *
 * @remarks
 * Sending: a message is appended to its stream as a varint length and its bytes. Whenever a link
 * can take a frame, {@link PeerSession} fills one for it from the most urgent stream with work —
 * lost bytes first, then new bytes within the peer's window — so faster links pull more frames
 * (links are used together, weighted by capacity) and a control message on stream 0 waits for at
 * most the frame a link is already transmitting. Every frame sent is remembered per link in send
 * order; a segment is declared lost when its link's retransmission timeout (RFC 6298 estimate
 * per link, doubled on each timeout) passes, when a later frame on the same link is acked
 * (ordered links; three frames later on unordered ones), or at once when its link goes down.
 * Lost bytes are re-sent on whichever link is free next, split to its frame size.
 *
 * Receiving: fragments are placed by stream offset ({@link ReceiveStream}); duplicates are
 * dropped; complete messages are delivered once, in order. Acks are cumulative plus selective
 * ranges plus the window; they are sent when 16 data frames arrived, when a fragment arrives out
 * of order or twice, when the window opens by a quarter, on a PING, or after a delay that
 * adapts to the link's frame rate — on a data frame going the other way when there is one.
 *
 * Time comes from a {@link Clock}; nothing here reads the wall clock.
 */
import type { Clock, Timer } from './clock.js';
import { muxError } from './errors.js';
import {
  ackBlockBytes,
  ControlType,
  CRC_BYTES,
  CONTROL_HEADER_BYTES,
  DATA_HEADER_BYTES,
  encodeControlFrame,
  encodeDataFrame,
  encodeVarint,
  STREAM_COUNT,
  widenOffset,
  type AckEntry,
  type Frame,
} from './frame-codec.js';
import type { LinkId } from './link-driver.js';
import { ReceiveStream, type ReassemblyBudget, type ReceiveCounters } from './receive-stream.js';
import { SendStream, type Segment } from './send-stream.js';

/** The acks of a data frame that carries none. */
const NO_ACKS: readonly AckEntry[] = Object.freeze([]);

/** A remote peer's id (derived from its public key; see `handshake.ts`). */
export type PeerId = string & { readonly __peerId: true };

/** Tunables of a session; every field has a default in {@link DEFAULT_SESSION_OPTIONS}. */
export interface SessionOptions {
  /** Our receive window per stream, bytes (≤ 2^22). */
  readonly receiveWindowBytes: number;
  /** Largest message we accept. */
  readonly maxMessageBytes: number;
  /** Bytes queued for one peer before `send` waits. */
  readonly maxSendBufferBytes: number;
  /** Out-of-order bytes buffered for one peer. */
  readonly maxPeerBufferedBytes: number;
  /** Streams of one peer holding out-of-order data at once. */
  readonly maxPeerReassemblies: number;
  /** Out-of-order ranges per stream (fragments waiting for a gap). */
  readonly maxRangesPerStream: number;
  /** Out-of-order data is discarded after this long without progress. */
  readonly reassemblyTimeoutMs: number;
  /** Send an ack after this many data frames. */
  readonly ackEveryFrames: number;
  /** Bounds of the delayed-ack timer. */
  readonly minAckDelayMs: number;
  readonly maxAckDelayMs: number;
  /** Bounds of the retransmission timeout. */
  readonly minRtoMs: number;
  readonly maxRtoMs: number;
  readonly initialRtoMs: number;
}

/** Defaults of {@link SessionOptions}. */
export const DEFAULT_SESSION_OPTIONS: SessionOptions = {
  receiveWindowBytes: 2 ** 22,
  maxMessageBytes: 2 ** 22 - 8,
  maxSendBufferBytes: 2 ** 23,
  maxPeerBufferedBytes: 2 ** 23,
  maxPeerReassemblies: STREAM_COUNT,
  maxRangesPerStream: 4096,
  reassemblyTimeoutMs: 30_000,
  ackEveryFrames: 16,
  minAckDelayMs: 2,
  maxAckDelayMs: 100,
  minRtoMs: 20,
  maxRtoMs: 10_000,
  initialRtoMs: 500,
};

/** Counters of one link within a session. */
export interface LinkMetrics {
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  framesReceived: number;
  /** Stream bytes sent for the first time (goodput) and again (retransmissions). */
  payloadBytesSent: number;
  retransmittedBytes: number;
  retransmissions: number;
  timeouts: number;
  acksSent: number;
  /** Stream bytes the peer acknowledged that this link carried. */
  ackedBytes: number;
  /** Acknowledged stream bytes per second since the link joined the session. */
  goodputBytesPerS: number;
  /** Smoothed RTT in ms (0 before the first sample). */
  srttMs: number;
  rtoMs: number;
}

/** Counters of one peer. */
export interface PeerMetrics extends ReceiveCounters {
  messagesSent: number;
  messagesReceived: number;
  payloadBytesSent: number;
  payloadBytesReceived: number;
  retransmittedBytes: number;
  retransmissions: number;
  /** Data frames for a stream beyond what we could decode (protocol violations). */
  protocolErrors: number;
}

/** An authenticated link as the session uses it. */
export interface SessionLinkPort {
  readonly id: LinkId;
  readonly transport: string;
  readonly maxFrameBytes: number;
  /** Add a CRC (the link has no checksum of its own). */
  readonly crc: boolean;
  readonly ordered: boolean;
  /** 0 when unknown. */
  readonly bandwidthBytesPerS: number;
  readonly latencyMs: number;
  /** Sends a frame; false when the link refused it (busy or gone). */
  send(frame: Uint8Array): boolean;
}

interface SentEntry {
  readonly segment: Segment;
  readonly epoch: number;
  readonly seq: number;
  readonly deadline: number;
}

interface SessionLink {
  readonly port: SessionLinkPort;
  writable: boolean;
  inflightBytes: number;
  srtt: number;
  rttvar: number;
  rto: number;
  seq: number;
  readonly fifo: SentEntry[];
  fifoHead: number;
  readonly pings: Map<number, number>;
  readonly metrics: LinkMetrics;
  /** When the link joined the session. */
  readonly since: number;
}

/** A message delivered by a session. */
export interface SessionMessage {
  readonly stream: number;
  readonly data: Uint8Array;
  /** Pass to {@link PeerSession.consume} once the application took it (flow control). */
  readonly endOffset: number;
}

/** What a session needs from its owner. */
export interface SessionHooks {
  deliver(message: SessionMessage): void;
  /** The peer violated the protocol beyond repair; the owner resets or closes the session. */
  protocolError(error: Error): void;
}

interface Waiter {
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly cleanup: () => void;
}

/** See the module comment. */
export class PeerSession {
  readonly peerId: PeerId;
  readonly options: SessionOptions;
  readonly metrics: PeerMetrics = {
    messagesSent: 0,
    messagesReceived: 0,
    payloadBytesSent: 0,
    payloadBytesReceived: 0,
    retransmittedBytes: 0,
    retransmissions: 0,
    duplicateBytes: 0,
    outOfRange: 0,
    capDrops: 0,
    timeouts: 0,
    protocolErrors: 0,
  };
  readonly #clock: Clock;
  readonly #hooks: SessionHooks;
  readonly #links = new Map<LinkId, SessionLink>();
  readonly #send: SendStream[];
  readonly #recv: ReceiveStream[];
  readonly #peerBudget: ReassemblyBudget;
  // Receiver-side ack state.
  readonly #ackDirty = new Set<number>();
  readonly #advertised: number[];
  #ackFrames = 0;
  #ackDue = false;
  #ackTimer: Timer | undefined;
  #rtoTimer: Timer | undefined;
  #rtoAt = Infinity;
  #houseTimer: Timer | undefined;
  #persistTimer: Timer | undefined;
  #pingSeq = 0;
  #pumping = false;
  #closed = false;
  readonly #waiters: Waiter[] = [];

  constructor(init: {
    readonly peerId: PeerId;
    readonly clock: Clock;
    readonly options?: Partial<SessionOptions>;
    /** The peer's receive window (from its hello). */
    readonly remoteWindowBytes: number;
    /** Shared by every session of the multiplexer. */
    readonly globalBudget: ReassemblyBudget;
    readonly hooks: SessionHooks;
  }) {
    this.peerId = init.peerId;
    this.options = { ...DEFAULT_SESSION_OPTIONS, ...init.options };
    this.#clock = init.clock;
    this.#hooks = init.hooks;
    this.#peerBudget = {
      bufferedBytes: 0,
      maxBufferedBytes: this.options.maxPeerBufferedBytes,
      reassemblies: 0,
      maxReassemblies: this.options.maxPeerReassemblies,
    };
    this.#send = Array.from(
      { length: STREAM_COUNT },
      (_, i) => new SendStream(i, init.remoteWindowBytes),
    );
    this.#recv = Array.from(
      { length: STREAM_COUNT },
      (_, i) =>
        new ReceiveStream({
          window: this.options.receiveWindowBytes,
          maxMessageBytes: this.options.maxMessageBytes,
          maxRanges: this.options.maxRangesPerStream,
          budgets: [this.#peerBudget, init.globalBudget],
          counters: this.metrics,
          deliver: (m) => {
            this.metrics.messagesReceived++;
            this.metrics.payloadBytesReceived += m.data.length;
            this.#hooks.deliver({ stream: i, data: m.data, endOffset: m.endOffset });
          },
        }),
    );
    this.#advertised = this.#recv.map((r) => r.limit);
  }

  /** Links in use. */
  get linkIds(): readonly LinkId[] {
    return [...this.#links.keys()];
  }

  /** Per-link counters. */
  linkMetrics(): ReadonlyMap<LinkId, Readonly<LinkMetrics> & { readonly transport: string }> {
    const now = this.#clock.now();
    return new Map(
      [...this.#links].map(([id, l]) => {
        const seconds = (now - l.since) / 1000;
        const goodputBytesPerS = seconds > 0 ? l.metrics.ackedBytes / seconds : 0;
        return [id, { ...l.metrics, goodputBytesPerS, transport: l.port.transport }];
      }),
    );
  }

  /** Bytes queued and not yet acknowledged, all streams. */
  get sendBufferedBytes(): number {
    return this.#send.reduce((n, s) => n + s.bufferedBytes, 0);
  }

  /** Whether every message sent so far is acknowledged and nothing is buffered on either side. */
  get isIdle(): boolean {
    return (
      this.#send.every((s) => s.bufferedBytes === 0) &&
      this.#recv.every((r) => r.isIdle) &&
      this.#ackDirty.size === 0
    );
  }

  /** State held, for leak checks: segments, buffered and reassembly counts. */
  get footprint(): {
    segments: number;
    sendBytes: number;
    bufferedBytes: number;
    reassemblies: number;
    timers: number;
  } {
    return {
      segments: this.#send.reduce((n, s) => n + s.segmentCount, 0),
      sendBytes: this.sendBufferedBytes,
      bufferedBytes: this.#peerBudget.bufferedBytes,
      reassemblies: this.#peerBudget.reassemblies,
      timers: [this.#ackTimer, this.#rtoTimer, this.#houseTimer, this.#persistTimer].filter(
        (t) => t !== undefined,
      ).length,
    };
  }

  /** Attaches an authenticated link and starts using it. */
  addLink(port: SessionLinkPort): void {
    if (this.#closed) return;
    this.#links.set(port.id, {
      port,
      writable: true,
      inflightBytes: 0,
      srtt: 0,
      rttvar: 0,
      rto: this.options.initialRtoMs,
      seq: 0,
      fifo: [],
      fifoHead: 0,
      pings: new Map(),
      metrics: {
        bytesSent: 0,
        bytesReceived: 0,
        framesSent: 0,
        framesReceived: 0,
        payloadBytesSent: 0,
        retransmittedBytes: 0,
        retransmissions: 0,
        timeouts: 0,
        acksSent: 0,
        ackedBytes: 0,
        goodputBytesPerS: 0,
        srttMs: 0,
        rtoMs: this.options.initialRtoMs,
      },
      since: this.#clock.now(),
    });
    this.#ping(port.id);
    this.#pump();
  }

  /** Detaches a link (it went down): what was in flight on it is re-sent on the others. */
  removeLink(id: LinkId): void {
    const link = this.#links.get(id);
    if (link === undefined) return;
    this.#links.delete(id);
    for (const stream of this.#send) {
      for (const seg of [...stream.inflight()]) {
        if (seg.link === link) stream.markLost(seg);
      }
    }
    this.#pump();
  }

  /** The link can take frames again. */
  onWritable(id: LinkId): void {
    const link = this.#links.get(id);
    if (link === undefined) return;
    link.writable = true;
    this.#pump();
  }

  /**
   * Queues a message on a stream; waits while the peer's send buffer is full.
   * @throws MuxError MUX_MESSAGE_TOO_LARGE, MUX_CANCELLED (signal), MUX_CLOSED.
   */
  async send(data: Uint8Array, stream: number, signal?: AbortSignal): Promise<void> {
    if (!Number.isInteger(stream) || stream < 0 || stream >= STREAM_COUNT) {
      throw new RangeError(`stream must be 0-${STREAM_COUNT - 1}, got ${stream}`);
    }
    if (data.length > this.options.maxMessageBytes) {
      throw muxError('MUX_MESSAGE_TOO_LARGE', `message of ${data.length} bytes`, {
        bytes: String(data.length),
        max: String(this.options.maxMessageBytes),
      });
    }
    if (this.#closed) throw muxError('MUX_CLOSED', 'peer session closed', { peerId: this.peerId });
    if (signal?.aborted === true) {
      throw muxError('MUX_CANCELLED', 'send cancelled', { peerId: this.peerId }, signal.reason);
    }
    if (
      this.sendBufferedBytes + data.length > this.options.maxSendBufferBytes &&
      this.sendBufferedBytes > 0
    ) {
      await this.#waitForRoom(data.length, signal);
    }
    const s = this.#send[stream] as SendStream;
    s.push(encodeVarint(data.length));
    s.push(data);
    this.metrics.messagesSent++;
    this.metrics.payloadBytesSent += data.length;
    this.#pump();
  }

  /** The application took a message: its bytes leave the window. */
  consume(stream: number, endOffset: number): void {
    const r = this.#recv[stream];
    if (r === undefined || endOffset <= r.consumed) return;
    r.consumed = endOffset;
    if (r.limit - (this.#advertised[stream] ?? 0) >= r.window / 4) {
      this.#ackDirty.add(stream);
      this.#ackDue = true;
      this.#pump();
    }
  }

  /** Handles a decoded frame that arrived on one of this session's links. */
  onFrame(id: LinkId, frame: Frame, bytes: number): void {
    const link = this.#links.get(id);
    if (link === undefined || this.#closed) return;
    link.metrics.bytesReceived += bytes;
    link.metrics.framesReceived++;
    const now = this.#clock.now();
    if (frame.acks.length > 0) this.#onAcks(frame.acks, now);
    if (frame.kind === 'data') {
      this.#onData(frame.stream, frame.offset, frame.payload, now);
    } else if (frame.type === ControlType.PING) {
      this.#ackDue = true;
      this.#recv.forEach((r, i) => {
        if (r.next > 0 || i === 0) this.#ackDirty.add(i);
      });
      this.#sendControl(link, ControlType.PONG, frame.body);
    } else if (frame.type === ControlType.PONG) {
      const token = new DataView(frame.body.buffer, frame.body.byteOffset, 4).getUint32(0);
      const sentAt = link.pings.get(token);
      if (sentAt !== undefined) {
        link.pings.delete(token);
        this.#sample(link, now - sentAt);
      }
    }
    this.#pump();
  }

  /** Stops the session: queued messages are dropped, waiting senders fail with MUX_CLOSED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of [this.#ackTimer, this.#rtoTimer, this.#houseTimer, this.#persistTimer])
      t?.cancel();
    this.#ackTimer = this.#rtoTimer = this.#houseTimer = this.#persistTimer = undefined;
    for (const r of this.#recv) r.clear();
    this.#links.clear();
    const error = muxError('MUX_CLOSED', 'peer session closed', { peerId: this.peerId });
    for (const w of this.#waiters.splice(0)) {
      w.cleanup();
      w.reject(error);
    }
  }

  // ——— receiving ———

  #onData(stream: number, low24: number, payload: Uint8Array, now: number): void {
    const r = this.#recv[stream] as ReceiveStream;
    const offset = widenOffset(low24, r.next);
    let result;
    try {
      result = r.accept(offset, payload, now);
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'MUX_MESSAGE_TOO_LARGE') throw error;
      this.metrics.protocolErrors++;
      this.#hooks.protocolError(error as Error);
      return;
    }
    this.#ackDirty.add(stream);
    this.#ackFrames++;
    if (
      result !== 'in-order' ||
      r.outOfOrderBytes > 0 ||
      this.#ackFrames >= this.options.ackEveryFrames
    ) {
      this.#ackDue = true;
    } else if (this.#ackTimer === undefined) {
      this.#ackTimer = this.#clock.setTimer(this.#ackDelay(), () => {
        this.#ackTimer = undefined;
        if (this.#ackDirty.size === 0) return;
        this.#ackDue = true;
        this.#pump();
      });
    }
    if (r.outOfOrderBytes > 0) this.#armHousekeeping();
  }

  /** Delay of a delayed ack: the time the fastest link takes for `ackEveryFrames` frames. */
  #ackDelay(): number {
    let best = this.options.maxAckDelayMs;
    for (const l of this.#links.values()) {
      if (l.port.bandwidthBytesPerS > 0) {
        const ms =
          (this.options.ackEveryFrames * l.port.maxFrameBytes * 1000) / l.port.bandwidthBytesPerS;
        best = Math.min(best, ms);
      }
    }
    return Math.max(this.options.minAckDelayMs, best);
  }

  #buildAcks(maxBytes: number): AckEntry[] {
    const out: AckEntry[] = [];
    let room = maxBytes;
    for (const stream of [...this.#ackDirty].sort((a, b) => a - b)) {
      const r = this.#recv[stream] as ReceiveStream;
      let ranges = r.sackRanges();
      let entry: AckEntry = { stream, cumulative: r.next, window: r.limit - r.next, ranges };
      while (ackBlockBytes([entry]) > room && ranges.length > 0) {
        ranges = ranges.slice(0, -1);
        entry = { ...entry, ranges };
      }
      const size = ackBlockBytes([entry]);
      if (size > room) break;
      room -= size;
      out.push(entry);
    }
    return out;
  }

  #acksSent(acks: readonly AckEntry[]): void {
    for (const a of acks) {
      this.#ackDirty.delete(a.stream);
      this.#advertised[a.stream] = a.cumulative + a.window;
    }
    if (this.#ackDirty.size === 0) {
      this.#ackDue = false;
      this.#ackFrames = 0;
      this.#ackTimer?.cancel();
      this.#ackTimer = undefined;
    }
  }

  // ——— acks received ———

  #onAcks(acks: readonly AckEntry[], now: number): void {
    let progressed = false;
    const highest = new Map<SessionLink, number>();
    const acked = new Set<SessionLink>();
    const latest = new Map<SessionLink, Segment>();
    for (const a of acks) {
      const s = this.#send[a.stream] as SendStream;
      const cumulative = widenOffset(a.cumulative, s.acked);
      if (cumulative < s.acked || cumulative > s.sent) continue; // stale or bogus
      const limit = cumulative + a.window;
      if (limit > s.peerLimit) {
        s.peerLimit = limit;
        progressed = true;
      }
      const ranges = a.ranges.map(([x, y]) => [cumulative + x, cumulative + y] as const);
      const before = s.acked;
      for (const { segment, was, link } of s.ack(cumulative, ranges, now)) {
        if (link === undefined || was !== 'inflight') continue;
        const l = link as SessionLink;
        acked.add(l);
        l.inflightBytes -= segment.end - segment.start;
        l.metrics.ackedBytes += segment.end - segment.start;
        const newest = latest.get(l);
        if (newest === undefined || segment.seq > newest.seq) latest.set(l, segment);
      }
      if (s.acked > before) progressed = true;
    }
    // The RTT sample of a link is its most recently sent frame this ack covers: the ack left the
    // peer soon after that frame arrived, whereas older frames may have waited behind a gap or a
    // lost ack. Only a frame sent once says which transmission the ack is for (Karn); and only
    // such a frame proves that the frames sent before it on an ordered link are lost.
    for (const [l, segment] of latest) {
      if (segment.transmissions !== 1) continue;
      this.#sample(l, now - segment.sentAt);
      highest.set(l, segment.seq);
    }
    // Fast retransmit: frames sent on a link before one now acked are lost.
    for (const [l, seq] of highest) {
      const threshold = l.port.ordered ? 0 : 3;
      this.#expire(l, now, seq - threshold);
    }
    if (progressed) {
      // The path delivers again: drop the timeout backoff of the links that carried acked data.
      for (const l of acked) if (l.srtt > 0) this.#setRto(l);
      this.#resolveWaiters();
      this.#armRto();
    }
    // Selectively acked bytes wait for the cumulative ack; re-sent if it never comes.
    if (this.#send.some((x) => x.hasSacked())) this.#armHousekeeping();
  }

  #sample(link: SessionLink, rtt: number): void {
    if (link.srtt === 0) {
      link.srtt = rtt;
      link.rttvar = rtt / 2;
    } else {
      link.rttvar = 0.75 * link.rttvar + 0.25 * Math.abs(link.srtt - rtt);
      link.srtt = 0.875 * link.srtt + 0.125 * rtt;
    }
    link.metrics.srttMs = link.srtt;
    this.#setRto(link);
  }

  /** RFC 6298: RTO = SRTT + max(G, 4·RTTVAR), plus the peer's ack delay, within bounds. */
  #setRto(link: SessionLink): void {
    const o = this.options;
    link.rto = Math.min(
      o.maxRtoMs,
      Math.max(o.minRtoMs, link.srtt + Math.max(1, 4 * link.rttvar) + this.#ackDelay()),
    );
    link.metrics.rtoMs = link.rto;
  }
  // ——— timers ———

  /**
   * Declares lost what was sent on `link` before `seqBelow` (fast retransmit) or whose deadline
   * passed (timeout: the link's RTO doubles, once per expiry, as in RFC 6298).
   */
  #expire(link: SessionLink, now: number, seqBelow: number): void {
    const fifo = link.fifo;
    let timedOut = false;
    while (link.fifoHead < fifo.length) {
      const e = fifo[link.fifoHead] as SentEntry;
      const live =
        e.segment.epoch === e.epoch && e.segment.state === 'inflight' && e.segment.link === link;
      if (live && e.seq >= seqBelow && e.deadline > now) break;
      link.fifoHead++;
      if (!live) continue;
      if (e.deadline <= now) timedOut = true;
      link.inflightBytes -= e.segment.end - e.segment.start;
      (this.#send[e.segment.stream] as SendStream).markLost(e.segment);
    }
    if (link.fifoHead > 1024 && link.fifoHead * 2 > fifo.length) {
      fifo.splice(0, link.fifoHead);
      link.fifoHead = 0;
    }
    if (timedOut) {
      link.metrics.timeouts++;
      link.rto = Math.min(this.options.maxRtoMs, link.rto * 2);
      link.metrics.rtoMs = link.rto;
    }
  }

  #armRto(): void {
    let next = Infinity;
    for (const l of this.#links.values()) {
      // Skip stale heads so the timer does not fire for nothing.
      while (l.fifoHead < l.fifo.length) {
        const e = l.fifo[l.fifoHead] as SentEntry;
        if (e.segment.epoch === e.epoch && e.segment.state === 'inflight') break;
        l.fifoHead++;
      }
      const head = l.fifo[l.fifoHead];
      if (head !== undefined) next = Math.min(next, head.deadline);
    }
    if (next === this.#rtoAt) return;
    this.#rtoTimer?.cancel();
    this.#rtoTimer = undefined;
    this.#rtoAt = next;
    if (next === Infinity) return;
    this.#rtoTimer = this.#clock.setTimer(next - this.#clock.now(), () => {
      this.#rtoTimer = undefined;
      this.#rtoAt = Infinity;
      const now = this.#clock.now();
      for (const l of this.#links.values()) this.#expire(l, now, -Infinity);
      this.#armRto();
      this.#pump();
    });
  }

  #armHousekeeping(): void {
    if (this.#houseTimer !== undefined || this.#closed) return;
    const period = this.options.reassemblyTimeoutMs / 4;
    this.#houseTimer = this.#clock.setTimer(period, () => {
      this.#houseTimer = undefined;
      const now = this.#clock.now();
      let pending = false;
      for (const r of this.#recv) {
        if (r.expire(now, this.options.reassemblyTimeoutMs))
          this.#ackDirty.add(this.#recv.indexOf(r));
        if (r.outOfOrderBytes > 0) pending = true;
      }
      for (const s of this.#send) {
        // Re-send what the receiver acked selectively but never cumulatively (it may have
        // discarded it).
        if (s.renege(now, this.options.reassemblyTimeoutMs * 1.5) > 0) this.#pump();
        if (s.hasSacked()) pending = true;
      }
      if (pending) this.#armHousekeeping();
    });
  }

  // ——— sending ———

  #inflightCap(link: SessionLink): number {
    const p = link.port;
    const rtt = link.srtt > 0 ? link.srtt : 2 * p.latencyMs + this.#ackDelay();
    const frames = 32 * p.maxFrameBytes;
    if (p.bandwidthBytesPerS <= 0) return Math.max(frames, 256 * 1024);
    return Math.max(
      frames,
      64 * 1024,
      (4 * p.bandwidthBytesPerS * (rtt + this.#ackDelay())) / 1000,
    );
  }

  #pump(): void {
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    try {
      let sentAny = false;
      for (const link of this.#links.values()) {
        while (link.writable && this.#links.has(link.port.id)) {
          const sent = this.#sendOne(link);
          if (sent === 'none') break;
          if (sent === 'sent') sentAny = true;
        }
      }
      if (this.#ackDue && this.#ackDirty.size > 0) {
        // Nothing to carry the ack: bare ACK frames on the first links that take them.
        for (const link of this.#links.values()) {
          while (link.writable && this.#ackDirty.size > 0) {
            const acks = this.#buildAcks(
              link.port.maxFrameBytes - CONTROL_HEADER_BYTES - (link.port.crc ? CRC_BYTES : 0),
            );
            if (acks.length === 0) break;
            const frame = encodeControlFrame({ type: ControlType.ACK, acks, crc: link.port.crc });
            if (!this.#transmit(link, frame)) break;
            link.metrics.acksSent++;
            this.#acksSent(acks);
          }
          if (this.#ackDirty.size === 0) break;
        }
      }
      if (sentAny) this.#armRto();
      this.#armPersist();
    } finally {
      this.#pumping = false;
    }
  }

  /** Builds and sends one data frame on `link`. */
  #sendOne(link: SessionLink): 'sent' | 'refused' | 'none' {
    if (link.inflightBytes >= this.#inflightCap(link)) return 'none';
    let stream: SendStream | undefined;
    for (const s of this.#send) {
      if (s.hasWork()) {
        stream = s;
        break;
      }
    }
    if (stream === undefined) return 'none';
    const p = link.port;
    let room = p.maxFrameBytes - DATA_HEADER_BYTES - (p.crc ? CRC_BYTES : 0);
    let acks: readonly AckEntry[] = NO_ACKS;
    if (this.#ackDue && this.#ackDirty.size > 0) {
      acks = this.#buildAcks(Math.max(0, room - 1));
      room -= ackBlockBytes(acks);
    }
    const now = this.#clock.now();
    const taken = stream.take(room, link, now);
    if (taken === undefined) return 'none';
    const frame = encodeDataFrame({
      stream: stream.id,
      offset: taken.segment.start,
      acks,
      payload: taken.bytes,
      crc: p.crc,
    });
    if (!this.#transmit(link, frame)) {
      stream.untake(taken.segment, taken.retransmit);
      return 'refused';
    }
    if (acks.length > 0) this.#acksSent(acks);
    const bytes = taken.bytes.length;
    link.inflightBytes += bytes;
    taken.segment.seq = link.seq;
    link.fifo.push({
      segment: taken.segment,
      epoch: taken.segment.epoch,
      seq: link.seq++,
      deadline: now + link.rto,
    });
    if (taken.retransmit) {
      link.metrics.retransmittedBytes += bytes;
      link.metrics.retransmissions++;
      this.metrics.retransmittedBytes += bytes;
      this.metrics.retransmissions++;
    } else {
      link.metrics.payloadBytesSent += bytes;
    }
    return 'sent';
  }

  #transmit(link: SessionLink, frame: Uint8Array): boolean {
    if (!link.port.send(frame)) {
      link.writable = false;
      return false;
    }
    link.metrics.framesSent++;
    link.metrics.bytesSent += frame.length;
    return true;
  }

  #sendControl(link: SessionLink, type: ControlType, body: Uint8Array): void {
    // Control frames are best effort: a refused PING/PONG is simply not sent.
    this.#transmit(link, encodeControlFrame({ type, body, crc: link.port.crc }));
  }

  #ping(id: LinkId): void {
    const link = this.#links.get(id);
    if (link === undefined) return;
    const token = this.#pingSeq++ >>> 0;
    const body = new Uint8Array(4);
    new DataView(body.buffer).setUint32(0, token);
    link.pings.clear(); // only the latest ping counts
    link.pings.set(token, this.#clock.now());
    this.#sendControl(link, ControlType.PING, body);
  }

  /**
   * When a stream has bytes but the peer's window is shut and nothing is in flight, an ack that
   * opens the window may have been lost: ask for one with a PING after a timeout.
   */
  #armPersist(): void {
    let blocked = false;
    for (const s of this.#send) {
      if (s.end > s.sent && s.sent >= s.peerLimit && s.sent === s.acked) {
        blocked = true;
        break;
      }
    }
    if (!blocked) {
      this.#persistTimer?.cancel();
      this.#persistTimer = undefined;
      return;
    }
    if (this.#persistTimer !== undefined) return;
    const first = this.#links.values().next().value;
    if (first === undefined) return;
    this.#persistTimer = this.#clock.setTimer(first.rto, () => {
      this.#persistTimer = undefined;
      this.#ping(first.port.id);
      this.#armPersist();
    });
  }

  async #waitForRoom(bytes: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(
          muxError('MUX_CANCELLED', 'send cancelled', { peerId: this.peerId }, signal?.reason),
        );
      };
      const waiter: Waiter = {
        bytes,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #resolveWaiters(): void {
    while (this.#waiters.length > 0) {
      const w = this.#waiters[0] as Waiter;
      const buffered = this.sendBufferedBytes;
      if (buffered > 0 && buffered + w.bytes > this.options.maxSendBufferBytes) break;
      this.#waiters.shift();
      w.cleanup();
      w.resolve();
    }
  }
}
