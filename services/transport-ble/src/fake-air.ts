/**
 * A fake radio for the real noble and bleno code: bindings that imitate remote devices.
 *
 * @remarks
 * `withBindings()` of `@stoprocent/noble` and `@stoprocent/bleno` accepts only a binding *name*
 * (`default`, `hci`, `dbus`, `mac`, `win`; see their `lib/resolve-bindings.js`), so a custom
 * binding goes where `withBindings` itself puts one: `new Noble(bindings)` from
 * `@stoprocent/noble/lib/noble.js` and `new Bleno(bindings)` from `@stoprocent/bleno/lib/bleno.js`.
 * Everything above the binding — peripheral/characteristic objects, duplicate filtering,
 * `connectAsync`, discovery, subscriptions, bleno's characteristic callbacks — is the libraries'
 * real code.
 *
 * A {@link FakeAir} joins any number of {@link FakeNobleBindings} (centrals) and
 * {@link FakeBlenoBindings} (peripherals). A connection has a negotiated MTU and one transmitter
 * per direction: a value occupies it for `(bytes + attHeaderBytes) / bytesPerS` seconds — the
 * 3-byte ATT header (opcode and handle) of each write command or notification is air time too, so
 * the budget is counted in ATT PDU bytes, not value bytes — and at most `radioQueueFrames` values
 * wait in it: one more is an overflow, counted and dropped, as a real controller whose buffers are
 * full loses it. Time is real (`performance.now()` and timers), so a run at 20 000 B/s takes as
 * long as it would on air. Noble's write-without-response completes (`write`
 * event) when the value leaves the transmitter, as the HCI binding's does when it leaves the ATT
 * queue.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Bleno, PrimaryService } from '@stoprocent/bleno';
import type { Noble } from '@stoprocent/noble';

const require = createRequire(import.meta.url);
const NobleClass = require('@stoprocent/noble/lib/noble.js') as new (bindings: unknown) => Noble;
const BlenoClass = require('@stoprocent/bleno/lib/bleno.js') as new (bindings: unknown) => Bleno;

/** Settings of a {@link FakeAir}. */
export interface FakeAirOptions {
  /** MTU every connection negotiates (default 185). */
  readonly mtu?: number;
  /**
   * Radio budget per direction in ATT PDU bytes per second — value plus `attHeaderBytes` per
   * packet (default 20 000; Infinity: no limit).
   */
  readonly bytesPerS?: number;
  /** Header bytes each value costs on air besides itself (default 3: ATT opcode + handle). */
  readonly attHeaderBytes?: number;
  /** Values that may wait in a transmitter (default 8). */
  readonly radioQueueFrames?: number;
  /** State the adapters report (default `poweredOn`). */
  readonly state?: string;
  /** Report the MTU to the central this long after the connection instead of before (default 0). */
  readonly mtuDelayMs?: number;
}

/** What the air measured. */
export interface FakeAirStats {
  overflows: number;
  maxQueued: number;
  valuesDelivered: number;
  /** Value bytes delivered (what the links carried). */
  bytesDelivered: number;
  /** Air bytes delivered: value bytes plus the ATT header of each value. */
  airBytesDelivered: number;
  connections: number;
  /** Values forged by {@link FakeAir.forgeNotification} / {@link FakeAir.forgeWrite}. */
  forged: number;
}

interface Packet {
  readonly finishAt: number;
  readonly deliver: () => void;
}

