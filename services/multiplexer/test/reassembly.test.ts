import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DATA_HEADER_BYTES,
  encodeVarint,
  MIN_FRAME_BYTES,
  ReceiveStream,
} from '@lattice/multiplexer';
import type { ReassemblyBudget, ReceiveCounters } from '@lattice/multiplexer';

function counters(): ReceiveCounters {
  return { duplicateBytes: 0, outOfRange: 0, capDrops: 0, timeouts: 0 };
}

function budget(maxBufferedBytes = 2 ** 30, maxReassemblies = 1000): ReassemblyBudget {
  return { bufferedBytes: 0, maxBufferedBytes, reassemblies: 0, maxReassemblies };
}

function streamBytes(messages: readonly Uint8Array[]): Uint8Array {
  const parts = messages.flatMap((m) => [encodeVarint(m.length), m]);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** Fragments a stream's bytes for a link of `maxFrame` bytes (payload = frame − header). */
function fragment(bytes: Uint8Array, maxFrame: number): { offset: number; data: Uint8Array }[] {
  const per = maxFrame - DATA_HEADER_BYTES;
  const out: { offset: number; data: Uint8Array }[] = [];
  for (let o = 0; o < bytes.length; o += per)
    out.push({ offset: o, data: bytes.subarray(o, o + per) });
  return out;
}

describe('reassembly (ReceiveStream)', () => {
  it('property: any messages, any MTU ≥ 20, any order, duplicates and drops with retransmission → each message once, byte-identical, in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 0, maxLength: 3_000 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: MIN_FRAME_BYTES, max: 700 }),
        fc.func(fc.integer()),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 50 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 50 }),
        (messages, mtu, order, dropMask, dupMask) => {
          const got: Uint8Array[] = [];
          const r = new ReceiveStream({
            window: 2 ** 22,
            maxMessageBytes: 2 ** 20,
            maxRanges: 100_000,
            budgets: [budget()],
            counters: counters(),
            deliver: (m) => got.push(m.data),
          });
          const frags = fragment(streamBytes(messages), mtu);
          // First round: shuffled, some dropped, some duplicated.
          const round1 = frags
            .flatMap((f, i) =>
              dropMask[i % dropMask.length] === true
                ? []
                : dupMask[i % dupMask.length] === true
                  ? [f, f]
                  : [f],
            )
            .sort((x, y) => order(x.offset) - order(y.offset));
          for (const f of round1) r.accept(f.offset, f.data, 0);
          // Retransmission: everything not yet received in order, again shuffled (and re-split in
          // halves, as a link with smaller frames would).
          const round2 = frags
            .filter((f) => f.offset + f.data.length > r.next)
            .flatMap((f) => {
              const h = Math.ceil(f.data.length / 2);
              return h < f.data.length
                ? [
                    { offset: f.offset, data: f.data.subarray(0, h) },
                    { offset: f.offset + h, data: f.data.subarray(h) },
                  ]
                : [f];
            })
            .sort((x, y) => order(x.offset + 1) - order(y.offset + 1));
          for (const f of round2) r.accept(f.offset, f.data, 0);
          expect(got).toEqual(messages);
          expect(r.outOfOrderBytes).toBe(0);
          expect(r.isIdle).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('drops and counts overlapping duplicates and out-of-range fragments', () => {
    const c = counters();
    const got: Uint8Array[] = [];
    const r = new ReceiveStream({
      window: 1000,
      maxMessageBytes: 900,
      maxRanges: 100,
      budgets: [budget()],
      counters: c,
      deliver: (m) => got.push(m.data),
    });
    const bytes = streamBytes([new Uint8Array(500).fill(9)]);
    expect(r.accept(100, bytes.subarray(100, 200), 0)).toBe('out-of-order');
    expect(r.accept(150, bytes.subarray(150, 250), 0)).toBe('out-of-order'); // half new
    expect(r.accept(120, bytes.subarray(120, 180), 0)).toBe('duplicate');
    expect(c.duplicateBytes).toBe(50 + 60);
    expect(r.accept(990, new Uint8Array(20), 0)).toBe('out-of-range');
    expect(c.outOfRange).toBe(1);
    expect(r.accept(0, bytes.subarray(0, bytes.length), 0)).toBe('in-order');
    expect(got).toEqual([new Uint8Array(500).fill(9)]);
    expect(r.accept(0, bytes.subarray(0, 10), 0)).toBe('duplicate');
  });

  it('exhaustion attack: many first fragments never completed stay within the caps, then time out', () => {
    const peer = budget(64 * 1024, 2);
    const global = budget(96 * 1024, 3);
    const c = counters();
    const streams = Array.from(
      { length: 8 },
      () =>
        new ReceiveStream({
          window: 2 ** 22,
          maxMessageBytes: 2 ** 22 - 8,
          maxRanges: 256,
          budgets: [peer, global],
          counters: c,
          deliver: () => expect.unreachable('nothing is ever complete'),
        }),
    );
    // An attacker sends 20 000 fragments that each open a message (offset > 0: never in order).
    const peak = { bytes: 0, reassemblies: 0, global: 0, stream: 0 };
    for (let i = 0; i < 20_000; i++) {
      const s = streams[i % 8] as ReceiveStream;
      s.accept(1 + ((i * 7919) % 4_000_000), new Uint8Array(180), i);
      peak.bytes = Math.max(peak.bytes, peer.bufferedBytes);
      peak.reassemblies = Math.max(peak.reassemblies, peer.reassemblies);
      peak.global = Math.max(peak.global, global.reassemblies);
      peak.stream = Math.max(peak.stream, s.outOfOrderBytes);
    }
    expect(peak.bytes).toBeLessThanOrEqual(64 * 1024);
    expect(peak.bytes).toBeGreaterThan(60 * 1024); // the cap was reached, not avoided
    expect(peak.reassemblies).toBe(2);
    expect(peak.global).toBe(2);
    expect(peak.stream).toBeLessThanOrEqual(256 * 180);
    expect(c.capDrops).toBeGreaterThan(19_000);
    // After the reassembly timeout everything is released.
    for (const s of streams) s.expire(20_000 + 30_000, 30_000);
    expect(peer.bufferedBytes).toBe(0);
    expect(peer.reassemblies).toBe(0);
    expect(global.bufferedBytes).toBe(0);
    expect(c.timeouts).toBeGreaterThan(0);
  });

  it('refuses a message announced over the limit with MUX_MESSAGE_TOO_LARGE', () => {
    const r = new ReceiveStream({
      window: 2 ** 22,
      maxMessageBytes: 1000,
      maxRanges: 10,
      budgets: [budget()],
      counters: counters(),
      deliver: () => undefined,
    });
    expect(() => r.accept(0, encodeVarint(1001), 0)).toThrow(
      expect.objectContaining({ code: 'MUX_MESSAGE_TOO_LARGE' }) as Error,
    );
  });
});
