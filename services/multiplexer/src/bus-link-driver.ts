/**
 * A {@link LinkDriver} over the bus: the links of transport services that run as their own
 * processes (or in the same process on a `LocalBus`).
 *
 * @remarks
 * For each transport named in the config it subscribes to `Subjects.linkEvent(transport, 'up' |
 * 'down')` (`lattice.v1.LinkUp` / `LinkDown`) and `Subjects.allFramesIn(transport)` (each message
 * a `lattice.v1.LinkFrame`), and publishes the frames to send as `LinkFrame`s on
 * `Subjects.framesOut(transport, linkId)`. Link ids are `<transport>/<linkId>` here, so two
 * transports may use the same id. The bus buffers, so `send` always takes a frame (the
 * multiplexer's per-link in-flight cap bounds what is queued); `closeLink` forgets the link and
 * asks the transport to close it (`close-link`).
 *
 * Transports run in other processes that start, stop and crash on their own, so events alone are
 * not enough: at start and every `reconcileMs` the driver asks each transport for its links
 * (`links`): a link it did not know comes up, a link missing from the answer goes down, and a
 * transport that has not answered for `deadAfterMs` has lost all its links (its process is gone).
 * The transport side is `serveLinkDriver` in `link-bridge.ts`.
 */
import type { Bus, Subscription } from '@lattice/bus';
import { v1, type ServiceName, type Subjects } from '@lattice/proto';
import { muxError } from './errors.js';
import {
  asLinkId,
  type LinkDriver,
  type LinkEvent,
  type LinkId,
  type LinkInfo,
  type LinkListener,
} from './link-driver.js';

interface BusLink {
  readonly info: LinkInfo;
  readonly transport: ServiceName;
  readonly rawId: string;
}

/** Counters of a {@link BusLinkDriver}. */
export interface BusLinkDriverCounters {
  /** Messages that were not valid LinkUp/LinkDown/LinkFrame protobufs. */
  undecodable: number;
  /** Frames for a link that is not up. */
  unknownLink: number;
  /** Links found up by asking the transport (their LinkUp was missed). */
  reconciledUp: number;
  /** Links found gone by asking the transport (their LinkDown was missed, or it died). */
  reconciledDown: number;
}

