/**
 * One peer in one process: every service composed on one bus (`LocalBus` by default, the
 * embedded mode of `lattice up`; a `NatsBus` when given).
 */
import type { Logger } from 'pino';
import type { Bus } from '@lattice/bus';
import { gatewayService } from '@lattice/gateway';
import { identitySeed, mergeService, startMergeService } from '@lattice/merge';
import {
  createIdentity,
  multiplexerService,
  startMultiplexerService,
  type Multiplexer,
} from '@lattice/multiplexer';
import { Subjects, type ServiceName } from '@lattice/proto';
import {
  checkHealth,
  defineService,
  startService,
  type BaseConfig,
  type RunningService,
  type ServiceDefinition,
} from '@lattice/service';
import { startStoreService, storeService, type DocumentStore } from '@lattice/store';
import { transportBleService } from '@lattice/transport-ble';
import { transportLanService } from '@lattice/transport-lan';
import { transportUsbService } from '@lattice/transport-usb';

/** Every service of a peer, in start order (data path first: store, merge, multiplexer, links, gateway). */
export const PEER_SERVICES: readonly ServiceDefinition[] = [
  storeService,
  mergeService,
  multiplexerService,
  transportLanService,
  transportUsbService,
  transportBleService,
  gatewayService,
];

/**
 * The services of one peer composed in one process, in start order: the store, the multiplexer
 * (its identity kept in the store), the merge engine writing through that store and syncing over
 * that multiplexer, the transports, the gateway.
 * @remarks The merge engine is its store's single writer and reads it synchronously, so in one
 * process they share the store object; over the bus the store still answers other services.
 */
export function composePeerServices(): readonly ServiceDefinition[] {
  let store: DocumentStore | undefined;
  let multiplexer: Multiplexer | undefined;
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} must start first`);
    return v;
  };
  return [
    defineService({
      ...storeService,
      async start(ctx) {
        const instance = await startStoreService(ctx);
        store = instance.store;
        return instance;
      },
    }),
    defineService({
      ...multiplexerService,
      async start(ctx) {
        const seed = await identitySeed(need(store, 'the store'));
        const instance = await startMultiplexerService(ctx, { identity: createIdentity(seed) });
        multiplexer = instance.multiplexer;
        return instance;
      },
    }),
    defineService({
      ...mergeService,
      start: (ctx) =>
        startMergeService(ctx, {
          store: need(store, 'the store'),
          multiplexer: need(multiplexer, 'the multiplexer'),
        }),
    }),
    transportLanService,
    transportUsbService,
    transportBleService,
    gatewayService,
  ] as readonly ServiceDefinition[];
}

/** A running peer. */
export interface Peer {
  readonly services: readonly ServiceName[];
  readonly subjects: Subjects;
  /** Stops the services in reverse start order. */
  stop(): Promise<void>;
}

/** Starts every service of one peer on `bus` and checks that each answers health. */
export async function startPeer(options: {
  readonly bus: Bus;
  readonly config: BaseConfig;
  readonly logger: Logger;
  /** Settings beyond the base config (e.g. `data`), each service taking those its schema knows. */
  readonly settings?: Readonly<Record<string, unknown>>;
  readonly onStarted?: (service: ServiceName) => void;
}): Promise<Peer> {
  const subjects = new Subjects(options.config.namespace);
  const running: RunningService[] = [];
  const stop = async (): Promise<void> => {
    for (const service of running.reverse()) await service.stop();
  };
  try {
    for (const definition of composePeerServices()) {
      running.push(
        await startService(definition, {
          bus: options.bus,
          config: definition.configSchema.parse({ ...options.config, ...options.settings }),
          logger: options.logger,
          subjects,
        }),
      );
      await checkHealth(options.bus, subjects, definition.name);
      options.onStarted?.(definition.name);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { services: running.map((s) => s.name), subjects, stop };
}
