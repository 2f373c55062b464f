/**
 * One peer in one process: every service composed on one bus (`LocalBus` by default, the
 * embedded mode of `lattice up`; a `NatsBus` when given).
 */
import type { Logger } from 'pino';
import type { Bus } from '@lattice/bus';
import { gatewayService } from '@lattice/gateway';
import { mergeService } from '@lattice/merge';
import { multiplexerService } from '@lattice/multiplexer';
import { Subjects, type ServiceName } from '@lattice/proto';
import {
  checkHealth,
  startService,
  type BaseConfig,
  type RunningService,
  type ServiceDefinition,
} from '@lattice/service';
import { storeService } from '@lattice/store';
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
    for (const definition of PEER_SERVICES) {
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
