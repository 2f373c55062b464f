/**
 * {@link BleLinkDriver}: Bluetooth LE links, as a central (noble) and as a peripheral (bleno).
 *
 * @remarks
 * Each BLE connection that carries the Lattice GATT service (see `gatt.ts`) is one link of kind
 * DATAGRAM: every ATT write or notification is one frame of at most `MTU − 3` bytes. The link layer
 * acknowledges and retransmits every PDU, so a link is reliable and ordered while it is up.
 *
 * - Central: scans for the service with duplicates filtered, restarting the scan every
 *   `scanRestartMs` (a filtered scan reports a device once per scan, so the restart is what tells
 *   "still there" from "gone"); forgets devices not seen for `peerTtlMs`; dials a device only when
 *   our short id is lower than its own ({@link shouldDial}), so two gateways make one connection;
 *   keeps at most `maxConnections` links.
 * - Peripheral: publishes the service and advertises `L<shortId>`; a central's subscription to the
 *   notify characteristic brings the link up, with `maxValueSize` (= MTU − 3) as its frame size.
 *
 * The stacks are loaded lazily through {@link BleStackLoaders} (a dynamic import in production, the
 * real noble/bleno classes over fake bindings in tests). A stack that fails to load or reports
 * anything but `poweredOn` never throws out of the driver: its state is reported through
 * {@link BleLinkDriver.status} and `onStatus`, and `unsupported` or a failed load is retried every
 * `retryMs` with a fresh instance (`poweredOff`, `unauthorized` and `resetting` wait for the stack's
 * own state change).
 *
 * Noble's per-write callback is "exclusive" (a second pending write replaces the first callback),
 * so completions are counted with one persistent `write` listener per characteristic instead.
 */
import type { Bleno, Characteristic as BlenoCharacteristic } from '@stoprocent/bleno';
import type { Characteristic, Noble, Peripheral } from '@stoprocent/noble';
import {
  asLinkId,
  muxError,
  type LinkCapabilities,
  type LinkDriver,
  type LinkEvent,
  type LinkId,
  type LinkInfo,
  type LinkListener,
} from '@lattice/multiplexer';
import { bleError } from './errors.js';
import {
  ATT_HEADER_BYTES,
  LATTICE_RX_UUID,
  LATTICE_SERVICE_UUID,
  LATTICE_TX_UUID,
  clampMtu,
  decodeAdvertisedName,
  encodeAdvertisedName,
  maxFrameBytesForMtu,
  shouldDial,
} from './gatt.js';
import { Pacer } from './pacer.js';

/** `LINK_KIND_DATAGRAM` of `lattice.v1.LinkKind`. */
const LINK_KIND_DATAGRAM = 1;

/** Loads a stack; called again for each retry, so it must return a fresh instance. */
export interface BleStackLoaders {
  readonly central?: () => Promise<Noble>;
  readonly peripheral?: () => Promise<Bleno>;
}

/** The state of one role's stack: an adapter state of noble/bleno, or ours before/without one. */
export type BleAdapterState =
  | 'disabled'
  | 'loading'
  | 'unavailable'
  | 'unknown'
  | 'resetting'
  | 'unsupported'
  | 'unauthorized'
  | 'poweredOff'
  | 'poweredOn';

/** What the driver reports about its stacks. */
export interface BleStatus {
  readonly central: BleAdapterState;
  readonly peripheral: BleAdapterState;
  /** Why the last load or operation failed, empty when none. */
  readonly lastError: string;
  /** Loads attempted so far (both roles). */
  readonly attempts: number;
}

/** Counters of a {@link BleLinkDriver}. */
export interface BleCounters {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  /** Frames `send` refused because the pacer was full. */
  refused: number;
  /** Inbound values dropped: empty, longer than the link's frame size, offset writes, unknown link. */
  droppedMalformed: number;
  /** Inbound values dropped because the remote sent faster than `inboundLimitBytesPerS`. */
  droppedFlood: number;
  /** Dials that failed (connect, discovery, subscription). */
  connectFailures: number;
  /** Connections refused because `maxConnections` links were up. */
  refusedConnections: number;
  /** Writes the stack reported as failed. */
  writeErrors: number;
}

