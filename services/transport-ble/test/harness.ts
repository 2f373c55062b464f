/**
 * Builds {@link BleLinkDriver}s over a {@link FakeAir} for the tests.
 */
import { waitFor } from '@lattice/testing';
import type { LinkDriverHarness } from '@lattice/multiplexer/testing';
import {
  BleLinkDriver,
  LATTICE_RX_UUID,
  LATTICE_SERVICE_UUID,
  LATTICE_TX_UUID,
  type BleLinkDriverOptions,
} from '../src/index.js';
import { FakeAir, type FakeAirOptions } from '../src/testing.js';

/** Fast housekeeping so rediscovery takes milliseconds, not seconds. */
export const FAST = {
  maintainMs: 20,
  scanRestartMs: 100,
  retryMs: 200,
  redialBackoffMs: 50,
  connectTimeoutMs: 2_000,
  mtuWaitMs: 100,
} as const;

/** A central-only and a peripheral-only driver on one air. */
export function centralAndPeripheral(
  air: FakeAir,
  options: Partial<BleLinkDriverOptions> = {},
): { central: BleLinkDriver; peripheral: BleLinkDriver } {
  const central = new BleLinkDriver({
    ...FAST,
    ...options,
    shortId: 'a1',
    stacks: { central: async () => air.noble() },
  });
  const peripheral = new BleLinkDriver({
    ...FAST,
    ...options,
    shortId: 'b2',
    stacks: { peripheral: async () => air.bleno() },
  });
  return { central, peripheral };
}

/** The contract harness: `a` is the central, `b` the peripheral. */
export async function bleHarness(
  airOptions: FakeAirOptions = {},
  options: Partial<BleLinkDriverOptions> = {},
): Promise<LinkDriverHarness & { readonly air: FakeAir }> {
  const air = new FakeAir(airOptions);
  const { central, peripheral } = centralAndPeripheral(air, options);
  return {
    air,
    a: central,
    b: peripheral,
    async open() {
      peripheral.start();
      central.start();
    },
    async cut() {
      air.cut();
    },
    async waitFor(condition, what) {
      await waitFor(() => condition(), { what, timeoutMs: 15_000, intervalMs: 2 });
    },
    async close() {
      await central.close();
      await peripheral.close();
      air.close();
    },
  };
}

/**
 * A hostile peripheral: the real bleno over the fake air publishing the Lattice service and
 * advertising `L<shortId>`, whose notify characteristic hands out its `update` callback so a test
 * can notify whatever it likes, as fast as it likes (no pacing, no protocol).
 */
export async function hostilePeripheral(
  air: FakeAir,
  shortId = 'z9',
): Promise<{ notify(data: Buffer): void; subscribed: () => boolean; close(): void }> {
  const bleno = air.bleno();
  let update: ((data?: Buffer) => void) | undefined;
  const tx = new bleno.Characteristic({
    uuid: LATTICE_TX_UUID,
    properties: ['notify'],
    onSubscribe: (_handle, _max, u) => {
      update = u;
    },
    onUnsubscribe: () => {
      update = undefined;
    },
  });
  const rx = new bleno.Characteristic({
    uuid: LATTICE_RX_UUID,
    properties: ['writeWithoutResponse'],
  });
  await bleno.waitForPoweredOnAsync();
  await bleno.setServicesAsync([
    new bleno.PrimaryService({ uuid: LATTICE_SERVICE_UUID, characteristics: [rx, tx] }),
  ]);
  await bleno.startAdvertisingAsync(`L${shortId}`, [LATTICE_SERVICE_UUID]);
  return {
    notify: (data) => update?.(data),
    subscribed: () => update !== undefined,
    close: () => bleno.stop(),
  };
}