class Transmitter {
  readonly #air: FakeAir;
  readonly #queue: Packet[] = [];
  #lastFinish = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(air: FakeAir) {
    this.#air = air;
  }

  push(bytes: number, deliver: () => void): boolean {
    if (this.#closed) return false;
    const stats = this.#air.stats;
    const now = performance.now();
    // Values whose air time has passed have left the radio even if our timer has not fired yet
    // (timers are late by a millisecond or more; a radio drains continuously).
    const waiting = this.#queue.filter((p) => p.finishAt > now).length;
    if (waiting >= this.#air.radioQueueFrames) {
      stats.overflows++;
      return false;
    }
    const air = bytes + this.#air.attHeaderBytes;
    const tx = Number.isFinite(this.#air.bytesPerS) ? (air * 1000) / this.#air.bytesPerS : 0;
    const finishAt = Math.max(now, this.#lastFinish) + tx;
    this.#lastFinish = finishAt;
    this.#queue.push({
      finishAt,
      deliver: () => {
        stats.valuesDelivered++;
        stats.bytesDelivered += bytes;
        stats.airBytesDelivered += air;
        deliver();
      },
    });
    stats.maxQueued = Math.max(stats.maxQueued, waiting + 1);
    this.#arm();
    return true;
  }

  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#closed) return;
    const head = this.#queue[0];
    if (head === undefined) return;
    const wait = Math.max(0, head.finishAt - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = performance.now();
      while (!this.#closed && (this.#queue[0]?.finishAt ?? Infinity) <= now + 0.5) {
        (this.#queue.shift() as Packet).deliver();
      }
      this.#arm();
    }, wait);
  }
}

interface Connection {
  readonly handle: number;
  readonly central: FakeNobleBindings;
  readonly peripheral: FakeBlenoBindings;
  readonly mtu: number;
  readonly toPeripheral: Transmitter;
  readonly toCentral: Transmitter;
  /** Characteristics the central subscribed to: `serviceUuid/uuid`. */
  readonly notifying: Set<string>;
  up: boolean;
}

interface AttributeLike extends EventEmitter {
  readonly uuid: string;
  readonly properties: readonly string[];
}

function serviceTable(services: readonly PrimaryService[]): Map<string, AttributeLike[]> {
  return new Map(
    services.map((s) => [s.uuid, s.characteristics as unknown as AttributeLike[]] as const),
  );
}

/** See the module comment. */
export class FakeAir {
  readonly stats: FakeAirStats = {
    overflows: 0,
    maxQueued: 0,
    valuesDelivered: 0,
    bytesDelivered: 0,
    airBytesDelivered: 0,
    connections: 0,
    forged: 0,
  };
  mtu: number;
  bytesPerS: number;
  attHeaderBytes: number;
  radioQueueFrames: number;
  state: string;
  mtuDelayMs: number;
  /** While true, no connection can be made (the devices are out of range). */
  jammed = false;
  readonly #centrals = new Set<FakeNobleBindings>();
  readonly #peripherals = new Set<FakeBlenoBindings>();
  readonly #connections = new Map<number, Connection>();
  #nextHandle = 1;
  #nextAddress = 1;

  constructor(options: FakeAirOptions = {}) {
    this.mtu = options.mtu ?? 185;
    this.bytesPerS = options.bytesPerS ?? 20_000;
    this.attHeaderBytes = options.attHeaderBytes ?? 3;
    this.radioQueueFrames = options.radioQueueFrames ?? 8;
    this.state = options.state ?? 'poweredOn';
    this.mtuDelayMs = options.mtuDelayMs ?? 0;
  }

  /** The real `Noble` over a new fake central binding. */
  noble(): Noble {
    return new NobleClass(this.nobleBindings());
  }

  /** The real `Bleno` over a new fake peripheral binding. */
  bleno(): Bleno {
    return new BlenoClass(this.blenoBindings());
  }

