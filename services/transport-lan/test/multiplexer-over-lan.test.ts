/**
 * Two multiplexers over two LAN drivers in one process, no bus in between: 64 KiB frames, which
 * the sender hands to its socket uncopied and the receiver assembles from two socket reads in
 * one reused buffer, so both halves of the link contract's frame ownership are exercised.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createIdentity, Multiplexer, Priority, type InboundMessage } from '@lattice/multiplexer';
import { waitFor } from '@lattice/testing';
import { LanLinkDriver } from '../src/index.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

function message(size: number, seed: number): Uint8Array {
  const m = new Uint8Array(size);
  for (let i = 0; i < size; i++) m[i] = (i * 31 + seed * 101 + (i >> 11)) & 0xff;
  return m;
}

describe('multiplexers over LAN drivers, in process', () => {
  it('carry large messages in 64 KiB frames byte-identical, both ways', async () => {
    const db = await LanLinkDriver.start({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => db.close());
    const da = await LanLinkDriver.start({ port: false, peers: [`tcp://127.0.0.1:${db.port}`] });
    cleanups.push(() => da.close());
    const a = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(1)) });
    const b = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(2)) });
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const gotA: InboundMessage[] = [];
    const gotB: InboundMessage[] = [];
    a.onMessage((m) => gotA.push(m));
    b.onMessage((m) => gotB.push(m));
    a.attach(da);
    b.attach(db);
    await waitFor(() => a.peers().length === 1 && b.peers().length === 1, { what: 'peers up' });
    expect(da.links[0]?.capabilities.maxFrameBytes).toBe(65_536);

    // 65 525 B and its 3-byte length fill exactly one frame (64 KiB less header and CRC), so
    // each of these messages arrives as a single fragment of a record that spans two reads:
    // the multiplexer must copy it out of the driver's reused assembly buffer.
    const toB = [
      ...Array.from({ length: 8 }, (_, i) => message(65_525, 10 + i)),
      message(1_000_000, 1),
      message(300_000, 2),
      message(70_000, 3),
      message(5, 4),
    ];
    const toA = [message(700_000, 5), message(65_536, 6)];
    const sends = [
      ...toB.map((m) => a.send(b.peerId, m, { stream: Priority.BULK })),
      ...toA.map((m) => b.send(a.peerId, m, { stream: Priority.BULK })),
    ];
    await Promise.all(sends);
    await waitFor(() => gotB.length === toB.length && gotA.length === toA.length, {
      what: 'every message',
      timeoutMs: 20_000,
    });
    // Compared as Buffers: a deep equality of megabyte arrays takes seconds.
    const same = (got: readonly InboundMessage[], sent: readonly Uint8Array[]): boolean =>
      got.length === sent.length &&
      got.every((m, i) => Buffer.from(m.data).equals(Buffer.from(sent[i] as Uint8Array)));
    expect(same(gotB, toB)).toBe(true);
    expect(same(gotA, toA)).toBe(true);
    // The frames were large: most of the 2 MB went in frames that span socket reads.
    expect(da.counters.framesSent).toBeLessThan(100);
  });
});