/** See the module comment. */
export class BusLinkDriver implements LinkDriver {
  readonly name = 'bus';
  readonly counters: BusLinkDriverCounters = {
    undecodable: 0,
    unknownLink: 0,
    reconciledUp: 0,
    reconciledDown: 0,
  };
  readonly #bus: Bus;
  readonly #subjects: Subjects;
  readonly #links = new Map<LinkId, BusLink>();
  readonly #listeners = new Set<LinkListener>();
  readonly #subscriptions: Subscription[] = [];
  readonly #loops: Promise<void>[] = [];
  readonly #transports: readonly ServiceName[];
  readonly #reconcileMs: number;
  readonly #deadAfterMs: number;
  /** When each transport last answered a `links` request. */
  readonly #lastAnswer = new Map<ServiceName, number>();
  readonly #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: {
    readonly bus: Bus;
    readonly subjects: Subjects;
    readonly transports: readonly ServiceName[];
    /** How often to ask the transports for their links (default 2 000 ms; 0: never). */
    readonly reconcileMs?: number;
    /** A transport silent this long has lost its links (default 3 × `reconcileMs`). */
    readonly deadAfterMs?: number;
  }) {
    this.#bus = options.bus;
    this.#subjects = options.subjects;
    this.#transports = options.transports;
    this.#reconcileMs = options.reconcileMs ?? 2_000;
    this.#deadAfterMs = options.deadAfterMs ?? 3 * this.#reconcileMs;
    if (this.#reconcileMs > 0) {
      this.#timer = setInterval(() => void this.reconcile(), this.#reconcileMs);
      this.#timer.unref();
    }
    for (const t of options.transports) {
      this.#consume(this.#bus.subscribe(this.#subjects.linkEvent(t, 'up')), (m) =>
        this.#onUp(t, m),
      );
      this.#consume(this.#bus.subscribe(this.#subjects.linkEvent(t, 'down')), (m) =>
        this.#onDown(t, m),
      );
      this.#consume(
        this.#bus.subscribe(this.#subjects.allFramesIn(t), { maxPending: 1_000_000 }),
        (m) => this.#onFrame(t, m),
      );
    }
  }

  /** Resolves when the subscriptions reached the server (so no LinkUp published after is missed). */
  async ready(): Promise<void> {
    await this.#bus.flush();
    await this.reconcile();
  }

  /** Asks every transport for its links and brings the driver's view in line with the answers. */
  async reconcile(): Promise<void> {
    await Promise.all(this.#transports.map((t) => this.#reconcile(t)));
  }

  async #reconcile(transport: ServiceName): Promise<void> {
    let list: v1.LinkList;
    try {
      const reply = await this.#bus.request(
        this.#subjects.request(transport, 'links'),
        v1.LinkListRequest.encode({}).finish(),
        { timeoutMs: Math.max(250, Math.min(this.#reconcileMs, 2_000)) },
      );
      list = v1.LinkList.decode(reply.data);
    } catch {
      // No answer (the transport is not running, or restarting): after a while, its links are gone.
      const last = this.#lastAnswer.get(transport);
      if (last !== undefined && Date.now() - last > this.#deadAfterMs) {
        this.#lastAnswer.delete(transport);
        this.#dropAll(transport, 'MUX_TRANSPORT_GONE', `${transport} stopped answering`);
      }
      return;
    }
    if (this.#closed) return;
    this.#lastAnswer.set(transport, Date.now());
    const listed = new Set<LinkId>();
    for (const up of list.links) {
      const id = asLinkId(`${transport}/${up.linkId ?? ''}`);
      listed.add(id);
      if (!this.#links.has(id)) {
        this.counters.reconciledUp++;
        this.#up(transport, v1.LinkUp.create(up));
      }
    }
    for (const [id, link] of [...this.#links]) {
      if (link.transport === transport && !listed.has(id)) {
        this.counters.reconciledDown++;
        this.#links.delete(id);
        this.#emit({ type: 'down', linkId: id, reasonCode: 'MUX_LINK_GONE', reason: 'not listed' });
      }
    }
  }

  #dropAll(transport: ServiceName, reasonCode: string, reason: string): void {
    for (const [id, link] of [...this.#links]) {
      if (link.transport !== transport) continue;
      this.counters.reconciledDown++;
      this.#links.delete(id);
      this.#emit({ type: 'down', linkId: id, reasonCode, reason });
    }
  }

  listen(listener: LinkListener): () => void {
    this.#listeners.add(listener);
    for (const l of this.#links.values()) listener({ type: 'up', link: l.info });
    return () => this.#listeners.delete(listener);
  }

  send(linkId: LinkId, frame: Uint8Array): boolean {
    const link = this.#links.get(linkId);
    if (link === undefined) return false;
    if (frame.length > link.info.capabilities.maxFrameBytes) {
      throw muxError('MUX_FRAME_TOO_LARGE', `frame of ${frame.length} bytes on link ${linkId}`, {
        linkId,
        bytes: String(frame.length),
      });
    }
    this.#bus.publish(
      this.#subjects.framesOut(link.transport, link.rawId),
      v1.LinkFrame.encode({ linkId: link.rawId, data: frame }).finish(),
    );
    return true;
  }

  closeLink(linkId: LinkId, reasonCode: string, reason: string): void {
    const link = this.#links.get(linkId);
    if (link === undefined) return;
    this.#links.delete(linkId);
    this.#emit({ type: 'down', linkId, reasonCode, reason });
    this.#bus
      .request(
        this.#subjects.request(link.transport, 'close-link'),
        v1.LinkCloseRequest.encode({ linkId: link.rawId, reasonCode, reason }).finish(),
        { timeoutMs: 2_000 },
      )
      .catch(() => undefined); // A transport that is gone closed the link already.
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    for (const s of this.#subscriptions) s.unsubscribe();
    this.#listeners.clear();
    await Promise.all(this.#loops);
  }

  #consume(sub: Subscription, handle: (data: Uint8Array) => void): void {
    this.#subscriptions.push(sub);
    this.#loops.push(
      (async () => {
        for await (const m of sub) handle(m.data);
      })(),
    );
  }

  #decode<T>(decode: () => T): T | undefined {
    try {
      return decode();
    } catch {
      // Not our contract's protobuf: counted and skipped, like a malformed frame.
      this.counters.undecodable++;
      return undefined;
    }
  }

  #onUp(transport: ServiceName, data: Uint8Array): void {
    const up = this.#decode(() => v1.LinkUp.decode(data));
    if (up !== undefined) this.#up(transport, up);
  }

  #up(transport: ServiceName, up: v1.LinkUp): void {
    const c = up.capabilities ?? {};
    const id = asLinkId(`${transport}/${up.linkId}`);
    const info: LinkInfo = {
      id,
      transport: up.transport || transport,
      remoteAddress: up.remoteAddress,
      ...(up.permissions ? { permissions: up.permissions } : {}),
      ...(up.principal ? { principal: up.principal } : {}),
      capabilities: {
        maxFrameBytes: c.maxFrameBytes ?? 0,
        kind: c.kind ?? 0,
        reliable: c.reliable ?? false,
        ordered: c.ordered ?? false,
        bandwidthBytesPerS: Number(c.bandwidthBytesPerS ?? 0),
        latencyMs: c.latencyMs ?? 0,
        checksummed: c.checksummed ?? false,
      },
    };
    if (this.#links.delete(id)) {
      // The transport announced it again (it restarted): the old one is gone, not to be closed.
      this.#emit({ type: 'down', linkId: id, reasonCode: 'MUX_LINK_GONE', reason: 'up again' });
    }
    this.#links.set(id, { info, transport, rawId: up.linkId });
    this.#emit({ type: 'up', link: info });
  }

  #onDown(transport: ServiceName, data: Uint8Array): void {
    const down = this.#decode(() => v1.LinkDown.decode(data));
    if (down === undefined) return;
    const id = asLinkId(`${transport}/${down.linkId}`);
    if (!this.#links.delete(id)) return;
    this.#emit({ type: 'down', linkId: id, reasonCode: down.reasonCode, reason: down.reason });
  }

  #onFrame(transport: ServiceName, data: Uint8Array): void {
    const frame = this.#decode(() => v1.LinkFrame.decode(data));
    if (frame === undefined) return;
    const id = asLinkId(`${transport}/${frame.linkId}`);
    if (!this.#links.has(id)) {
      this.counters.unknownLink++;
      return;
    }
    // protobufjs hands out a Buffer: pass a plain Uint8Array view (no copy) as the contract says.
    const bytes = new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength);
    this.#emit({ type: 'frame', linkId: id, data: bytes });
  }

  #emit(event: LinkEvent): void {
    for (const l of [...this.#listeners]) l(event);
  }
}
