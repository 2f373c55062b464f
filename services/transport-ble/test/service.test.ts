import { afterEach, describe, expect, it } from 'vitest';
import { LocalBus } from '@lattice/bus';
import { BusLinkDriver, type LinkEvent, type LinkInfo } from '@lattice/multiplexer';
import { Subjects, v1 } from '@lattice/proto';
import { checkHealth, createLogger, startService, type RunningService } from '@lattice/service';
import { waitFor } from '@lattice/testing';
import {
  BleLinkDriver,
  createTransportBleService,
  defaultStackLoaders,
  transportBleConfigSchema,
} from '../src/index.js';
import { FakeAir } from '../src/testing.js';
import { FAST } from './harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const logger = createLogger('silent', 'transport-ble-test');

/** States a stack reports on a machine without a usable adapter. */
const NO_RADIO = ['unsupported', 'poweredOff', 'unauthorized', 'unavailable', 'unknown'];

describe('transport-ble service', () => {
  it('starts without a Bluetooth adapter (real noble and bleno), reports the state and keeps retrying', async () => {
    const bus = new LocalBus();
    const subjects = new Subjects('blenoradio');
    const adapterEvents = bus.subscribe(subjects.event('transport-ble', 'adapter'));
    const config = transportBleConfigSchema.parse({ namespace: 'blenoradio', bleRetryMs: '200' });
    const running = await startService(createTransportBleService(defaultStackLoaders), {
      bus,
      config,
      logger,
      subjects,
    });
    cleanups.push(
      () => bus.close(),
      () => running.stop(),
    );
    const health = await waitFor(
      async () => {
        const h = await checkHealth(bus, subjects, 'transport-ble');
        return Number(h.details.attempts) >= 4 && h.details.central !== 'loading' ? h : undefined;
      },
      { what: 'several load attempts', timeoutMs: 20_000, intervalMs: 100 },
    );
    expect(health.status).toBe(v1.ServingStatus.SERVING_STATUS_SERVING);
    expect(NO_RADIO).toContain(health.details.adapter);
    expect(NO_RADIO).toContain(health.details.central);
    expect(health.details.links).toBe('0');
    console.info(`no adapter: ${JSON.stringify(health.details)}`);
    // The same state went out on the bus.
    const seen: Record<string, string>[] = [];
    await waitFor(
      async () => {
        while (adapterEvents.pending > 0) {
          const m = await adapterEvents[Symbol.asyncIterator]().next();
          if (m.done === true) break;
          seen.push(v1.HealthCheckResponse.decode(m.value.data).details);
        }
        return seen.some((d) => d.central === health.details.central);
      },
      { what: 'adapter event' },
    );
    adapterEvents.unsubscribe();
  });

  it('moves frames between the bus and the radio as BusLinkDriver expects', async () => {
    const air = new FakeAir({ mtu: 185 });
    const bus = new LocalBus();
    const subjects = new Subjects('blebus');
    const remote = new BleLinkDriver({
      ...FAST,
      shortId: 'zz',
      stacks: { peripheral: async () => air.bleno() },
    });
    const remoteEvents: LinkEvent[] = [];
    remote.listen((e) => remoteEvents.push(e));
    const mux = new BusLinkDriver({ bus, subjects, transports: ['transport-ble'] });
    await mux.ready();
    const muxEvents: LinkEvent[] = [];
    mux.listen((e) => muxEvents.push(e));
    const config = transportBleConfigSchema.parse({
      namespace: 'blebus',
      bleShortId: 'aa',
      bleRoles: 'central',
    });
    const running: RunningService = await startService(
      createTransportBleService(() => ({ central: async () => air.noble() })),
      { bus, config, logger, subjects },
    );
    cleanups.push(
      () => air.close(),
      () => bus.close(),
      () => mux.close(),
      () => remote.close(),
      () => running.stop(),
    );
    remote.start();
    const up = await waitFor(
      () => muxEvents.find((e): e is Extract<LinkEvent, { type: 'up' }> => e.type === 'up'),
      { what: 'LinkUp on the bus' },
    );
    const link: LinkInfo = up.link;
    expect(link.transport).toBe('ble');
    expect(link.capabilities.maxFrameBytes).toBe(182);
    expect(link.capabilities.bandwidthBytesPerS).toBe(19_675); // 20 000 × 182 / (182 + 3 ATT)
    const remoteLink = await waitFor(() => remote.links[0], { what: 'remote link' });
    // Out: 60 full frames through the bus at once (more than the pacer admits; the service queues).
    const out = Array.from({ length: 60 }, (_, i) => new Uint8Array(182).fill(i));
    for (const f of out) expect(mux.send(link.id, f)).toBe(true);
    const got = (): Uint8Array[] =>
      remoteEvents.flatMap((e) => (e.type === 'frame' ? [e.data] : []));
    await waitFor(() => got().length === out.length, { what: 'all frames at the remote' });
    expect(got()).toEqual(out);
    // In: a frame from the remote arrives on the bus.
    expect(remote.send(remoteLink.id, Uint8Array.of(1, 2, 3))).toBe(true);
    await waitFor(() => muxEvents.some((e) => e.type === 'frame'), { what: 'frame in' });
    const frameIn = muxEvents.find((e) => e.type === 'frame');
    expect(frameIn?.type === 'frame' && [...frameIn.data]).toEqual([1, 2, 3]);
    // The radio goes: LinkDown on the bus.
    air.cut();
    await waitFor(() => muxEvents.some((e) => e.type === 'down' && e.linkId === link.id), {
      what: 'LinkDown on the bus',
    });
    const h = await checkHealth(bus, subjects, 'transport-ble');
    expect(h.details.central).toBe('poweredOn');
    expect(h.details.adapter).toBe('poweredOn');
  });
});
