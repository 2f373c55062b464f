// Unplug and replug under the multiplexer: socat is killed mid-transfer and started again.
import { describe, expect, it } from 'vitest';
import { createIdentity, Multiplexer, type MultiplexerEvent } from '@lattice/multiplexer';
import { record, serialPair, waitFor } from './harness.js';

const COUNT = 200;
const SIZE = 1_000;

function message(i: number): Uint8Array {
  const m = Uint8Array.from({ length: SIZE }, (_, j) => (i * 31 + j) & 0xff);
  new DataView(m.buffer).setUint32(0, i);
  return m;
}

describe('SerialLinkDriver unplugged and replugged under two multiplexers', () => {
  it('takes the link down and up again, and delivers every message exactly once, in order', async () => {
    const { pair, a, b, close } = await serialPair({ silenceMs: 1_000 });
    const ma = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(1)) });
    const mb = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(2)) });
    const ra = record(a);
    const rb = record(b);
    const events: MultiplexerEvent[] = [];
    mb.on((e) => events.push(e));
    const received: number[] = [];
    const corrupted: number[] = [];
    mb.onMessage((m) => {
      const i = new DataView(m.data.buffer, m.data.byteOffset).getUint32(0);
      received.push(i);
      const want = message(i);
      if (m.data.length !== want.length || !m.data.every((x, j) => x === want[j]))
        corrupted.push(i);
    });
    ma.attach(a);
    mb.attach(b);
    try {
      await waitFor(() => ma.peers().some((p) => p.peerId === mb.peerId), { what: 'peer up' });
      const sending = (async () => {
        for (let i = 0; i < COUNT; i++) await ma.send(mb.peerId, message(i));
      })();
      await waitFor(() => received.length >= COUNT / 4, { what: 'a quarter of the messages' });
      const firstA = ra.up()!.id;
      const firstB = rb.up()!.id;
      await pair.unplug();
      await waitFor(() => ra.up() === undefined && rb.up() === undefined, { what: 'both down' });
      const atUnplug = received.length;
      expect(atUnplug).toBeLessThan(COUNT); // the cable really went mid-transfer
      await pair.replug();
      await waitFor(() => ra.up() !== undefined && rb.up() !== undefined, {
        what: 'both up again',
      });
      expect(ra.up()!.id).not.toBe(firstA);
      expect(rb.up()!.id).not.toBe(firstB);
      await sending;
      await waitFor(() => received.length >= COUNT, { what: 'every message', timeoutMs: 20_000 });
      expect(received).toEqual(Array.from({ length: COUNT }, (_, i) => i));
      expect(corrupted).toEqual([]);
      // The end that noticed first by reading says closed, by writing says write failed.
      for (const r of [ra, rb]) {
        expect(r.downs()[0]).toMatchObject({
          reasonCode: expect.stringMatching(/^USB_(PORT_CLOSED|WRITE_FAILED)$/) as string,
        });
      }
      expect(events.filter((e) => e.type === 'link-up').length).toBeGreaterThanOrEqual(2);
    } finally {
      await Promise.all([ma.close(), mb.close()]);
      await close();
    }
  });
});
