/**
 * Two whole peers over the fake air, composed as `lattice up` composes one (packages/cli's
 * `composePeerServices`) minus the bus: a `MergeEngine` writing through a `DocumentStore` on a
 * `MemoryEngine`, a `Multiplexer` with the same peer id, `syncOverMultiplexer` between them, and a
 * `BleLinkDriver` attached to the multiplexer — `a` plays the central (noble), `b` the peripheral
 * (bleno). Used by the end-to-end tests and by `bench/ble.bench.ts`, so it imports nothing but
 * the packages' public entry points and this package's source.
 */
import { MergeEngine, syncOverMultiplexer, type SessionOptions } from '@lattice/merge';
import {
  createIdentity,
  Multiplexer,
  type LinkDriver,
  type MultiplexerEvent,
} from '@lattice/multiplexer';
import { DocumentStore, MemoryEngine } from '@lattice/store';
import { BleLinkDriver, type BleLinkDriverOptions } from '../src/index.js';
import type { FakeAir } from '../src/testing.js';
import { FAST } from './harness.js';

/** One peer of a {@link BleSyncPair}. */
export interface BleSyncPeer {
  readonly engine: MergeEngine;
  readonly mux: Multiplexer;
  readonly ble: BleLinkDriver;
}

/** Two peers syncing over the fake air; see the module comment. */
export interface BleSyncPair {
  /** The central. */
  readonly a: BleSyncPeer;
  /** The peripheral. */
  readonly b: BleSyncPeer;
  /** Sync-session failures either side reported (a passing run has none). */
  readonly errors: unknown[];
  /** Resolves (with `performance.now()`) when `a`'s multiplexer first sees `b` (the handshake). */
  readonly peerUp: Promise<number>;
  /** Starts both BLE drivers (advertising, scanning, dialing). */
  start(): void;
  /** Stops sync, closes engines, stores, multiplexers and drivers (not the air). */
  close(): Promise<void>;
}

/** Options of {@link bleSyncPair}. */
export interface BleSyncPairOptions {
  readonly driver?: Partial<BleLinkDriverOptions>;
  readonly session?: SessionOptions;
  /** Another transport: a driver for `a` and one for `b`, attached before the BLE drivers. */
  readonly extra?: readonly [LinkDriver, LinkDriver];
}

async function peer(
  seed: number,
  ble: BleLinkDriver,
  options: BleSyncPairOptions,
  extra: LinkDriver | undefined,
): Promise<BleSyncPeer> {
  const identity = createIdentity(new Uint8Array(32).fill(seed));
  const mux = new Multiplexer({ identity });
  if (extra !== undefined) mux.attach(extra);
  mux.attach(ble);
  const store = await DocumentStore.open(new MemoryEngine(), { sync: false });
  const engine = MergeEngine.open({
    peerId: identity.peerId,
    store,
    ...(options.session === undefined ? {} : { session: options.session }),
  });
  return { engine, mux, ble };
}

/** Builds the pair on `air` (not started: subscribe and write first, then {@link BleSyncPair.start}). */
export async function bleSyncPair(
  air: FakeAir,
  options: BleSyncPairOptions = {},
): Promise<BleSyncPair> {
  const central = new BleLinkDriver({
    ...FAST,
    ...options.driver,
    shortId: 'a1',
    stacks: { central: async () => air.noble() },
  });
  const peripheral = new BleLinkDriver({
    ...FAST,
    ...options.driver,
    shortId: 'b2',
    stacks: { peripheral: async () => air.bleno() },
  });
  const [ea, eb] = options.extra ?? [];
  const a = await peer(21, central, options, ea);
  const b = await peer(22, peripheral, options, eb);
  const errors: unknown[] = [];
  const stopA = syncOverMultiplexer(a.engine, a.mux, { onError: (_p, e) => errors.push(e) });
  const stopB = syncOverMultiplexer(b.engine, b.mux, { onError: (_p, e) => errors.push(e) });
  const peerUp = new Promise<number>((resolve) => {
    const off = a.mux.on((e: MultiplexerEvent) => {
      if (e.type === 'peer-up') {
        off();
        resolve(performance.now());
      }
    });
  });
  return {
    a,
    b,
    errors,
    peerUp,
    start() {
      peripheral.start();
      central.start();
    },
    async close() {
      stopA();
      stopB();
      for (const p of [a, b]) {
        await p.engine.close();
        await p.engine.store.close();
      }
      for (const p of [a, b]) await p.mux.close();
      for (const p of [a, b]) await p.ble.close();
    },
  };
}

/** Every live document of a collection on a peer, sorted by `_id`. */
export function contents(p: BleSyncPeer, collection: string): unknown[] {
  return p.engine.store.select(`SELECT * FROM ${collection} ORDER BY _id`);
}
