/**
 * The transport side of the link contract (`serveLinkDriver`) with the multiplexer's side
 * (`BusLinkDriver`): the contract suite end to end, and what separate processes need — a
 * multiplexer that starts after its transport, a transport that dies without a word, and a link
 * the multiplexer closes.
 */
import { LocalBus, serve } from '@lattice/bus';
import { Subjects, v1 } from '@lattice/proto';
import { waitFor } from '@lattice/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BusLinkDriver,
  LoopbackNetwork,
  serveLinkDriver,
  SystemClock,
  type LinkEvent,
} from '@lattice/multiplexer';
import { restrictedDriver, runLinkDriverContractTests } from '@lattice/multiplexer/testing';

runLinkDriverContractTests('BusLinkDriver over serveLinkDriver', async () => {
  const bus = new LocalBus();
  const net = new LoopbackNetwork({ clock: new SystemClock(), seed: 1 });
  const ta = net.driver('ta');
  const tb = net.driver('tb');
  const nsA = new Subjects('bridge-a');
  const nsB = new Subjects('bridge-b');
  const bridges = [
    serveLinkDriver(bus, nsA, 'transport-lan', ta),
    serveLinkDriver(bus, nsB, 'transport-lan', tb),
  ];
  const a = new BusLinkDriver({ bus, subjects: nsA, transports: ['transport-lan'] });
  const b = new BusLinkDriver({ bus, subjects: nsB, transports: ['transport-lan'] });
  await a.ready();
  await b.ready();
  let link: { drop(reason?: string): void } | undefined;
  return {
    a,
    b,
    open: async () => {
      link = net.connect(ta, tb, { maxFrameBytes: 1_024, bandwidthBytesPerS: 10_000_000 });
    },
    cut: async () => link?.drop('cut'),
    waitFor: async (condition, what) => {
      await waitFor(() => condition() || undefined, { what, intervalMs: 1 });
    },
    close: async () => {
      await a.close();
      await b.close();
      for (const br of bridges) await br.close();
      await bus.close();
    },
  };
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function recorder(driver: BusLinkDriver): LinkEvent[] {
  const events: LinkEvent[] = [];
  driver.listen((e) => {
    if (e.type !== 'frame') events.push(e);
  });
  return events;
}

describe('the link contract across processes', () => {
  it('a multiplexer that starts after its transport learns the links already up', async () => {
    const bus = new LocalBus();
    cleanups.push(() => bus.close());
    const ns = new Subjects('late-mux');
    const net = new LoopbackNetwork({ clock: new SystemClock(), seed: 2 });
    const [t, other] = [net.driver('t'), net.driver('o')];
    const bridge = serveLinkDriver(bus, ns, 'transport-usb', t);
    cleanups.push(() => bridge.close());
    net.connect(t, other, { maxFrameBytes: 256 });
    await waitFor(() => (bridge.links === 1 ? true : undefined), { what: 'the link up' });

    const driver = new BusLinkDriver({ bus, subjects: ns, transports: ['transport-usb'] });
    cleanups.push(() => driver.close());
    const events = recorder(driver);
    await driver.ready();
    expect(events).toMatchObject([
      {
        type: 'up',
        link: { id: expect.stringMatching(/^transport-usb\//), transport: 'loopback' },
      },
    ]);
    expect(driver.counters.reconciledUp).toBe(1);
  });

  it("carries a restricted peer's permissions and principal with the link, live and when asked", async () => {
    const bus = new LocalBus();
    cleanups.push(() => bus.close());
    const ns = new Subjects('restricted-link');
    const net = new LoopbackNetwork({ clock: new SystemClock(), seed: 3 });
    const [t, other] = [net.driver('t'), net.driver('o')];
    const permissions = { read: { everything: true }, write: { everything: false } };
    const bridge = serveLinkDriver(bus, ns, 'gateway', restrictedDriver(t, permissions));
    cleanups.push(() => bridge.close());
    const live = new BusLinkDriver({ bus, subjects: ns, transports: ['gateway'] });
    cleanups.push(() => live.close());
    const liveEvents = recorder(live);
    await live.ready();
    net.connect(t, other, { maxFrameBytes: 256 });
    await waitFor(() => (liveEvents.length === 1 ? true : undefined), { what: 'the link up' });
    // A multiplexer that starts later asks for the links and gets the same.
    const late = new BusLinkDriver({ bus, subjects: ns, transports: ['gateway'] });
    cleanups.push(() => late.close());
    const lateEvents = recorder(late);
    await late.ready();
    for (const events of [liveEvents, lateEvents]) {
      expect(events).toMatchObject([
        {
          type: 'up',
          link: {
            permissions: { read: { everything: true }, write: {} },
            principal: 'app-key',
          },
        },
      ]);
    }
  });

  it('a transport that dies without a LinkDown loses its links after deadAfterMs', async () => {
    const bus = new LocalBus();
    cleanups.push(() => bus.close());
    const ns = new Subjects('dead-transport');
    // A stand-in transport that lists one link, then stops answering (its process died).
    const listing = serve(
      bus,
      ns.request('transport-ble', 'links'),
      () =>
        v1.LinkList.encode({
          links: [{ linkId: 'x', transport: 'ble', capabilities: { maxFrameBytes: 182 } }],
        }).finish(),
      { service: 'transport-ble' },
    );
    const driver = new BusLinkDriver({
      bus,
      subjects: ns,
      transports: ['transport-ble'],
      reconcileMs: 50,
      deadAfterMs: 300,
    });
    cleanups.push(() => driver.close());
    const events = recorder(driver);
    await driver.ready();
    expect(events.map((e) => e.type)).toEqual(['up']);
    await listing.stop();
    const stoppedAt = Date.now();
    await waitFor(() => (events.length === 2 ? true : undefined), {
      timeoutMs: 3_000,
      what: 'the link down',
    });
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(250);
    expect(events[1]).toMatchObject({ type: 'down', reasonCode: 'MUX_TRANSPORT_GONE' });
  });

  it('a link the multiplexer closes is closed at the transport; an unlisted link goes down', async () => {
    const bus = new LocalBus();
    cleanups.push(() => bus.close());
    const ns = new Subjects('close-link');
    const net = new LoopbackNetwork({ clock: new SystemClock(), seed: 3 });
    const [t, other] = [net.driver('t'), net.driver('o')];
    const bridge = serveLinkDriver(bus, ns, 'transport-lan', t);
    cleanups.push(() => bridge.close());
    const driver = new BusLinkDriver({
      bus,
      subjects: ns,
      transports: ['transport-lan'],
      reconcileMs: 0,
    });
    cleanups.push(() => driver.close());
    const events = recorder(driver);
    await driver.ready();
    const link = net.connect(t, other, { maxFrameBytes: 256 });
    await waitFor(() => (events.length === 1 ? true : undefined), { what: 'the link up' });
    const up = events[0] as Extract<LinkEvent, { type: 'up' }>;

    driver.closeLink(up.link.id, 'MUX_AUTH_FAILED', 'refused');
    expect(events[1]).toMatchObject({ type: 'down', reasonCode: 'MUX_AUTH_FAILED' });
    await waitFor(() => (link.isUp ? undefined : true), { what: 'the transport closing it' });
    expect(bridge.links).toBe(0);

    // A link the transport no longer lists (its LinkDown was lost): the next reconcile drops it.
    let listed = true;
    const stand = new Subjects('listing');
    const listing = serve(
      bus,
      stand.request('transport-lan', 'links'),
      () =>
        v1.LinkList.encode({
          links: listed
            ? [{ linkId: 'y', transport: 'lan', capabilities: { maxFrameBytes: 99 } }]
            : [],
        }).finish(),
      { service: 'transport-lan' },
    );
    cleanups.push(() => listing.stop());
    const second = new BusLinkDriver({
      bus,
      subjects: stand,
      transports: ['transport-lan'],
      reconcileMs: 0,
    });
    cleanups.push(() => second.close());
    const seen = recorder(second);
    await second.ready();
    listed = false;
    await second.reconcile();
    expect(seen).toMatchObject([{ type: 'up' }, { type: 'down', reasonCode: 'MUX_LINK_GONE' }]);
    expect(second.counters.reconciledDown).toBe(1);
  });
});
