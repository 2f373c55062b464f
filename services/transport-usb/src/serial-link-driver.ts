/**
 * A {@link LinkDriver} over serial ports (USB-serial adapters, CDC-ACM devices), with `serialport`.
 *
 * @remarks
 * One link per open port. A serial line has no peer address: the link comes up when the port
 * opens (its `remoteAddress` is the port path) and the multiplexer's handshake names the peer.
 * Frames travel in the COBS + CRC-32 framing of `serial-codec.ts`; a corrupted frame is dropped
 * and counted, so the link is declared `reliable: false`, `ordered: true`, `checksummed: true`
 * and the multiplexer retransmits what was lost.
 *
 * - **Frame size and bandwidth**: a UART sends 10 bits per byte (start, 8 data, stop), so the
 *   link advertises `baud / 10` bytes/s and a max frame that takes at most `frameLatencyMs`
 *   (default 20 ms) on the wire, so a control frame never waits long behind a bulk one.
 * - **Keepalive**: every `keepaliveMs` without a frame sent, a KEEPALIVE frame goes out; when
 *   nothing valid arrives for `silenceMs`, the link goes down (`USB_LINK_SILENT`) while the port
 *   stays open, and a new link comes up at the next valid frame.
 * - **Unplug**: when the port closes or fails, the link goes down and the port is reopened with
 *   exponential backoff (`reopenMinMs` … `reopenMaxMs`); `closeLink` closes the port the same way
 *   (a refused handshake is retried after the backoff).
 * - **Writes and backpressure**: frames are encoded straight into one batch buffer, and the frames
 *   sent in one turn of the event loop go to the port as one write (a write costs a system call
 *   and a thread-pool round trip, whatever its size); a burst goes out in quarters of the
 *   high-water mark, so the port writes one quarter while the sender encodes the next.
 *   `send` takes a frame while the bytes queued for the port are under the high-water mark and
 *   refuses it (false) above; `writable` follows when a write completes under the mark. By
 *   default the mark holds `queueMs` (50 ms) of what the port was measured to drain, and at
 *   least four max frames: on a real UART that is a few frames, so a control frame never waits
 *   long behind bulk data; on a pty or a fast CDC-ACM port it grows so throughput is not capped
 *   by the number of writes.
 * - **serialport's poller**: on Linux and macOS each opened port's poller is wrapped
 *   (`unix-poller.ts`) so that a write blocked on a full output buffer is not forgotten when a
 *   read starts waiting — without it a transfer could stall until the peer's next keepalive.
 * - **Watching** (`watch: true`): `SerialPort.list()` is polled and every USB port it reports
 *   (one with a vendor id) is opened too; a port that disappears is closed. Listing fails on
 *   machines without udev: the failure is reported once through `onError` and the configured
 *   paths keep working.
 */
import { basename } from 'node:path';
import { SerialPort } from 'serialport';
import {
  asLinkId,
  MIN_FRAME_BYTES,
  muxError,
  type LinkCapabilities,
  type LinkDriver,
  type LinkEvent,
  type LinkId,
  type LinkInfo,
  type LinkListener,
} from '@lattice/multiplexer';
import { v1 } from '@lattice/proto';
import { usbError, type UsbError } from './errors.js';
import { guardUnixPoller } from './unix-poller.js';
import {
  encodedFrameBytes,
  encodeSerialFrameInto,
  SerialFrameDecoder,
  SerialFrameType,
  type SerialDecoderCounters,
} from './serial-codec.js';

/** A port as a lister reports it (the fields of `serialport`'s `PortInfo` this driver reads). */
export interface SerialPortInfo {
  readonly path: string;
  readonly vendorId?: string | undefined;
}