/** Settings of a {@link BleLinkDriver}. */
export interface BleLinkDriverOptions {
  /** Our short peer id, advertised and compared to decide who dials (1–8 of `[0-9A-Za-z_-]`). */
  readonly shortId: string;
  readonly stacks: BleStackLoaders;
  /** Most links at once, over both roles (default 4). */
  readonly maxConnections?: number;
  /**
   * Radio budget per direction and link, in ATT bytes per second: each frame costs its length plus
   * the 3-byte ATT header (default 20 000). Links declare the frame bytes this leaves at full
   * frames (`budget × maxFrame / (maxFrame + 3)`) as their bandwidth.
   */
  readonly bandwidthBytesPerS?: number;
  /** Writes in flight per link at most (default 8). */
  readonly windowFrames?: number;
  /**
   * Air time the driver lets wait in the radio per link (default 40 ms): the window is as many
   * full frames as this holds, at least 3 and at most `windowFrames` (8 at MTU 23, 4 at 185, 3 at
   * 517 with 20 000 B/s).
   */
  readonly radioQueueMs?: number;
  /** Inbound bytes per second per link above which values are dropped (default 4 × bandwidth). */
  readonly inboundLimitBytesPerS?: number;
  /** Forget devices not seen for this long (default 30 000 ms). */
  readonly peerTtlMs?: number;
  /** Restart the filtered scan this often (default 10 000 ms). */
  readonly scanRestartMs?: number;
  /** Housekeeping period: expiry, dialing seen peers (default 1 000 ms). */
  readonly maintainMs?: number;
  /** Retry an unusable stack this often (default 10 000 ms). */
  readonly retryMs?: number;
  /** Give up a dial after this long (default 10 000 ms). */
  readonly connectTimeoutMs?: number;
  /** Wait this long for an MTU exchange that has not happened by discovery's end (default 1 000). */
  readonly mtuWaitMs?: number;
  /** Do not redial a peer for this long after a failed dial or a `closeLink` (default 5 000 ms). */
  readonly redialBackoffMs?: number;
  /** Called on every change of {@link BleLinkDriver.status}. */
  readonly onStatus?: (status: BleStatus) => void;
}

interface Link {
  readonly info: LinkInfo;
  readonly pacer: Pacer;
  readonly inbound: { tokens: number; at: number };
  readonly write: (data: Buffer) => void;
  readonly disconnect: () => void;
  readonly cleanup: () => void;
  readonly shortId: string | undefined;
  /** Largest inbound value accepted (the remote may learn a larger MTU after our link is up). */
  readonly maxInbound: () => number;
  up: boolean;
}

interface SeenPeer {
  readonly shortId: string;
  peripheral: Peripheral;
  lastSeen: number;
  dialing: boolean;
  linkId: LinkId | undefined;
  notBefore: number;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** See the module comment. */
export class BleLinkDriver implements LinkDriver {
  readonly name = 'transport-ble';
  readonly counters: BleCounters = {
    framesIn: 0,
    bytesIn: 0,
    framesOut: 0,
    bytesOut: 0,
    refused: 0,
    droppedMalformed: 0,
    droppedFlood: 0,
    connectFailures: 0,
    refusedConnections: 0,
    writeErrors: 0,
  };
  readonly #shortId: string;
  readonly #stacks: BleStackLoaders;
  readonly #o: {
    maxConnections: number;
    bandwidth: number;
    window: number;
    radioQueueMs: number;
    inboundLimit: number;
    peerTtlMs: number;
    scanRestartMs: number;
    maintainMs: number;
    retryMs: number;
    connectTimeoutMs: number;
    mtuWaitMs: number;
    redialBackoffMs: number;
  };
  readonly #onStatus: ((status: BleStatus) => void) | undefined;
  readonly #listeners = new Set<LinkListener>();
  readonly #links = new Map<LinkId, Link>();
  readonly #seen = new Map<string, SeenPeer>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #status: BleStatus;
  #noble: Noble | undefined;
  #bleno: Bleno | undefined;
  #nextLink = 0;
  #lastScanStart = 0;
  #started = false;
  #closed = false;

