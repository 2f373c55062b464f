import { LoopbackNetwork, SimulatedClock } from '@lattice/multiplexer';
import { runLinkDriverContractTests } from '@lattice/multiplexer/testing';

// The loopback driver in simulated time: 185-byte frames at 20 kB/s, 5 ms one way.
runLinkDriverContractTests('LoopbackLinkDriver', async () => {
  const clock = new SimulatedClock();
  const net = new LoopbackNetwork({ clock, seed: 7 });
  const a = net.driver('a');
  const b = net.driver('b');
  let link: ReturnType<LoopbackNetwork['connect']> | undefined;
  return {
    a,
    b,
    open: async () => {
      link = net.connect(a, b, { maxFrameBytes: 185, bandwidthBytesPerS: 20_000, latencyMs: 5 });
    },
    cut: async () => link?.drop('cut'),
    waitFor: async (condition) => {
      await clock.runUntilAsync(condition, 60_000);
    },
    close: async () => {
      await a.close();
      await b.close();
    },
  };
});