/** Settings of a {@link SerialLinkDriver}. */
export interface SerialLinkDriverOptions {
  /** Serial paths to open (`/dev/ttyUSB0`, `/dev/ttyACM0`). */
  readonly ports: readonly string[];
  /** Line speed (default 115 200). */
  readonly baudRate?: number;
  /** RTS/CTS hardware flow control (default false). */
  readonly rtscts?: boolean;
  /** Also open every USB port `listPorts` reports (default false). */
  readonly watch?: boolean;
  /** How often ports are listed when watching (default 2 000 ms). */
  readonly watchIntervalMs?: number;
  /** Lists ports (default `SerialPort.list`). */
  readonly listPorts?: () => Promise<readonly SerialPortInfo[]>;
  /** Longest time one max-size frame may take on the wire (default 20 ms). */
  readonly frameLatencyMs?: number;
  /** Send a keepalive after this long without sending (default 1 000 ms). */
  readonly keepaliveMs?: number;
  /** Declare the link down after this long without a valid frame (default 3 500 ms). */
  readonly silenceMs?: number;
  /** Bytes queued for the port above which `send` refuses frames (default: adaptive, see the module comment). */
  readonly highWaterMarkBytes?: number;
  /** Time of line throughput the adaptive high-water mark holds (default 50 ms). */
  readonly queueMs?: number;
  /** First reopen delay after a port closed (default 100 ms). */
  readonly reopenMinMs?: number;
  /** Longest reopen delay (default 5 000 ms). */
  readonly reopenMaxMs?: number;
  /** Driver name for logs (default `transport-usb`). */
  readonly name?: string;
  /** Told about port failures and dropped frames (for logs); never required to act. */
  readonly onError?: (error: UsbError, path: string) => void;
}

/** Counters of one port, over all its links. */
export interface SerialPortCounters extends SerialDecoderCounters {
  readonly path: string;
  opens: number;
  openFailures: number;
  closes: number;
  silences: number;
  framesSent: number;
  bytesSent: number;
  keepalivesSent: number;
  bytesReceived: number;
}

const DEFAULT_BAUD = 115_200;
/**
 * The biggest frame advertised whatever the baud rate.
 * @remarks The 20 ms rule alone decides up to 8.2 Mbaud (4 Mbaud: 8 000 B); above, only CDC-ACM
 * ports and ptys, whose "baud" is nominal. The cap bounds what one corrupted frame loses (the
 * multiplexer resends it) and the decoder's buffer. It was 4 096 B; at 16 KiB a fast port pays
 * each frame's fixed CPU (a CRC call, a COBS pass, an event, on each side) half or a quarter as
 * often per megabyte, and a max frame still takes 20 ms or less of line time at its baud.
 */
const MAX_ADVERTISED_FRAME = 16_384;
/** The smallest, so that even 9 600 baud carries a useful payload. */
const MIN_ADVERTISED_FRAME = 64;

/** Bytes per second a UART carries at `baudRate` (10 bits per byte: start, 8 data, stop). */
export function serialBandwidth(baudRate: number): number {
  return Math.floor(baudRate / 10);
}

/** The max frame advertised at `baudRate` so that one frame takes about `frameLatencyMs`. */
export function serialMaxFrameBytes(baudRate: number, frameLatencyMs = 20): number {
  const fits = Math.floor((serialBandwidth(baudRate) * frameLatencyMs) / 1000);
  return Math.max(MIN_ADVERTISED_FRAME, MIN_FRAME_BYTES, Math.min(MAX_ADVERTISED_FRAME, fits));
}

type ResolvedOptions = Required<Omit<SerialLinkDriverOptions, 'onError' | 'ports' | 'name'>>;

/** See the module comment. */
export class SerialLinkDriver implements LinkDriver {
  readonly name: string;
  readonly capabilities: LinkCapabilities;
  readonly #options: ResolvedOptions;
  readonly #onError: (error: UsbError, path: string) => void;
  readonly #lines = new Map<string, SerialLine>();
  /** Replaced, never mutated: an emit in progress keeps the listeners it started with. */
  #listeners: readonly LinkListener[] = [];
  /** The line of the last frame sent (see `#lineOf`). */
  #lastLine: SerialLine | undefined;
  readonly #configured: readonly string[];
  #watchTimer: NodeJS.Timeout | undefined;
  #listFailed = false;
  #closed = false;

