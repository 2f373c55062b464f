import { describe, expect, it } from 'vitest';
import { runLinkDriverContractTests } from '@lattice/multiplexer/testing';
import { v1 } from '@lattice/proto';
import type { LinkEvent } from '@lattice/multiplexer';
import {
  serialBandwidth,
  serialMaxFrameBytes,
  frameOverheadBytes,
  type SerialLinkDriver,
} from '../src/index.js';
import { record, serialPair, waitFor, type Recorded } from './harness.js';

runLinkDriverContractTests('SerialLinkDriver over a socat pty pair', async () => {
  const { pair, a, b, close } = await serialPair();
  return {
    a,
    b,
    // The link comes up when each port opens (already under way): wait for both.
    open: async () => {
      await waitFor(() => a.links.length === 1 && b.links.length === 1, { what: 'ports open' });
    },
    cut: () => pair.unplug(),
    waitFor: async (condition, what) => {
      await waitFor(condition, { what, intervalMs: 5 });
    },
    close,
  };
});

describe('SerialLinkDriver', () => {
  it('advertises a stream link with a CRC, baud/10 bytes/s and a frame of about 20 ms', async () => {
    const { a, close } = await serialPair({ baudRate: 115_200 });
    try {
      await waitFor(() => a.links[0], { what: 'link up' });
      const c = a.links[0]?.capabilities;
      expect(c).toMatchObject({
        kind: v1.LinkKind.LINK_KIND_STREAM,
        checksummed: true,
        ordered: true,
        reliable: false,
        bandwidthBytesPerS: 11_520,
        maxFrameBytes: 230,
      });
      expect(serialBandwidth(9_600)).toBe(960);
      expect(serialMaxFrameBytes(9_600)).toBe(64);
      expect(serialMaxFrameBytes(3_000_000)).toBe(6_000);
      expect(serialMaxFrameBytes(4_000_000)).toBe(8_000);
      expect(serialMaxFrameBytes(12_000_000)).toBe(16_384);
      // A max frame plus framing fits the 20 ms budget at 115 200 baud.
      expect(((230 + frameOverheadBytes(230)) * 1000) / 11_520).toBeLessThan(21);
    } finally {
      await close();
    }
  });

  it('delivers every frame in order on a clean line (1 000 frames each way)', async () => {
    const { a, b, close } = await serialPair();
    const ra = record(a);
    const rb = record(b);
    try {
      await waitFor(() => ra.up() !== undefined && rb.up() !== undefined, { what: 'both up' });
      const la = ra.up()!;
      const lb = rb.up()!;
      const max = la.capabilities.maxFrameBytes;
      const make = (i: number): Uint8Array =>
        Uint8Array.from({ length: 1 + ((i * 37) % max) }, (_, j) => (i + j * 13) & 0xff);
      const frames = Array.from({ length: 1_000 }, (_, i) => make(i));
      const pump = async (from: typeof a, rec: typeof ra, id: typeof la.id): Promise<void> => {
        for (const f of frames) {
          while (!from.send(id, f)) {
            const seen = rec.events.length;
            await waitFor(() => rec.events.slice(seen).some((e) => e.type === 'writable'), {
              what: 'writable',
              intervalMs: 1,
            });
          }
        }
      };
      await Promise.all([pump(a, ra, la.id), pump(b, rb, lb.id)]);
      await waitFor(() => rb.frames(lb.id).length === 1_000 && ra.frames(la.id).length === 1_000, {
        what: 'all frames',
      });
      expect(rb.frames(lb.id)).toEqual(frames);
      expect(ra.frames(la.id)).toEqual(frames);
      expect(a.counters[0]?.corrupt).toBe(0);
      // The port's queue filled and drained: `send` refused frames and `writable` followed.
      expect(ra.events.some((e) => e.type === 'writable')).toBe(true);
      expect(ra.downs()).toEqual([]);
    } finally {
      await close();
    }
  });

  it('carries bulk data both ways without stalling for a keepalive (serialport poller fix)', async () => {
    // Without `guardUnixPoller` a write blocked on a full pty sleeps until the next readable
    // event, at worst the peer's keepalive (30 s here): 2 runs of this test in 6 timed out
    // without the fix, none with it (a 20 MB reproduction: 3 stalls in 9 runs before, 0 in 11
    // after). `unix-poller.test.ts` shows the mechanism deterministically.
    const { a, b, close } = await serialPair({
      baudRate: 4_000_000,
      keepaliveMs: 30_000,
      silenceMs: 60_000,
    });
    const ra = record(a);
    const rb = record(b);
    try {
      await waitFor(() => ra.up() !== undefined && rb.up() !== undefined, { what: 'both up' });
      const total = 16_000_000;
      const frame = new Uint8Array(a.capabilities.maxFrameBytes).fill(0x5a);
      let got = 0;
      let last = performance.now();
      let longestGap = 0;
      const arrived = (e: LinkEvent): void => {
        if (e.type !== 'frame') return;
        const now = performance.now();
        longestGap = Math.max(longestGap, now - last);
        last = now;
        got += e.data.length;
      };
      a.listen(arrived);
      b.listen(arrived);
      const pump = async (from: SerialLinkDriver, rec: Recorded): Promise<void> => {
        const id = rec.up()!.id;
        for (let sent = 0; sent < total; sent += frame.length) {
          while (!from.send(id, frame)) {
            await new Promise<void>((resolve) => {
              const stop = from.listen((e) => {
                if (e.type === 'writable') {
                  stop();
                  resolve();
                }
              });
            });
          }
        }
      };
      await Promise.all([pump(a, ra), pump(b, rb)]);
      await waitFor(() => got >= 2 * Math.ceil(total / frame.length) * frame.length, {
        what: 'both transfers',
        timeoutMs: 20_000,
      });
      expect(longestGap).toBeLessThan(2_000);
      expect(a.counters[0]?.keepalivesSent).toBe(0);
    } finally {
      await close();
    }
  }, 30_000);

  it('reopens a port after closeLink and after an unplug, with a new link that carries frames', async () => {
    const { pair, a, b, close } = await serialPair();
    const ra = record(a);
    const rb = record(b);
    try {
      await waitFor(() => ra.up() !== undefined && rb.up() !== undefined, { what: 'both up' });
      const first = ra.up()!.id;
      a.closeLink(first, 'MUX_HANDSHAKE_TIMEOUT', 'test');
      expect(ra.downs()).toMatchObject([{ linkId: first, reasonCode: 'MUX_HANDSHAKE_TIMEOUT' }]);
      await waitFor(() => ra.up(), { what: 'reopened after closeLink' });
      const second = ra.up()!.id;
      expect(second).not.toBe(first);
      expect(a.send(second, Uint8Array.of(1, 2, 3))).toBe(true);
      await waitFor(() => rb.frames().length === 1, { what: 'frame on the reopened port' });

      await pair.unplug();
      await waitFor(() => ra.up() === undefined && rb.up() === undefined, { what: 'both down' });
      // While the cable is out, opening fails and is retried with backoff.
      await waitFor(() => (a.counters[0]?.openFailures ?? 0) >= 2, { what: 'failed reopens' });
      await pair.replug();
      await waitFor(() => ra.up() !== undefined && rb.up() !== undefined, {
        what: 'both up again',
      });
      expect(a.send(ra.up()!.id, Uint8Array.of(4, 5))).toBe(true);
      await waitFor(() => rb.frames().length === 2, { what: 'frame after replug' });
      expect(rb.frames()[1]).toEqual(Uint8Array.of(4, 5));
    } finally {
      await close();
    }
  });
});
