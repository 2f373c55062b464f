import { LocalBus } from '@lattice/bus';
import { Subjects, v1 } from '@lattice/proto';
import { waitFor } from '@lattice/testing';
import { BusLinkDriver } from '@lattice/multiplexer';
import { runLinkDriverContractTests } from '@lattice/multiplexer/testing';

// The bus link driver of two peers (two namespaces on one LocalBus), with a stand-in
// `transport-lan` between them that announces the link and relays its frames.
runLinkDriverContractTests('BusLinkDriver', async () => {
  const bus = new LocalBus();
  const nsA = new Subjects('contract-a');
  const nsB = new Subjects('contract-b');
  const a = new BusLinkDriver({ bus, subjects: nsA, transports: ['transport-lan'] });
  const b = new BusLinkDriver({ bus, subjects: nsB, transports: ['transport-lan'] });
  await a.ready();
  await b.ready();
  const relays = [
    [nsA, nsB],
    [nsB, nsA],
  ].map(([from, to]) => {
    const sub = bus.subscribe((from as Subjects).framesOut('transport-lan', 'l1'));
    void (async () => {
      for await (const m of sub)
        bus.publish((to as Subjects).framesIn('transport-lan', 'l1'), m.data);
    })();
    return sub;
  });
  const announce = (kind: 'up' | 'down'): void => {
    for (const ns of [nsA, nsB]) {
      bus.publish(
        ns.linkEvent('transport-lan', kind),
        kind === 'up'
          ? v1.LinkUp.encode({
              linkId: 'l1',
              transport: 'lan',
              capabilities: {
                maxFrameBytes: 1_024,
                reliable: true,
                ordered: true,
                checksummed: true,
              },
            }).finish()
          : v1.LinkDown.encode({ linkId: 'l1', transport: 'lan' }).finish(),
      );
    }
  };
  return {
    a,
    b,
    open: async () => announce('up'),
    cut: async () => announce('down'),
    waitFor: async (condition, what) => {
      await waitFor(() => condition() || undefined, { what, intervalMs: 1 });
    },
    close: async () => {
      for (const r of relays) r.unsubscribe();
      await a.close();
      await b.close();
      await bus.close();
    },
  };
});
