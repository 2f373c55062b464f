/**
 * The transport side of the link contract: puts any {@link LinkDriver} on the bus, as the
 * multiplexer's `BusLinkDriver` consumes it. Every transport service (LAN, USB, BLE, the
 * gateway's WebSocket endpoint) serves its driver through {@link serveLinkDriver}.
 *
 * @remarks
 * Bus surface, for a transport `t` (messages of `lattice/v1/link.proto`):
 * - a link up is a `LinkUp` on `Subjects.linkEvent(t, 'up')`, a link down a `LinkDown` on
 *   `linkEvent(t, 'down')`; each frame received a `LinkFrame` on `Subjects.framesIn(t, id)`;
 * - frames to send arrive as `LinkFrame`s on `Subjects.allFramesOut(t)`. The bus has no
 *   backpressure, so frames the link refuses wait in a per-link queue until it is `writable`;
 *   past `maxQueuedBytes` further frames are dropped and counted (the multiplexer retransmits what
 *   is not acknowledged, and its in-flight cap keeps the queue short in normal operation);
 * - requests `links` (`LinkListRequest` → `LinkList`: the links up now, so a multiplexer that
 *   starts later, or checks, knows them) and `close-link` (`LinkCloseRequest` → `LinkCloseReply`).
 */
import { serve, type Bus, type Server, type Subscription } from '@lattice/bus';
import { hasCode } from '@lattice/errors';
import { v1, type ServiceName, type Subjects } from '@lattice/proto';
import { asLinkId, type LinkDriver, type LinkId, type LinkInfo } from './link-driver.js';

/** Counters of a {@link LinkBridge}. */
export interface LinkBridgeCounters {
  framesToBus: number;
  framesFromBus: number;
  /** Frames for a link that is not up (it went down while they travelled). */
  unknownLink: number;
  /** Frames dropped because a link's queue was full. */
  queueDrops: number;
  /** Frames over the link's maximum (the sender's bug). */
  tooLarge: number;
  /** Messages that were not `LinkFrame`s. */
  undecodable: number;
}

/** A driver served on the bus. */
export interface LinkBridge {
  readonly counters: LinkBridgeCounters;
  /** Links up now. */
  readonly links: number;
  /** Stops serving; reports every link still up as down. */
  close(): Promise<void>;
}

/** Options of {@link serveLinkDriver}. */
export interface LinkBridgeOptions {
  /** Bytes queued per link before frames are dropped (default 8 MiB). */
  readonly maxQueuedBytes?: number;
  /** Frames queued per link before frames are dropped (default: no limit but the bytes). */
  readonly maxQueuedFrames?: number;
  /** Reason code of the `LinkDown`s sent when the bridge closes (default `LINK_CLOSED`). */
  readonly closeReasonCode?: string;
  /** Told of each link up and down (for logs). */
  readonly onLink?: (event: 'up' | 'down', linkId: LinkId, detail: string) => void;
}

interface Queue {
  readonly info: LinkInfo;
  frames: Uint8Array[];
  bytes: number;
}