  constructor(options: SerialLinkDriverOptions) {
    const baudRate = options.baudRate ?? DEFAULT_BAUD;
    if (!Number.isInteger(baudRate) || baudRate <= 0) {
      throw new RangeError(`baudRate must be a positive whole number, got ${baudRate}`);
    }
    this.name = options.name ?? 'transport-usb';
    const frameLatencyMs = options.frameLatencyMs ?? 20;
    const maxFrameBytes = serialMaxFrameBytes(baudRate, frameLatencyMs);
    this.#options = {
      baudRate,
      rtscts: options.rtscts ?? false,
      watch: options.watch ?? false,
      watchIntervalMs: options.watchIntervalMs ?? 2_000,
      listPorts: options.listPorts ?? (() => SerialPort.list()),
      frameLatencyMs,
      keepaliveMs: options.keepaliveMs ?? 1_000,
      silenceMs: options.silenceMs ?? 3_500,
      highWaterMarkBytes: options.highWaterMarkBytes ?? 0,
      queueMs: options.queueMs ?? 50,
      reopenMinMs: options.reopenMinMs ?? 100,
      reopenMaxMs: options.reopenMaxMs ?? 5_000,
    };
    this.#onError = options.onError ?? (() => undefined);
    this.capabilities = {
      maxFrameBytes,
      kind: v1.LinkKind.LINK_KIND_STREAM,
      // Frames lost to line noise are dropped by the CRC, not repaired: the multiplexer resends.
      reliable: false,
      ordered: true,
      bandwidthBytesPerS: serialBandwidth(baudRate),
      latencyMs: Math.max(1, Math.ceil(frameLatencyMs)),
      checksummed: true,
    };
    this.#configured = [...new Set(options.ports)];
    for (const path of this.#configured) this.#addLine(path);
    if (this.#options.watch) this.#watch();
  }

  /** Counters of every port. */
  get counters(): readonly SerialPortCounters[] {
    return [...this.#lines.values()].map((l) => l.counters);
  }

  /** Links currently up. */
  get links(): readonly LinkInfo[] {
    return [...this.#lines.values()].flatMap((l) => (l.link === undefined ? [] : [l.link]));
  }

  listen(listener: LinkListener): () => void {
    this.#listeners = [...this.#listeners, listener];
    for (const link of this.links) listener({ type: 'up', link });
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  send(linkId: LinkId, frame: Uint8Array): boolean {
    const line = this.#lineOf(linkId);
    if (line === undefined) return false;
    if (frame.length > this.capabilities.maxFrameBytes) {
      throw muxError('MUX_FRAME_TOO_LARGE', `frame of ${frame.length} bytes on link ${linkId}`, {
        linkId,
        bytes: String(frame.length),
        max: String(this.capabilities.maxFrameBytes),
      });
    }
    return line.sendData(frame);
  }

  closeLink(linkId: LinkId, reasonCode: string, reason: string): void {
    this.#lineOf(linkId)?.restart(reasonCode, reason);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#watchTimer);
    this.#listeners = [];
    await Promise.all([...this.#lines.values()].map((l) => l.close()));
  }

  #lineOf(linkId: LinkId): SerialLine | undefined {
    // Every frame sent looks its line up: the last one found is tried first.
    if (this.#lastLine?.link?.id === linkId) return this.#lastLine;
    for (const l of this.#lines.values()) {
      if (l.link?.id === linkId) return (this.#lastLine = l);
    }
    return undefined;
  }

  #addLine(path: string): void {
    const line = new SerialLine(path, this.#options, this.capabilities, {
      emit: (e) => this.#emit(e),
      error: (e) => this.#onError(e, path),
    });
    this.#lines.set(path, line);
    line.open();
  }

  #watch(): void {
    const tick = async (): Promise<void> => {
      let ports: readonly SerialPortInfo[];
      try {
        ports = await this.#options.listPorts();
        this.#listFailed = false;
      } catch (cause) {
        // Without udev/sysfs listing fails; configured ports still work, so report it once.
        if (!this.#listFailed) {
          this.#listFailed = true;
          this.#onError(usbError('USB_LIST_FAILED', 'cannot list serial ports', {}, cause), '');
        }
        return;
      }
      if (this.#closed) return;
      const present = new Set(ports.map((p) => p.path));
      for (const p of ports) {
        const line = this.#lines.get(p.path);
        if (line === undefined && p.vendorId !== undefined) this.#addLine(p.path);
        else line?.appeared();
      }
      for (const [path, line] of this.#lines) {
        if (!present.has(path) && !this.#configured.includes(path)) {
          this.#lines.delete(path);
          await line.close();
        }
      }
    };
    const loop = (): void => {
      this.#watchTimer = setTimeout(() => {
        void tick().finally(() => {
          if (!this.#closed) loop();
        });
      }, this.#options.watchIntervalMs);
      this.#watchTimer.unref();
    };
    void tick().finally(() => {
      if (!this.#closed) loop();
    });
  }

  #emit(event: LinkEvent): void {
    if (this.#closed) return;
    for (const l of this.#listeners) l(event);
  }
}

const EMPTY = new Uint8Array(0);

interface LineHooks {
  emit(event: LinkEvent): void;
  error(error: UsbError): void;
}

/** One serial path: its port (when open), its link (when up), and its reopen schedule. */
class SerialLine {
  readonly path: string;
  readonly #counters: SerialPortCounters;
  link: LinkInfo | undefined;
  readonly #options: ResolvedOptions;
  readonly #capabilities: LinkCapabilities;
  readonly #hooks: LineHooks;
  readonly #decoder: SerialFrameDecoder;
  readonly #token: string;
  #port: SerialPort | undefined;
  #generation = 0;
  #blocked = false;
  /** Settles when the last `port.open` called back. */
  #opening: Promise<void> | undefined;
  /** Settles when the last port closed. */
  #closing: Promise<void> | undefined;
  /** Frames of this event-loop turn, encoded one after the other, written together by `#flush`. */
  #batch: Buffer | undefined;
  /** A written batch buffer, reused for the next batch. */
  #spare: Buffer | undefined;
  #batchBytes = 0;
  #flushScheduled = false;
  /** Measured drain rate of the port (bytes/s, moving average); 0 until measured. */
  #drainRate = 0;
  /** The drain rate before the latest sample, and that sample (see `#measure`). */
  #rateBefore = 0;
  #sampleBytes = 0;
  #sampleMs = 0;
  #lastDone = 0;
  readonly #minMark: number;
  /** Line bytes of a max-size frame, delimiters included. */
  readonly #maxFrameOnLine: number;
  #lastSent = 0;
  #lastReceived = 0;
  #timer: NodeJS.Timeout | undefined;
  #reopenTimer: NodeJS.Timeout | undefined;
  #backoffMs: number;
  #closed = false;

  constructor(
    path: string,
    options: ResolvedOptions,
    capabilities: LinkCapabilities,
    hooks: LineHooks,
  ) {
    this.path = path;
    this.#options = options;
    this.#capabilities = capabilities;
    this.#hooks = hooks;
    this.#backoffMs = options.reopenMinMs;
    this.#maxFrameOnLine = encodedFrameBytes(capabilities.maxFrameBytes);
    this.#minMark = 4 * this.#maxFrameOnLine;
    this.#token =
      basename(path)
        .replace(/[^A-Za-z0-9_-]/g, '_')
        .slice(0, 100) || 'port';
    this.#counters = {
      path,
      frames: 0,
      corrupt: 0,
      oversized: 0,
      droppedBytes: 0,
      opens: 0,
      openFailures: 0,
      closes: 0,
      silences: 0,
      framesSent: 0,
      bytesSent: 0,
      keepalivesSent: 0,
      bytesReceived: 0,
    };
    this.#decoder = new SerialFrameDecoder({
      maxPayloadBytes: capabilities.maxFrameBytes,
      onFrame: (type, payload) => this.#onFrame(type, payload),
      onDrop: (e) => this.#hooks.error(e),
    });
  }

  /** Counters of this port; the decoder's are copied in when read, not on every frame. */
  get counters(): SerialPortCounters {
    const c = this.#decoder.counters;
    this.#counters.frames = c.frames;
    this.#counters.corrupt = c.corrupt;
    this.#counters.oversized = c.oversized;
    this.#counters.droppedBytes = c.droppedBytes;
    return this.#counters;
  }

  open(): void {
    if (this.#closed || this.#port !== undefined) return;
    clearTimeout(this.#reopenTimer);
    this.#reopenTimer = undefined;
    const port = new SerialPort({
      path: this.path,
      baudRate: this.#options.baudRate,
      rtscts: this.#options.rtscts,
      autoOpen: false,
      // Backpressure is this class's own (see #mark); the stream's `write()` result is ignored
      // (it queues anyway). Its highWaterMark stays the default: it also sizes the read pool.
    });
    this.#port = port;
    port.on('data', (chunk: Buffer) => {
      if (this.#port !== port) return;
      this.#counters.bytesReceived += chunk.length;
      this.#decoder.push(chunk);
    });
    port.on('error', (cause: Error) => this.#lost(port, 'USB_PORT_CLOSED', cause));
    port.on('close', (cause: Error | null) =>
      this.#lost(port, 'USB_PORT_CLOSED', cause ?? undefined),
    );
    let opened: () => void = () => undefined;
    this.#opening = new Promise<void>((resolve) => (opened = resolve));
    port.open((cause) => {
      opened();
      if (this.#port !== port) {
        // Detached (closeLink, driver closed) while opening: close what just opened.
        if (cause === null) this.#closing = closePort(port);
        return;
      }
      if (cause !== null) {
        this.#counters.openFailures++;
        this.#port = undefined;
        this.#hooks.error(
          usbError('USB_PORT_OPEN_FAILED', `cannot open ${this.path}`, { path: this.path }, cause),
        );
        this.#scheduleReopen();
        return;
      }
      if (this.#closed) {
        port.close(() => undefined);
        return;
      }
      // Before the first read or write can wait on the poller (see unix-poller.ts).
      guardUnixPoller(port.port);
      this.#counters.opens++;
      this.#decoder.reset();
      this.#linkUp();
      this.#timer = setInterval(() => this.#tick(), Math.max(10, this.#options.keepaliveMs / 4));
      this.#timer.unref();
    });
  }

  /** A watched listing shows the port: skip the rest of the backoff. */
  appeared(): void {
    if (this.#port === undefined && this.#reopenTimer !== undefined) this.open();
  }

  sendData(frame: Uint8Array): boolean {
    if (this.link === undefined || this.#blocked) return false;
    this.#counters.framesSent++;
    // Taken even when this write crosses the high-water mark: the next send is the one refused.
    this.#write(SerialFrameType.DATA, frame);
    return true;
  }

  /** Closes the port (link down with the given reason) and reopens it after the backoff. */
  restart(reasonCode: string, reason: string): void {
    const port = this.#port;
    if (port === undefined) return;
    this.#detach(port, reasonCode, reason);
    this.#scheduleReopen();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reopenTimer);
    const port = this.#port;
    if (port !== undefined) this.#detach(port, 'USB_CLOSED', 'driver closed');
    await this.#opening;
    await this.#closing;
  }

  /** Encodes a frame into this turn's write; blocks `send` when over the high-water mark. */
  #write(type: SerialFrameType, payload: Uint8Array): void {
    const port = this.#port;
    if (port === undefined) return;
    this.#lastSent = Date.now();
    const need = encodedFrameBytes(payload.length);
    const mark = this.#mark();
    // A burst goes out in quarters of the mark rather than one write at the end of the turn:
    // when the first quarter is written the sender is woken while the rest is still in flight,
    // so encoding the next frames overlaps the port's writing instead of following it.
    const flushAt = Math.max(this.#minMark, mark / 4);
    let batch = this.#batch;
    if (batch === undefined || batch.length - this.#batchBytes < need) {
      // Sized for a whole quarter and one max frame, so a batch does not grow while it fills
      // (it can only when the mark rose meanwhile). A buffer whose write completed is reused:
      // a steady stream allocates nothing.
      const size = Math.max(
        Math.ceil(flushAt) + this.#maxFrameOnLine,
        2 * (this.#batchBytes + need),
      );
      const spare = this.#spare;
      let grown: Buffer;
      if (spare !== undefined && spare.length >= size) {
        grown = spare;
        this.#spare = undefined;
      } else {
        grown = Buffer.allocUnsafe(size);
      }
      if (batch !== undefined) batch.copy(grown, 0, 0, this.#batchBytes);
      batch = this.#batch = grown;
    }
    const end = encodeSerialFrameInto(type, payload, batch, this.#batchBytes);
    this.#counters.bytesSent += end - this.#batchBytes;
    this.#batchBytes = end;
    if (end >= flushAt) {
      this.#flush(port);
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush(port);
      });
    }
    if (this.#queuedBytes(port) >= mark) this.#blocked = true;
  }

  #flush(port: SerialPort): void {
    const batch = this.#batch;
    const bytes = this.#batchBytes;
    this.#batch = undefined;
    this.#batchBytes = 0;
    if (this.#port !== port || batch === undefined || bytes === 0) return;
    const started = performance.now();
    port.write(batch.subarray(0, bytes), (cause) => {
      if (cause !== null && cause !== undefined) {
        this.#lost(port, 'USB_WRITE_FAILED', cause);
        return;
      }
      this.#measure(bytes, started);
      // Written: the stream holds no reference to it any more; keep the largest for reuse.
      if (this.#spare === undefined || this.#spare.length < batch.length) this.#spare = batch;
      if (this.#port !== port || !this.#blocked) return;
      // Under the mark, or nothing left in flight (the mark may have shrunk since `send` was
      // refused; without this, no later completion would ever wake the sender).
      if (this.#queuedBytes(port) < this.#mark() || port.writableLength === 0) {
        this.#blocked = false;
        if (this.link !== undefined) this.#hooks.emit({ type: 'writable', linkId: this.link.id });
      }
    });
  }

  #queuedBytes(port: SerialPort): number {
    return port.writableLength + this.#batchBytes;
  }

  /** The high-water mark: fixed when configured, else `queueMs` of the measured drain rate. */
  #mark(): number {
    if (this.#options.highWaterMarkBytes > 0) return this.#options.highWaterMarkBytes;
    const adaptive = (this.#drainRate * this.#options.queueMs) / 1000;
    return Math.min(1 << 20, Math.max(this.#minMark, Math.floor(adaptive)));
  }

  /**
   * Updates the drain rate from a completed write: its bytes over the time since it started or
   * the previous write ended.
   * @remarks Writes queued behind a busy one are written together (the stream's `_writev`) and
   * complete in the same instant: they are one sample, not one real sample and several of
   * almost zero time. Counted apart, each would read as gigabytes per second and inflate the
   * high-water mark to its cap — seconds of queue on a real UART.
   */
  #measure(bytes: number, started: number): void {
    const now = performance.now();
    if (this.#sampleMs > 0 && now - this.#lastDone < 0.05) {
      this.#sampleBytes += bytes;
    } else {
      this.#rateBefore = this.#drainRate;
      this.#sampleBytes = bytes;
      this.#sampleMs = Math.max(0.05, now - Math.max(started, this.#lastDone));
      this.#lastDone = now;
    }
    const rate = (this.#sampleBytes * 1000) / this.#sampleMs;
    this.#drainRate = this.#rateBefore === 0 ? rate : 0.8 * this.#rateBefore + 0.2 * rate;
  }

  /** A good frame; `payload` is the decoder's, valid only during this call (and the event's). */
  #onFrame(type: SerialFrameType, payload: Uint8Array): void {
    this.#lastReceived = Date.now();
    this.#backoffMs = this.#options.reopenMinMs;
    if (this.link === undefined) this.#linkUp(); // a silent line spoke again
    const link = this.link;
    if (type === SerialFrameType.DATA && link !== undefined) {
      this.#hooks.emit({ type: 'frame', linkId: link.id, data: payload });
    }
  }

  #tick(): void {
    const now = Date.now();
    if (now - this.#lastSent >= this.#options.keepaliveMs && !this.#blocked && this.#port) {
      this.#counters.keepalivesSent++;
      this.#write(SerialFrameType.KEEPALIVE, EMPTY);
    }
    const link = this.link;
    if (link !== undefined && now - this.#lastReceived >= this.#options.silenceMs) {
      this.#counters.silences++;
      this.link = undefined;
      const error = usbError(
        'USB_LINK_SILENT',
        `nothing received on ${this.path} for ${this.#options.silenceMs} ms`,
        {
          path: this.path,
        },
      );
      this.#hooks.error(error);
      this.#hooks.emit({
        type: 'down',
        linkId: link.id,
        reasonCode: error.code,
        reason: error.message,
      });
    }
  }

  #linkUp(): void {
    this.#generation++;
    this.#lastReceived = Date.now();
    this.#blocked = false;
    this.link = {
      id: asLinkId(`${this.#token}-${this.#generation}`),
      transport: 'usb',
      capabilities: this.#capabilities,
      remoteAddress: this.path,
    };
    this.#hooks.emit({ type: 'up', link: this.link });
  }

  /** The port failed or closed under us: link down, reopen later. */
  #lost(
    port: SerialPort,
    code: 'USB_PORT_CLOSED' | 'USB_WRITE_FAILED',
    cause: Error | undefined,
  ): void {
    if (this.#port !== port) return; // an old port's late event
    const error = usbError(
      code,
      `${this.path}: ${cause?.message ?? 'closed'}`,
      { path: this.path },
      cause,
    );
    this.#hooks.error(error);
    this.#detach(port, error.code, error.message);
    this.#scheduleReopen();
  }

  /** Forgets the port and closes it, and reports the link down. */
  #detach(port: SerialPort, reasonCode: string, reason: string): void {
    this.#port = undefined;
    this.#counters.closes++;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#blocked = false;
    this.#batch = undefined;
    this.#batchBytes = 0;
    if (port.isOpen) this.#closing = closePort(port);
    const link = this.link;
    this.link = undefined;
    if (link !== undefined) this.#hooks.emit({ type: 'down', linkId: link.id, reasonCode, reason });
  }

  #scheduleReopen(): void {
    if (this.#closed || this.#reopenTimer !== undefined) return;
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#options.reopenMaxMs, this.#backoffMs * 2);
    this.#reopenTimer = setTimeout(() => {
      this.#reopenTimer = undefined;
      this.open();
    }, delay);
    this.#reopenTimer.unref();
  }
}

/** Closes a port; resolves either way (a port whose device vanished may fail to close). */
async function closePort(port: SerialPort): Promise<void> {
  await new Promise<void>((resolve) => port.close(() => resolve()));
}
