/**
 * One peer in one process: every service composed on one bus (`LocalBus` by default, the
 * embedded mode of `lattice up`; a `NatsBus` when given).
 */
import type { Logger } from 'pino';
import type { Bus } from '@lattice/bus';
import { gatewayService, InProcessPeer, startGatewayService, type Gateway } from '@lattice/gateway';
import { identitySeed, mergeService, startMergeService, type MergeEngine } from '@lattice/merge';
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
import {
  startStoreService,
  storeService,
  type DocumentStore,
  type StoreOpenProgress,
} from '@lattice/store';
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
export function composePeerServices(
  hooks: {
    readonly onEngine?: (engine: MergeEngine) => void;
    readonly onGateway?: (gateway: Gateway) => void;
    readonly onStoreProgress?: (progress: StoreOpenProgress) => void;
  } = {},
): readonly ServiceDefinition[] {
  let store: DocumentStore | undefined;
  let multiplexer: Multiplexer | undefined;
  let engine: MergeEngine | undefined;
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} must start first`);
    return v;
  };
  return [
    defineService({
      ...storeService,
      async start(ctx) {
        const instance = await startStoreService(
          ctx,
          hooks.onStoreProgress ? { onProgress: hooks.onStoreProgress } : {},
        );
        store = instance.store;
        return instance;
      },
    }),
    defineService({
      ...multiplexerService,
      async start(ctx) {
        const seed = await identitySeed(need(store, 'the store'));
        // Merge uses this multiplexer directly: no message API on the bus.
        const instance = await startMultiplexerService(
          { ...ctx, config: { ...ctx.config, busMessages: false } },
          { identity: createIdentity(seed) },
        );
        multiplexer = instance.multiplexer;
        return instance;
      },
    }),
    defineService({
      ...mergeService,
      async start(ctx) {
        const instance = await startMergeService(ctx, {
          store: need(store, 'the store'),
          multiplexer: need(multiplexer, 'the multiplexer'),
        });
        engine = instance.engine;
        hooks.onEngine?.(instance.engine);
        return instance;
      },
    }),
    transportLanService,
    transportUsbService,
    transportBleService,
    defineService({
      ...gatewayService,
      async start(ctx) {
        const mux = need(multiplexer, 'the multiplexer');
        const instance = await startGatewayService(
          new InProcessPeer(need(engine, 'the merge engine'), { presence: () => mux.presence() }),
          ctx.config,
          ctx.logger,
        );
        hooks.onGateway?.(instance.gateway);
        // Remote peers and browsers reaching the WebSocket sync endpoint become links.
        const detach = instance.gateway.links ? mux.attach(instance.gateway.links) : undefined;
        return {
          ...instance,
          async stop() {
            detach?.();
            await instance.stop();
          },
        };
      },
    }),
  ] as readonly ServiceDefinition[];
}

/** A running peer. */
export interface Peer {
  readonly services: readonly ServiceName[];
  readonly subjects: Subjects;
  /** The peer's merge engine (its id, DQL, subscriptions, sync status). */
  readonly engine: MergeEngine;
  /** Where the gateway listens. */
  readonly gateway: Pick<Gateway, 'host' | 'grpcPort' | 'httpPort'> | undefined;
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
  /** Subscriptions to register once the peer runs (kept by the peer across restarts). */
  readonly subscribe?: readonly string[];
  readonly onStarted?: (service: ServiceName) => void;
  /** Told what opening the store is doing (a large store takes a while). */
  readonly onStoreProgress?: (progress: StoreOpenProgress) => void;
}): Promise<Peer> {
  const subjects = new Subjects(options.config.namespace);
  const running: RunningService[] = [];
  const stop = async (): Promise<void> => {
    for (const service of running.reverse()) await service.stop();
  };
  try {
    let engine: MergeEngine | undefined;
    let gateway: Gateway | undefined;
    const hooks = {
      onEngine: (e: MergeEngine) => (engine = e),
      onGateway: (g: Gateway) => (gateway = g),
      ...(options.onStoreProgress ? { onStoreProgress: options.onStoreProgress } : {}),
    };
    for (const definition of composePeerServices(hooks)) {
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
    const e = engine as MergeEngine;
    for (const statement of options.subscribe ?? []) await e.subscribe(statement);
    return { services: running.map((s) => s.name), subjects, engine: e, gateway, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
