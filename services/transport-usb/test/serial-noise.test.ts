// A driver on one pty end; the test writes the other end through a raw handle, so it decides
// byte for byte what the line carries: intact frames, garbage, flipped bits, torn frames.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { socatPtyPair } from '@lattice/testing';
import { encodeSerialFrame, SerialFrameType, SerialLinkDriver } from '../src/index.js';
import { FAST, rawWriter, record, waitFor } from './harness.js';

describe('SerialLinkDriver on a noisy line', () => {
  it('drops and counts every corrupted frame, delivers every intact one, and stays up', async () => {
    await using pair = await socatPtyPair();
    const driver = new SerialLinkDriver({ ...FAST, ports: [pair.b] });
    const rec = record(driver);
    const raw = await rawWriter(pair.a);
    try {
      await waitFor(() => rec.up(), { what: 'link up' });
      const link = rec.up()!;
      const max = link.capabilities.maxFrameBytes;
      // A fixed seed: the same line every run; any failure names the frame.
      const rnd = fc.sample(fc.integer({ min: 0, max: 0xffff_ffff }), { numRuns: 4_000, seed: 42 });
      let r = 0;
      const next = (n: number): number => (rnd[r++ % rnd.length] as number) % n;
      const expected: Uint8Array[] = [];
      let corrupted = 0;
      const counts = { garbage: 0, flip: 0, truncate: 0 };
      for (let i = 0; i < 300; i++) {
        const payload = Uint8Array.from({ length: 1 + next(max) }, (_, j) => (i * 7 + j) & 0xff);
        const line = encodeSerialFrame(SerialFrameType.DATA, payload);
        const fault = next(4);
        if (fault === 0) {
          // Random bytes between two frames (no zero in them, so they are one run to drop).
          await raw.write(line);
          expected.push(payload);
          await raw.write(Uint8Array.from({ length: 1 + next(200) }, () => 1 + next(255)));
          corrupted++;
          counts.garbage++;
        } else if (fault === 1) {
          const bad = line.slice();
          const at = 1 + next(line.length - 2);
          const bit = 1 << next(8);
          const was = bad[at] as number;
          // A flip that makes a zero splits the frame in two (another fault): flip another bit.
          bad[at] = was === bit ? was ^ (bit === 1 ? 2 : 1) : was ^ bit;
          await raw.write(bad);
          corrupted++;
          counts.flip++;
        } else if (fault === 2) {
          await raw.write(line.subarray(0, 2 + next(line.length - 3)));
          corrupted++;
          counts.truncate++;
        } else {
          await raw.write(line);
          expected.push(payload);
        }
      }
      await raw.write(Uint8Array.of(0)); // ends whatever fault came last
      expect(Math.min(counts.garbage, counts.flip, counts.truncate)).toBeGreaterThan(30);
      const c = (): { corrupt: number; oversized: number } => driver.counters[0]!;
      await waitFor(
        () =>
          rec.frames(link.id).length === expected.length &&
          c().corrupt + c().oversized === corrupted,
        { what: `${expected.length} frames and ${corrupted} drops` },
      );
      expect(rec.frames(link.id)).toEqual(expected);
      expect(rec.downs()).toEqual([]);
      expect(rec.up()?.id).toBe(link.id);
    } finally {
      await raw.close();
      await driver.close();
    }
  });

  it('reports a silent line down through keepalives, and a new link when it speaks again', async () => {
    await using pair = await socatPtyPair();
    const driver = new SerialLinkDriver({ ...FAST, silenceMs: 300, ports: [pair.b] });
    const rec = record(driver);
    const raw = await rawWriter(pair.a); // holds the other end open, says nothing
    try {
      await waitFor(() => rec.up(), { what: 'link up' });
      const first = rec.up()!;
      await waitFor(() => rec.downs().length === 1, { what: 'silent link down' });
      expect(rec.downs()[0]).toMatchObject({ linkId: first.id, reasonCode: 'USB_LINK_SILENT' });
      expect(driver.send(first.id, Uint8Array.of(1))).toBe(false);
      // The driver kept sending keepalives meanwhile (the port stays open).
      expect(driver.counters[0]?.keepalivesSent).toBeGreaterThan(0);
      await raw.write(encodeSerialFrame(SerialFrameType.KEEPALIVE, new Uint8Array(0)));
      await waitFor(() => rec.up(), { what: 'link up again' });
      expect(rec.up()?.id).not.toBe(first.id);
    } finally {
      await raw.close();
      await driver.close();
    }
  });

  it('keeps a quiet link between two drivers up with keepalives', async () => {
    await using pair = await socatPtyPair();
    const opts = { ...FAST, keepaliveMs: 30, silenceMs: 200 };
    const a = new SerialLinkDriver({ ...opts, ports: [pair.a] });
    const b = new SerialLinkDriver({ ...opts, ports: [pair.b] });
    const rb = record(b);
    try {
      await waitFor(() => rb.up(), { what: 'link up' });
      // Twenty keepalives is 600 ms, three times the silence limit, without a data frame.
      await waitFor(() => (b.counters[0]?.frames ?? 0) >= 20, { what: '20 keepalives' });
      expect(rb.downs()).toEqual([]);
      expect(rb.frames()).toEqual([]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('survives a port lister that fails (no udev) and opens ports a lister reports', async () => {
    await using pair = await socatPtyPair();
    const errors: string[] = [];
    const failing = new SerialLinkDriver({
      ...FAST,
      ports: [pair.a],
      watch: true,
      watchIntervalMs: 20,
      listPorts: () => Promise.reject(new Error('udev is not running')),
      onError: (e) => errors.push(e.code),
    });
    // No configured port: the lister's USB port (a vendor id) is opened.
    const watching = new SerialLinkDriver({
      ...FAST,
      ports: [],
      watch: true,
      watchIntervalMs: 20,
      listPorts: () =>
        Promise.resolve([{ path: pair.b, vendorId: '0403' }, { path: '/dev/ttyS0' }]),
    });
    const ra = record(failing);
    const rb = record(watching);
    try {
      await waitFor(() => ra.up() !== undefined && rb.up() !== undefined, { what: 'both up' });
      expect(watching.counters.map((c) => c.path)).toEqual([pair.b]);
      await waitFor(() => failing.send(ra.up()!.id, Uint8Array.of(9, 9)), { what: 'sent' });
      await waitFor(() => rb.frames().length === 1, { what: 'frame over the watched port' });
      expect(errors.filter((c) => c === 'USB_LIST_FAILED')).toEqual(['USB_LIST_FAILED']);
    } finally {
      await Promise.all([failing.close(), watching.close()]);
    }
  });
});