  nobleBindings(): FakeNobleBindings {
    const b = new FakeNobleBindings(this, this.#address());
    this.#centrals.add(b);
    return b;
  }

  blenoBindings(): FakeBlenoBindings {
    const b = new FakeBlenoBindings(this, this.#address());
    this.#peripherals.add(b);
    return b;
  }

  /** Connections currently up. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Radio loss: every connection drops (supervision timeout) on both sides. */
  cut(): void {
    for (const c of [...this.#connections.values()]) this.disconnect(c, 0x08);
  }

  /** Out of range: every connection drops and none can be made until {@link unjam}. */
  jam(): void {
    this.jammed = true;
    this.cut();
  }

  unjam(): void {
    this.jammed = false;
  }

  /**
   * A misbehaving remote peripheral: delivers `data` as a notification of every characteristic
   * the centrals subscribed to, on every connection, at once — no MTU cut (bleno's own
   * `updateValueCallback` would cut it to MTU − 3), no radio budget. Returns the values forged.
   */
  forgeNotification(data: Uint8Array): number {
    let n = 0;
    for (const c of this.#connections.values()) {
      for (const key of c.notifying) {
        const [serviceUuid, uuid] = key.split('/') as [string, string];
        const value = Buffer.from(data);
        c.central.emit('read', c.peripheral.id, serviceUuid, uuid, value, true);
        n++;
      }
    }
    this.stats.forged += n;
    return n;
  }

  /**
   * A misbehaving remote central: delivers a write of `data` at `offset` to characteristic `uuid`
   * of every connected peripheral, as its stack would hand it to bleno's characteristic — writes a
   * real noble cannot make (a write command with an offset, a value beyond the MTU). Returns the
   * values forged.
   */
  forgeWrite(
    uuid: string,
    data: Uint8Array,
    options: { readonly offset?: number; readonly withoutResponse?: boolean } = {},
  ): number {
    let n = 0;
    for (const c of this.#connections.values()) {
      for (const attrs of serviceTable(c.peripheral.services).values()) {
        for (const a of attrs) {
          if (a.uuid !== uuid) continue;
          a.emit(
            'writeRequest',
            c.handle,
            Buffer.from(data),
            options.offset ?? 0,
            options.withoutResponse ?? true,
            () => undefined,
          );
          n++;
        }
      }
    }
    this.stats.forged += n;
    return n;
  }

  /** Stops every transmitter; nothing is delivered after. */
  close(): void {
    for (const c of [...this.#connections.values()]) this.disconnect(c, 0x16);
    this.#centrals.clear();
    this.#peripherals.clear();
  }

  // ---- used by the bindings ----

  /** @internal */
  _forget(b: FakeNobleBindings | FakeBlenoBindings): void {
    if (b instanceof FakeNobleBindings) this.#centrals.delete(b);
    else this.#peripherals.delete(b);
    for (const c of [...this.#connections.values()]) {
      if (c.central === b || c.peripheral === b) this.disconnect(c, 0x16);
    }
  }

  /** @internal Shows an advertiser to every scanning central. */
  _announce(p: FakeBlenoBindings): void {
    for (const c of this.#centrals) if (c.scanning) c._see(p);
  }

  /** @internal */
  _advertisers(): FakeBlenoBindings[] {
    return [...this.#peripherals].filter((p) => p.advertising !== undefined);
  }

  /** @internal */
  _connect(central: FakeNobleBindings, peripheral: FakeBlenoBindings): Connection {
    const c: Connection = {
      handle: this.#nextHandle++,
      central,
      peripheral,
      mtu: this.mtu,
      toPeripheral: new Transmitter(this),
      toCentral: new Transmitter(this),
      notifying: new Set(),
      up: true,
    };
    this.#connections.set(c.handle, c);
    this.stats.connections++;
    return c;
  }

  /** @internal */
  _connectionOf(central: FakeNobleBindings, peripheralId: string): Connection | undefined {
    for (const c of this.#connections.values()) {
      if (c.central === central && c.peripheral.id === peripheralId) return c;
    }
    return undefined;
  }

  /** @internal */
  _connectionsOf(peripheral: FakeBlenoBindings): Connection[] {
    return [...this.#connections.values()].filter((c) => c.peripheral === peripheral);
  }

  /** Drops one connection, telling both ends. */
  disconnect(c: Connection, reason: number): void {
    if (!c.up) return;
    c.up = false;
    this.#connections.delete(c.handle);
    c.toPeripheral.close();
    c.toCentral.close();
    for (const attrs of serviceTable(c.peripheral.services).values()) {
      for (const a of attrs) if (a.properties.includes('notify')) a.emit('unsubscribe', c.handle);
    }
    process.nextTick(() => {
      c.central.emit('disconnect', c.peripheral.id, reason);
      c.peripheral.emit('disconnect', c.central.address, c.handle);
    });
  }

  #address(): string {
    const n = this.#nextAddress++;
    return `aa:bb:cc:00:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
  }
}

/** A fake noble binding (the central's HCI); see the module comment. */
export class FakeNobleBindings extends EventEmitter {
  readonly address: string;
  scanning = false;
  readonly #air: FakeAir;

  constructor(air: FakeAir, address: string) {
    super();
    this.#air = air;
    this.address = address;
  }

  start(): void {
    process.nextTick(() => {
      this.emit('addressChange', this.address);
      this.emit('stateChange', this.#air.state);
    });
  }

  stop(): void {
    this.scanning = false;
    this.#air._forget(this);
  }

  setScanParameters(): void {
    process.nextTick(() => this.emit('scanParametersSet'));
  }

  startScanning(_uuids: readonly string[] | undefined, allowDuplicates: boolean): void {
    this.scanning = true;
    process.nextTick(() => {
      this.emit('scanStart', !allowDuplicates);
      for (const p of this.#air._advertisers()) this._see(p);
    });
  }

  stopScanning(): void {
    this.scanning = false;
    process.nextTick(() => this.emit('scanStop'));
  }

  /** @internal Reports an advertisement (noble itself filters duplicates). */
  _see(p: FakeBlenoBindings): void {
    const adv = p.advertising;
    if (adv === undefined) return;
    process.nextTick(() => {
      if (!this.scanning) return;
      this.emit(
        'discover',
        p.id,
        p.address,
        'random',
        true,
        {
          localName: adv.name,
          serviceUuids: adv.uuids,
          serviceData: [],
          serviceSolicitationUuids: [],
        },
        -50,
        true,
      );
    });
  }

  addressToId(address: string): string {
    return address.replace(/:/g, '');
  }

  connect(id: string): void {
    const p = this.#air._advertisers().find((a) => a.id === id);
    process.nextTick(() => {
      if (p === undefined || this.#air.jammed) {
        this.emit('connect', id, new Error('no such device in range'));
        return;
      }
      const c = this.#air._connect(this, p);
      p.emit('accept', this.address, c.handle);
      p.emit('mtuChange', c.mtu);
      if (this.#air.mtuDelayMs > 0) {
        // The exchange completes after the connection, as when the central's stack starts it
        // only once connected.
        setTimeout(() => {
          if (c.up) this.emit('onMtu', id, c.mtu);
        }, this.#air.mtuDelayMs);
      } else {
        this.emit('onMtu', id, c.mtu);
      }
      this.emit('connect', id, undefined);
    });
  }

  cancelConnect(): void {
    // Connections complete on the next tick; there is nothing pending to cancel.
  }

  disconnect(id: string): void {
    const c = this.#air._connectionOf(this, id);
    if (c !== undefined) this.#air.disconnect(c, 0x16);
  }

  updateRssi(id: string): void {
    process.nextTick(() => this.emit('rssiUpdate', id, -50));
  }

  discoverServices(id: string, uuids: readonly string[]): void {
    const c = this.#air._connectionOf(this, id);
    const table = serviceTable(c?.peripheral.services ?? []);
    const found = [...table.keys()].filter((u) => uuids.length === 0 || uuids.includes(u));
    process.nextTick(() => this.emit('servicesDiscover', id, found));
  }

  discoverIncludedServices(id: string, serviceUuid: string): void {
    process.nextTick(() => this.emit('includedServicesDiscover', id, serviceUuid, []));
  }

  discoverCharacteristics(id: string, serviceUuid: string, uuids: readonly string[]): void {
    const c = this.#air._connectionOf(this, id);
    const attrs = serviceTable(c?.peripheral.services ?? []).get(serviceUuid) ?? [];
    const found = attrs
      .filter((a) => uuids.length === 0 || uuids.includes(a.uuid))
      .map((a) => ({ uuid: a.uuid, properties: [...a.properties] }));
    process.nextTick(() => this.emit('characteristicsDiscover', id, serviceUuid, found));
  }

  #attribute(c: Connection, serviceUuid: string, uuid: string): AttributeLike | undefined {
    return serviceTable(c.peripheral.services)
      .get(serviceUuid)
      ?.find((a) => a.uuid === uuid);
  }

  notify(id: string, serviceUuid: string, uuid: string, enable: boolean): void {
    const c = this.#air._connectionOf(this, id);
    const a = c === undefined ? undefined : this.#attribute(c, serviceUuid, uuid);
    process.nextTick(() => {
      if (c === undefined || a === undefined || !c.up) {
        this.emit('notify', id, serviceUuid, uuid, false, new Error('not connected'));
        return;
      }
      if (enable) {
        const update = (data?: Buffer): void => {
          if (data === undefined || !c.up) return;
          // Bleno cuts a notification to MTU − 3, as the HCI binding does.
          const value = Buffer.from(data.subarray(0, c.mtu - 3));
          c.toCentral.push(value.length, () => {
            if (c.up) this.emit('read', id, serviceUuid, uuid, value, true);
          });
          a.emit('notify', c.handle);
        };
        c.notifying.add(`${serviceUuid}/${uuid}`);
        a.emit('subscribe', c.handle, c.mtu - 3, update);
      } else {
        c.notifying.delete(`${serviceUuid}/${uuid}`);
        a.emit('unsubscribe', c.handle);
      }
      this.emit('notify', id, serviceUuid, uuid, enable);
    });
  }

  write(
    id: string,
    serviceUuid: string,
    uuid: string,
    data: Buffer,
    withoutResponse: boolean,
  ): void {
    const c = this.#air._connectionOf(this, id);
    const a = c === undefined ? undefined : this.#attribute(c, serviceUuid, uuid);
    if (c === undefined || a === undefined) {
      process.nextTick(() => this.emit('write', id, serviceUuid, uuid, new Error('not connected')));
      return;
    }
    const value = Buffer.from(data);
    const queued = c.toPeripheral.push(value.length, () => {
      if (!c.up) return;
      a.emit('writeRequest', c.handle, value, 0, withoutResponse, () => undefined);
      this.emit('write', id, serviceUuid, uuid);
    });
    // An overflowing controller loses the value, but the host's write still "completes".
    if (!queued) process.nextTick(() => this.emit('write', id, serviceUuid, uuid));
  }

  read(): void {
    // The Lattice service has no readable characteristic.
  }
}

/** A fake bleno binding (the peripheral's HCI); see the module comment. */
export class FakeBlenoBindings extends EventEmitter {
  readonly address: string;
  /** The id a central's noble knows this device by. */
  readonly id: string;
  services: readonly PrimaryService[] = [];
  advertising: { readonly name: string; readonly uuids: readonly string[] } | undefined;
  readonly #air: FakeAir;

  constructor(air: FakeAir, address: string) {
    super();
    this.#air = air;
    this.address = address;
    this.id = address.replace(/:/g, '');
  }

  init(): void {
    process.nextTick(() => {
      this.emit('platform', 'linux');
      this.emit('addressChange', this.address);
      this.emit('stateChange', this.#air.state);
    });
  }

  stop(): void {
    this.advertising = undefined;
    this.#air._forget(this);
  }

  setServices(services: readonly PrimaryService[]): void {
    this.services = services;
    process.nextTick(() => this.emit('servicesSet'));
  }

  startAdvertising(name: string, uuids: readonly string[]): void {
    this.advertising = { name, uuids };
    process.nextTick(() => {
      this.emit('advertisingStart', undefined);
      this.#air._announce(this);
    });
  }

  stopAdvertising(): void {
    this.advertising = undefined;
    process.nextTick(() => this.emit('advertisingStop'));
  }

  disconnect(handle: number | null = null): void {
    for (const c of this.#air._connectionsOf(this)) {
      if (handle === null || c.handle === handle) this.#air.disconnect(c, 0x13);
    }
  }

  updateRssi(): void {
    process.nextTick(() => this.emit('rssiUpdate', -50));
  }

  setAddress(): void {
    // The fake's address is fixed.
  }
}
