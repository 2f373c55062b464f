import { describe, expect, it } from 'vitest';
import { LoopbackNetwork, SimulatedClock } from '@lattice/multiplexer';
import type { LinkId } from '@lattice/multiplexer';
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

describe('transmit buffer', () => {
  it('takes frames ahead of the transmitter up to transmitBufferMs, at the same bandwidth', () => {
    const clock = new SimulatedClock();
    const net = new LoopbackNetwork({ clock, seed: 1 });
    const [a, b] = [net.driver('a'), net.driver('b')];
    const arrivals: number[] = [];
    b.listen((e) => {
      if (e.type === 'frame') arrivals.push(clock.now());
    });
    // 100 B at 10 kB/s: 10 ms per frame; 25 ms of buffer holds the frame in flight and 2 more.
    const link = net.connect(a, b, {
      maxFrameBytes: 100,
      bandwidthBytesPerS: 10_000,
      latencyMs: 1,
      transmitBufferMs: 25,
    });
    const frame = new Uint8Array(100);
    const id = a.links[0]?.id;
    expect(id).toBeDefined();
    let taken = 0;
    while (a.send(id as LinkId, frame)) taken++;
    // On the air from 0, 10 and 20 ms; a 4th would wait until 30 ms, beyond the buffer.
    expect(taken).toBe(3);
    clock.runUntil(() => arrivals.length === 3);
    expect(arrivals).toEqual([11, 21, 31]);
    expect(link.stats.aToB.busyMs).toBe(30);
  });
});