/** Serves `driver`'s links as transport `transport`; see the module comment. */
export function serveLinkDriver(
  bus: Bus,
  subjects: Subjects,
  transport: ServiceName,
  driver: LinkDriver,
  options: LinkBridgeOptions = {},
): LinkBridge {
  const maxQueuedBytes = options.maxQueuedBytes ?? 8 * 1024 * 1024;
  const maxQueuedFrames = options.maxQueuedFrames ?? Infinity;
  const counters: LinkBridgeCounters = {
    framesToBus: 0,
    framesFromBus: 0,
    unknownLink: 0,
    queueDrops: 0,
    tooLarge: 0,
    undecodable: 0,
  };
  const queues = new Map<LinkId, Queue>();
  const linkUp = (info: LinkInfo): v1.ILinkUp => ({
    linkId: info.id,
    transport: info.transport,
    capabilities: info.capabilities,
    remoteAddress: info.remoteAddress,
    ...(info.permissions === undefined ? {} : { permissions: info.permissions }),
    ...(info.principal ? { principal: info.principal } : {}),
  });
  const publishDown = (linkId: LinkId, reasonCode: string, reason: string): void =>
    bus.publish(
      subjects.linkEvent(transport, 'down'),
      v1.LinkDown.encode({ linkId, transport, reasonCode, reason }).finish(),
    );
  const flush = (linkId: LinkId): void => {
    const q = queues.get(linkId);
    while (q !== undefined && q.frames.length > 0) {
      const head = q.frames[0] as Uint8Array;
      if (!driver.send(linkId, head)) return;
      q.frames.shift();
      q.bytes -= head.length;
    }
  };
  const stopListening = driver.listen((e) => {
    switch (e.type) {
      case 'up':
        queues.set(e.link.id, { info: e.link, frames: [], bytes: 0 });
        bus.publish(subjects.linkEvent(transport, 'up'), v1.LinkUp.encode(linkUp(e.link)).finish());
        options.onLink?.('up', e.link.id, e.link.remoteAddress);
        return;
      case 'down':
        queues.delete(e.linkId);
        publishDown(e.linkId, e.reasonCode, e.reason);
        options.onLink?.('down', e.linkId, e.reasonCode);
        return;
      case 'frame':
        // Encoded (copied) at once: the frame is valid only during this event.
        counters.framesToBus++;
        bus.publish(
          subjects.framesIn(transport, e.linkId),
          v1.LinkFrame.encode({ linkId: e.linkId, data: e.data }).finish(),
        );
        return;
      case 'writable':
        flush(e.linkId);
        return;
    }
  });

  const onOut = (data: Uint8Array): void => {
    let frame: v1.LinkFrame;
    try {
      frame = v1.LinkFrame.decode(data);
    } catch {
      counters.undecodable++; // Not a LinkFrame: the bus is shared, so skip it.
      return;
    }
    const linkId = asLinkId(frame.linkId);
    const q = queues.get(linkId);
    if (q === undefined) {
      counters.unknownLink++;
      return;
    }
    counters.framesFromBus++;
    // A copy, as the link contract asks of a caller that does not own its frame: protobufjs
    // hands out a view of the bus message, and the bus does not promise that nobody reuses that
    // memory while the driver still holds the frame (a driver may write it to its socket
    // later, uncopied). Next to the protobuf decode and the bus hop the copy is small.
    const bytes = new Uint8Array(frame.data);
    try {
      if (q.frames.length === 0 && driver.send(linkId, bytes)) return;
    } catch (error) {
      if (!hasCode(error, 'MUX_FRAME_TOO_LARGE')) throw error;
      counters.tooLarge++;
      return;
    }
    if (q.bytes + bytes.length > maxQueuedBytes || q.frames.length >= maxQueuedFrames) {
      counters.queueDrops++;
      return;
    }
    q.frames.push(bytes);
    q.bytes += bytes.length;
  };
  const sub: Subscription = bus.subscribe(subjects.allFramesOut(transport), {
    maxPending: 1_000_000,
  });
  const loop = (async () => {
    for await (const m of sub) onOut(m.data);
  })();

  const servers: Server[] = [
    serve(
      bus,
      subjects.request(transport, 'links'),
      () => v1.LinkList.encode({ links: [...queues.values()].map((q) => linkUp(q.info)) }).finish(),
      { service: transport },
    ),
    serve(
      bus,
      subjects.request(transport, 'close-link'),
      (request) => {
        const req = v1.LinkCloseRequest.decode(request.data);
        const linkId = asLinkId(req.linkId);
        const closed = queues.has(linkId);
        if (closed) driver.closeLink(linkId, req.reasonCode, req.reason);
        return v1.LinkCloseReply.encode({ closed }).finish();
      },
      { service: transport },
    ),
  ];

  return {
    counters,
    get links() {
      return queues.size;
    },
    async close() {
      stopListening();
      for (const linkId of queues.keys()) {
        publishDown(linkId, options.closeReasonCode ?? 'LINK_CLOSED', 'transport stopping');
      }
      queues.clear();
      sub.unsubscribe();
      await Promise.all(servers.map((s) => s.stop()));
      await loop;
    },
  };
}