  constructor(options: BleLinkDriverOptions) {
    encodeAdvertisedName(options.shortId); // validates
    this.#shortId = options.shortId;
    this.#stacks = options.stacks;
    const bandwidth = options.bandwidthBytesPerS ?? 20_000;
    this.#o = {
      maxConnections: options.maxConnections ?? 4,
      bandwidth,
      window: options.windowFrames ?? 8,
      radioQueueMs: options.radioQueueMs ?? 40,
      inboundLimit: options.inboundLimitBytesPerS ?? 4 * bandwidth,
      peerTtlMs: options.peerTtlMs ?? 30_000,
      scanRestartMs: options.scanRestartMs ?? 10_000,
      maintainMs: options.maintainMs ?? 1_000,
      retryMs: options.retryMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      mtuWaitMs: options.mtuWaitMs ?? 1_000,
      redialBackoffMs: options.redialBackoffMs ?? 5_000,
    };
    this.#onStatus = options.onStatus;
    this.#status = {
      central: options.stacks.central === undefined ? 'disabled' : 'loading',
      peripheral: options.stacks.peripheral === undefined ? 'disabled' : 'loading',
      lastError: '',
      attempts: 0,
    };
  }

  /** The stacks' states, the last error and the load attempts. */
  get status(): BleStatus {
    return this.#status;
  }

  /** Links currently up. */
  get links(): readonly LinkInfo[] {
    return [...this.#links.values()].map((l) => l.info);
  }

  /** Devices seen advertising the Lattice service and not yet forgotten, by short id. */
  get seenPeers(): readonly string[] {
    return [...this.#seen.keys()];
  }

  /** Loads the stacks (in the background) and starts scanning and advertising once powered on. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    if (this.#stacks.central !== undefined) void this.#loadCentral();
    if (this.#stacks.peripheral !== undefined) void this.#loadPeripheral();
    this.#every(this.#o.maintainMs, () => this.#maintain());
  }

  listen(listener: LinkListener): () => void {
    this.#listeners.add(listener);
    for (const l of this.#links.values()) listener({ type: 'up', link: l.info });
    return () => this.#listeners.delete(listener);
  }

  send(linkId: LinkId, frame: Uint8Array): boolean {
    const link = this.#links.get(linkId);
    if (link === undefined || !link.up) return false;
    if (frame.length > link.info.capabilities.maxFrameBytes) {
      throw muxError('MUX_FRAME_TOO_LARGE', `frame of ${frame.length} bytes on link ${linkId}`, {
        linkId,
        bytes: String(frame.length),
        max: String(link.info.capabilities.maxFrameBytes),
      });
    }
    if (!link.pacer.tryTake(frame.length + ATT_HEADER_BYTES)) {
      this.counters.refused++;
      return false;
    }
    this.counters.framesOut++;
    this.counters.bytesOut += frame.length;
    // A copy: the caller may reuse its buffer, and the stack keeps ours until it is on the air.
    link.write(Buffer.from(frame));
    return true;
  }

  closeLink(linkId: LinkId, reasonCode: string, reason: string): void {
    const link = this.#links.get(linkId);
    if (link === undefined) return;
    if (link.shortId !== undefined) {
      const peer = this.#seen.get(link.shortId);
      if (peer !== undefined) peer.notBefore = Date.now() + this.#o.redialBackoffMs;
    }
    this.#down(link, reasonCode, reason);
    link.disconnect();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const link of [...this.#links.values()]) {
      this.#down(link, 'BLE_CLOSED', 'driver closed');
      link.disconnect();
    }
    this.#seen.clear();
    this.#releaseNoble();
    this.#releaseBleno();
  }

  // ---- status and timers ------------------------------------------------------------------

  #setStatus(change: Partial<BleStatus>): void {
    const next = { ...this.#status, ...change };
    if (
      next.central === this.#status.central &&
      next.peripheral === this.#status.peripheral &&
      next.lastError === this.#status.lastError &&
      next.attempts === this.#status.attempts
    ) {
      return;
    }
    this.#status = next;
    try {
      this.#onStatus?.(next);
    } catch {
      // A status listener's failure must not take the radio down; the status stays readable.
    }
  }

  #after(ms: number, run: () => void): void {
    if (this.#closed) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#closed) run();
    }, ms);
    this.#timers.add(t);
  }

  #every(ms: number, run: () => void): void {
    this.#after(ms, () => {
      run();
      this.#every(ms, run);
    });
  }

  // ---- central (noble) ----------------------------------------------------------------------

  async #loadCentral(): Promise<void> {
    const load = this.#stacks.central;
    if (load === undefined || this.#closed) return;
    this.#setStatus({ central: 'loading', attempts: this.#status.attempts + 1 });
    let noble: Noble;
    try {
      noble = await load();
    } catch (error) {
      this.#setStatus({ central: 'unavailable', lastError: `central: ${errorText(error)}` });
      this.#after(this.#o.retryMs, () => void this.#loadCentral());
      return;
    }
    if (this.#closed) {
      safely(() => noble.stop());
      return;
    }
    // Reading `state` initialises the bindings synchronously, here, where a throwing native
    // binding is caught; attaching a `stateChange` listener first would initialise them in a
    // nextTick that no caller can catch.
    let state: Noble['state'];
    try {
      state = noble.state;
    } catch (error) {
      safely(() => noble.stop());
      this.#setStatus({ central: 'unavailable', lastError: `central: ${errorText(error)}` });
      this.#after(this.#o.retryMs, () => void this.#loadCentral());
      return;
    }
    detachSigintHandler(noble);
    this.#noble = noble;
    noble.on('discover', (p: Peripheral) => this.#onDiscover(p));
    noble.on('stateChange', (s) => this.#onCentralState(noble, s));
    noble.on('warning', (message: string) => {
      this.#setStatus({ lastError: `central: ${message}` });
    });
    if (state !== 'unknown') this.#onCentralState(noble, state);
    this.#after(this.#o.retryMs, () => {
      const now = this.#status.central;
      if (this.#noble === noble && (now === 'loading' || now === 'unknown')) this.#retryCentral();
    });
  }

  #onCentralState(noble: Noble, state: Noble['state']): void {
    if (this.#noble !== noble || this.#closed) return;
    this.#setStatus({ central: state });
    if (state === 'poweredOn') {
      this.#startScan();
      return;
    }
    for (const link of [...this.#links.values()]) {
      if (link.shortId !== undefined) this.#down(link, 'BLE_DISCONNECTED', `adapter ${state}`);
    }
    if (state === 'unsupported') this.#after(this.#o.retryMs, () => this.#retryCentral());
  }

  #retryCentral(): void {
    this.#releaseNoble();
    void this.#loadCentral();
  }

  #releaseNoble(): void {
    const noble = this.#noble;
    if (noble === undefined) return;
    this.#noble = undefined;
    noble.removeAllListeners('discover');
    noble.removeAllListeners('stateChange');
    noble.removeAllListeners('warning');
    safely(() => noble.stop());
  }

  #startScan(): void {
    const noble = this.#noble;
    if (noble === undefined) return;
    this.#lastScanStart = Date.now();
    noble.startScanning([LATTICE_SERVICE_UUID], false, (error) => {
      if (error !== undefined && error !== null) {
        this.#setStatus({ lastError: `central: ${errorText(error)}` });
      }
    });
  }

  #restartScan(): void {
    const noble = this.#noble;
    if (noble === undefined || this.#status.central !== 'poweredOn') return;
    this.#lastScanStart = Date.now();
    noble.stopScanning(() => {
      if (this.#noble === noble && !this.#closed) this.#startScan();
    });
  }

  #onDiscover(p: Peripheral): void {
    const shortId = decodeAdvertisedName(p.advertisement.localName);
    if (shortId === undefined || shortId === this.#shortId) return;
    const now = Date.now();
    const peer = this.#seen.get(shortId);
    if (peer === undefined) {
      this.#seen.set(shortId, {
        shortId,
        peripheral: p,
        lastSeen: now,
        dialing: false,
        linkId: undefined,
        notBefore: 0,
      });
    } else {
      peer.peripheral = p;
      peer.lastSeen = now;
    }
    this.#maybeDial(shortId);
  }

  #maintain(): void {
    const now = Date.now();
    if (now - this.#lastScanStart >= this.#o.scanRestartMs) this.#restartScan();
    for (const peer of [...this.#seen.values()]) {
      if (peer.linkId === undefined && !peer.dialing && now - peer.lastSeen > this.#o.peerTtlMs) {
        this.#seen.delete(peer.shortId);
      } else {
        this.#maybeDial(peer.shortId);
      }
    }
  }

  #maybeDial(shortId: string): void {
    const peer = this.#seen.get(shortId);
    if (peer === undefined || peer.dialing || peer.linkId !== undefined || this.#closed) return;
    if (!shouldDial(this.#shortId, shortId)) return;
    if (this.#status.central !== 'poweredOn' || Date.now() < peer.notBefore) return;
    if (this.#links.size >= this.#o.maxConnections) return;
    void this.#dial(peer);
  }

  async #dial(peer: SeenPeer): Promise<void> {
    peer.dialing = true;
    const p = peer.peripheral;
    let link: Link | undefined;
    try {
      await withTimeout(p.connectAsync(), this.#o.connectTimeoutMs, () => {
        safely(() => p.cancelConnect());
      });
      const { characteristics } = await p.discoverSomeServicesAndCharacteristicsAsync(
        [LATTICE_SERVICE_UUID],
        [LATTICE_RX_UUID, LATTICE_TX_UUID],
      );
      const rx = characteristics.find(
        (c) => c.uuid === LATTICE_RX_UUID && c.properties.includes('writeWithoutResponse'),
      );
      const tx = characteristics.find(
        (c) => c.uuid === LATTICE_TX_UUID && c.properties.includes('notify'),
      );
      if (rx === undefined || tx === undefined) {
        throw bleError(
          'BLE_GATT_MISMATCH',
          `peer ${peer.shortId} lacks the Lattice characteristics`,
        );
      }
      if (p.mtu === null) await waitForMtu(p, this.#o.mtuWaitMs);
      link = this.#centralLink(peer, p, rx, tx);
      await tx.subscribeAsync();
      if (this.#closed || p.state !== 'connected' || this.#links.size >= this.#o.maxConnections) {
        link.cleanup();
        if (this.#links.size >= this.#o.maxConnections) this.counters.refusedConnections++;
        safely(() => p.disconnect());
        return;
      }
      this.#up(link);
      peer.linkId = link.info.id;
    } catch (error) {
      link?.cleanup();
      this.counters.connectFailures++;
      peer.notBefore = Date.now() + this.#o.redialBackoffMs;
      this.#setStatus({ lastError: `dial ${peer.shortId}: ${errorText(error)}` });
      safely(() => p.disconnect());
    } finally {
      peer.dialing = false;
    }
  }

  #centralLink(peer: SeenPeer, p: Peripheral, rx: Characteristic, tx: Characteristic): Link {
    const mtu = clampMtu(p.mtu);
    const id = asLinkId(`c${this.#nextLink++}`);
    const onData = (data: Buffer): void => this.#onValue(link, data);
    const onWrite = (error: Error | undefined): void => {
      link.pacer.complete();
      if (error !== undefined && error !== null) {
        this.counters.writeErrors++;
        this.closeLink(id, 'BLE_WRITE_FAILED', errorText(error));
      }
    };
    const onDisconnect = (reason: unknown): void => {
      this.#down(link, 'BLE_DISCONNECTED', `disconnected: ${String(reason)}`);
    };
    const link: Link = this.#newLink(id, mtu, `${p.address}`, peer.shortId, {
      // An MTU exchange that ends after the link came up leaves our frames at the old size (the
      // capabilities of a link do not change), but the peripheral may already use the new one.
      maxInbound: () => maxFrameBytesForMtu(Math.max(mtu, p.mtu ?? 0)),
      write: (data) => rx.write(data, true),
      disconnect: () => safely(() => p.disconnect()),
      cleanup: () => {
        tx.removeListener('data', onData);
        rx.removeListener('write', onWrite);
        p.removeListener('disconnect', onDisconnect);
        if (peer.linkId === id) peer.linkId = undefined;
      },
    });
    tx.on('data', onData);
    rx.on('write', onWrite);
    p.once('disconnect', onDisconnect);
    return link;
  }

  // ---- peripheral (bleno) -------------------------------------------------------------------

  async #loadPeripheral(): Promise<void> {
    const load = this.#stacks.peripheral;
    if (load === undefined || this.#closed) return;
    this.#setStatus({ peripheral: 'loading', attempts: this.#status.attempts + 1 });
    let bleno: Bleno;
    try {
      bleno = await load();
    } catch (error) {
      this.#setStatus({ peripheral: 'unavailable', lastError: `peripheral: ${errorText(error)}` });
      this.#after(this.#o.retryMs, () => void this.#loadPeripheral());
      return;
    }
    if (this.#closed) {
      safely(() => bleno.stop());
      return;
    }
    this.#bleno = bleno;
    const byHandle = new Map<string, LinkId>();
    const addresses = new Map<string, string>();
    const rx = new bleno.Characteristic({
      uuid: LATTICE_RX_UUID,
      properties: ['writeWithoutResponse'],
      onWriteRequest: (handle, data, offset, withoutResponse, callback) => {
        const link = this.#links.get(byHandle.get(String(handle)) ?? asLinkId(''));
        if (link === undefined || offset !== 0) {
          this.counters.droppedMalformed++;
        } else {
          this.#onValue(link, data);
        }
        // A write request (with response) is not part of our contract but must be answered.
        if (!withoutResponse) callback(rx.RESULT_SUCCESS);
      },
    });
    const tx: BlenoCharacteristic = new bleno.Characteristic({
      uuid: LATTICE_TX_UUID,
      properties: ['notify'],
      onSubscribe: (handle, maxValueSize, update) => {
        const key = String(handle);
        const old = this.#links.get(byHandle.get(key) ?? asLinkId(''));
        if (old !== undefined) this.#down(old, 'BLE_DISCONNECTED', 'subscribed again');
        if (this.#links.size >= this.#o.maxConnections) {
          this.counters.refusedConnections++;
          disconnectHandle(bleno, handle);
          return;
        }
        const id = asLinkId(`p${this.#nextLink++}`);
        const link = this.#newLink(id, maxValueSize + 3, addresses.get(key) ?? key, undefined, {
          write: (data) => update(data),
          disconnect: () => disconnectHandle(bleno, handle),
          cleanup: () => {
            if (byHandle.get(key) === id) byHandle.delete(key);
          },
        });
        byHandle.set(key, id);
        this.#up(link);
      },
      onUnsubscribe: (handle) => {
        const link = this.#links.get(byHandle.get(String(handle)) ?? asLinkId(''));
        if (link !== undefined) this.#down(link, 'BLE_DISCONNECTED', 'unsubscribed');
      },
      // Bleno sends a notification synchronously (no completion); the pacer's budget paces it.
      onNotify: () => undefined,
    });
    const service = new bleno.PrimaryService({
      uuid: LATTICE_SERVICE_UUID,
      characteristics: [rx, tx],
    });
    bleno.on('accept', (address, handle) => addresses.set(String(handle), address));
    bleno.on('disconnect', (_address, handle) => {
      const key = String(handle);
      addresses.delete(key);
      const link = this.#links.get(byHandle.get(key) ?? asLinkId(''));
      if (link !== undefined) this.#down(link, 'BLE_DISCONNECTED', 'central disconnected');
    });
    const onState = (state: Bleno['state']): void => {
      if (this.#bleno !== bleno || this.#closed) return;
      this.#setStatus({ peripheral: state });
      if (state === 'poweredOn') {
        bleno.setServices([service], (error) => {
          if (error !== undefined && error !== null) {
            this.#setStatus({ lastError: `peripheral: ${errorText(error)}` });
            return;
          }
          bleno.startAdvertising(
            encodeAdvertisedName(this.#shortId),
            [LATTICE_SERVICE_UUID],
            (e) => {
              if (e !== undefined && e !== null) {
                this.#setStatus({ lastError: `peripheral: ${errorText(e)}` });
              }
            },
          );
        });
        return;
      }
      for (const id of [...byHandle.values()]) {
        const link = this.#links.get(id);
        if (link !== undefined) this.#down(link, 'BLE_DISCONNECTED', `adapter ${state}`);
      }
      if (state === 'unsupported') this.#after(this.#o.retryMs, () => this.#retryPeripheral());
    };
    try {
      // The first `stateChange` listener initialises the bindings synchronously (HCI: opens the
      // socket), and they may report a state before the listener is in place: read it after.
      bleno.on('stateChange', onState);
    } catch (error) {
      this.#releaseBleno();
      this.#setStatus({ peripheral: 'unavailable', lastError: `peripheral: ${errorText(error)}` });
      this.#after(this.#o.retryMs, () => void this.#loadPeripheral());
      return;
    }
    detachSigintHandler(bleno);
    if (bleno.state !== 'unknown') onState(bleno.state);
    this.#after(this.#o.retryMs, () => {
      const now = this.#status.peripheral;
      if (this.#bleno === bleno && (now === 'loading' || now === 'unknown')) {
        this.#retryPeripheral();
      }
    });
  }

  #retryPeripheral(): void {
    this.#releaseBleno();
    void this.#loadPeripheral();
  }

  #releaseBleno(): void {
    const bleno = this.#bleno;
    if (bleno === undefined) return;
    this.#bleno = undefined;
    bleno.removeAllListeners();
    if (bleno.state === 'poweredOn') safely(() => bleno.stopAdvertising());
    safely(() => bleno.stop());
    disarmHciPoll(bleno);
  }

  // ---- links --------------------------------------------------------------------------------

  #newLink(
    id: LinkId,
    mtu: number,
    remoteAddress: string,
    shortId: string | undefined,
    io: Pick<Link, 'write' | 'disconnect' | 'cleanup'> & { readonly maxInbound?: () => number },
  ): Link {
    const maxFrameBytes = maxFrameBytesForMtu(mtu);
    const maxPduBytes = maxFrameBytes + ATT_HEADER_BYTES;
    const capabilities: LinkCapabilities = {
      maxFrameBytes,
      kind: LINK_KIND_DATAGRAM,
      reliable: true,
      ordered: true,
      // The budget counts ATT headers; what is left for frames at full size.
      bandwidthBytesPerS: Math.floor((this.#o.bandwidth * maxFrameBytes) / maxPduBytes),
      latencyMs: 15,
      checksummed: true,
    };
    const info: LinkInfo = { id, transport: 'ble', capabilities, remoteAddress };
    // What waits in the radio delays everything behind it — the peer's acks of it, and a small
    // urgent message the multiplexer sends next — so the window is sized in air time: with
    // 514-byte frames 8 of them are 200 ms at 20 KB/s, and the multiplexer's RTO then fires
    // spuriously (measured: 6 % of the bytes re-sent, against 1 % with 3). Three frames keep the
    // radio busy across a late timer; small frames need more (a wake-up per 1.2 ms at MTU 23).
    const pduMs = (maxPduBytes * 1000) / this.#o.bandwidth;
    const window = Math.min(this.#o.window, Math.max(3, Math.floor(this.#o.radioQueueMs / pduMs)));
    const pacer = new Pacer({
      bytesPerS: this.#o.bandwidth,
      windowFrames: window,
      // Notifications (shortId undefined) have no completion: only the bucket bounds what waits
      // in the radio, and a wake-up racing the radio's own drain can add one value, so the
      // bucket holds one frame less than the window.
      burstBytes: (shortId === undefined ? Math.max(1, window - 1) : window) * maxPduBytes,
      onWritable: () => {
        if (link.up) this.#emit({ type: 'writable', linkId: id });
      },
    });
    const link: Link = {
      info,
      pacer,
      inbound: { tokens: 2 * this.#o.window * maxFrameBytes, at: performance.now() },
      shortId,
      up: false,
      maxInbound: () => maxFrameBytes,
      ...io,
      write: (data) => {
        try {
          io.write(data);
        } catch (error) {
          // The stack threw synchronously (disconnected under us): the link is gone.
          this.counters.writeErrors++;
          queueMicrotask(() => this.closeLink(id, 'BLE_WRITE_FAILED', errorText(error)));
        }
        // Bleno's notifications have no completion; noble's writes complete in their listener.
        if (shortId === undefined) pacer.complete();
      },
    };
    return link;
  }

  #up(link: Link): void {
    link.up = true;
    this.#links.set(link.info.id, link);
    this.#emit({ type: 'up', link: link.info });
  }

  #down(link: Link, reasonCode: string, reason: string): void {
    link.pacer.close();
    link.cleanup();
    if (!link.up) return;
    link.up = false;
    this.#links.delete(link.info.id);
    this.#emit({ type: 'down', linkId: link.info.id, reasonCode, reason });
  }

  #onValue(link: Link, data: Buffer): void {
    if (!link.up || data.length === 0 || data.length > link.maxInbound()) {
      this.counters.droppedMalformed++;
      return;
    }
    const now = performance.now();
    const cap = 2 * this.#o.window * link.info.capabilities.maxFrameBytes;
    link.inbound.tokens = Math.min(
      cap,
      link.inbound.tokens + ((now - link.inbound.at) * this.#o.inboundLimit) / 1000,
    );
    link.inbound.at = now;
    if (link.inbound.tokens < data.length) {
      this.counters.droppedFlood++;
      return;
    }
    link.inbound.tokens -= data.length;
    this.counters.framesIn++;
    this.counters.bytesIn += data.length;
    // A plain Uint8Array copy: the stack may reuse its Buffer.
    this.#emit({ type: 'frame', linkId: link.info.id, data: new Uint8Array(data) });
  }

  #emit(event: LinkEvent): void {
    if (this.#closed) return;
    for (const l of [...this.#listeners]) l(event);
  }
}

/** Runs `f`, returning undefined when it throws (stack calls on a half-initialised adapter). */
function safely<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    // Stopping or querying a stack without an adapter may throw; there is nothing to release.
    return undefined;
  }
}

/**
 * Works around bleno 0.12.4's HCI binding, whose `stop()` leaves its 1-second `pollIsDevUp` timer
 * running: on a machine without Bluetooth the next poll calls `isDevUp()` on the stopped socket,
 * which throws "Address family not supported by protocol" from a timer and kills the process.
 * Called after `stop()`: the pending timer already holds the bound prototype method, so the
 * stopped native socket (whose methods are read-only) is swapped for one whose device is down, and
 * the instance's poll becomes a no-op, which ends the loop at its next turn. Only the HCI binding
 * has `_hci.pollIsDevUp`; other bindings are left alone.
 */
function disarmHciPoll(bleno: Bleno): void {
  const hci = (
    bleno as unknown as { _bindings?: { _hci?: { pollIsDevUp?: unknown; _socket?: unknown } } }
  )._bindings?._hci;
  if (hci === undefined || typeof hci.pollIsDevUp !== 'function') return;
  hci.pollIsDevUp = (): void => undefined;
  hci._socket = {
    isDevUp: () => false,
    removeAllListeners: () => undefined,
    stop: () => undefined,
  };
}

/**
 * Removes the SIGINT handler the HCI bindings of noble and bleno install when they initialise:
 * when it is the last SIGINT listener it calls `process.exit(1)`, cutting short the service's own
 * graceful shutdown (`runMain`), which stops the stacks through {@link BleLinkDriver.close}.
 * Their `exit` handler (stop on exit) stays. Bindings without the handler are left alone.
 */
function detachSigintHandler(stack: Noble | Bleno): void {
  const handler = (stack as unknown as { _bindings?: { _sigIntHandler?: unknown } })._bindings
    ?._sigIntHandler;
  if (typeof handler === 'function') {
    process.removeListener('SIGINT', handler as (...args: unknown[]) => void);
  }
}

function disconnectHandle(bleno: Bleno, handle: number | string): void {
  // The typings declare `disconnect()`, but bleno 0.12 takes the connection handle to drop one.
  const disconnect = bleno.disconnect.bind(bleno) as (handle?: number | string) => void;
  safely(() => disconnect(handle));
}

async function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          onTimeout();
          reject(bleError('BLE_CONNECT_FAILED', `no connection within ${ms} ms`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitForMtu(p: Peripheral, ms: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      p.removeListener('mtu', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    p.on('mtu', done);
  });
}
