/**
 * Test helpers for link drivers: the contract suite every {@link LinkDriver} runs.
 *
 * @remarks
 * A driver's own test file calls `runLinkDriverContractTests('LoopbackLinkDriver', setup)`,
 * where `setup` opens two connected drivers. Drivers declare what they are through the link's
 * capabilities (`reliable`, `ordered`, `maxFrameBytes`), and the suite checks only what those
 * promise. Waiting goes through the harness's `waitFor`, which a simulated-time driver implements
 * by advancing its clock and a real one by re-checking on every event; the suite never sleeps.
 */
import { describe, expect, it } from 'vitest';
import { MIN_FRAME_BYTES } from './frame-codec.js';
import type { v1 } from '@lattice/proto';
import type { LinkDriver, LinkEvent, LinkId, LinkInfo, LinkListener } from './link-driver.js';

/** Two connected drivers, as a contract test needs them. */
export interface LinkDriverHarness {
  readonly a: LinkDriver;
  readonly b: LinkDriver;
  /** Opens a link between `a` and `b` (each side then reports it up). */
  open(): Promise<void>;
  /** Cuts the link from outside (unplug, radio loss): both sides must report it down. */
  cut(): Promise<void>;
  /** Resolves once `condition()` holds (simulated drivers advance their clock). */
  waitFor(condition: () => boolean, what: string): Promise<void>;
  close(): Promise<void>;
}

interface Recorder {
  readonly events: LinkEvent[];
  up(): LinkInfo | undefined;
  frames(id: LinkId): Uint8Array[];
  stop(): void;
}

function record(driver: LinkDriver): Recorder {
  const events: LinkEvent[] = [];
  // A frame's data is valid only during its event (the link contract): keep a copy.
  const stop = driver.listen((e) =>
    events.push(e.type === 'frame' ? { ...e, data: new Uint8Array(e.data) } : e),
  );
  return {
    events,
    up: () => {
      const ups = events.filter((e) => e.type === 'up');
      const last = ups[ups.length - 1];
      return last?.type === 'up' ? last.link : undefined;
    },
    frames: (id) => events.flatMap((e) => (e.type === 'frame' && e.linkId === id ? [e.data] : [])),
    stop,
  };
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);
}

/** Sends every frame, waiting for `writable` when the link refuses one. */
async function sendAll(
  h: LinkDriverHarness,
  from: LinkDriver,
  rec: Recorder,
  id: LinkId,
  frames: readonly Uint8Array[],
): Promise<void> {
  for (const f of frames) {
    while (!from.send(id, f)) {
      const seen = rec.events.length;
      await h.waitFor(
        () => rec.events.slice(seen).some((e) => e.type === 'writable' || e.type === 'down'),
        'writable',
      );
      if (rec.events.slice(seen).some((e) => e.type === 'down')) throw new Error('link went down');
    }
  }
}

/** Runs the link-driver contract suite; see the module comment. */
export function runLinkDriverContractTests(
  name: string,
  setup: () => Promise<LinkDriverHarness>,
): void {
  describe(`${name} (link driver contract)`, () => {
    async function opened(): Promise<{
      h: LinkDriverHarness;
      ra: Recorder;
      rb: Recorder;
      la: LinkInfo;
      lb: LinkInfo;
    }> {
      const h = await setup();
      const ra = record(h.a);
      const rb = record(h.b);
      await h.open();
      await h.waitFor(() => ra.up() !== undefined && rb.up() !== undefined, 'both ends up');
      return { h, ra, rb, la: ra.up() as LinkInfo, lb: rb.up() as LinkInfo };
    }

    it('reports a new link up on both ends with usable capabilities', async () => {
      const { h, la, lb } = await opened();
      try {
        for (const l of [la, lb]) {
          expect(l.capabilities.maxFrameBytes).toBeGreaterThanOrEqual(MIN_FRAME_BYTES);
          expect(l.transport.length).toBeGreaterThan(0);
          expect(l.id.length).toBeGreaterThan(0);
        }
        expect(la.capabilities.maxFrameBytes).toBe(lb.capabilities.maxFrameBytes);
      } finally {
        await h.close();
      }
    });

    it('replays links already up to a new listener', async () => {
      const { h, la } = await opened();
      try {
        const late = record(h.a);
        expect(late.up()?.id).toBe(la.id);
        late.stop();
      } finally {
        await h.close();
      }
    });

    it('carries frames of every size up to the maximum, byte-identical, both ways', async () => {
      const { h, ra, rb, la, lb } = await opened();
      try {
        const max = la.capabilities.maxFrameBytes;
        const sizes = [1, 2, MIN_FRAME_BYTES, Math.floor(max / 2), max - 1, max];
        const ab = sizes.map((n, i) => bytes(n, i));
        const ba = sizes.map((n, i) => bytes(n, i + 100));
        await sendAll(h, h.a, ra, la.id, ab);
        await sendAll(h, h.b, rb, lb.id, ba);
        if (la.capabilities.reliable) {
          await h.waitFor(
            () => rb.frames(lb.id).length === ab.length && ra.frames(la.id).length === ba.length,
            'every frame',
          );
          const sort = (fs: Uint8Array[]): Uint8Array[] =>
            la.capabilities.ordered ? fs : [...fs].sort((x, y) => x.length - y.length);
          expect(sort(rb.frames(lb.id))).toEqual(sort(ab));
          expect(sort(ra.frames(la.id))).toEqual(sort(ba));
        } else {
          // An unreliable link may lose frames, but what arrives is intact.
          await h.waitFor(() => rb.frames(lb.id).length > 0, 'some frame');
          for (const f of rb.frames(lb.id)) expect(ab).toContainEqual(f);
        }
      } finally {
        await h.close();
      }
    });

    it('refuses a frame over the maximum with MUX_FRAME_TOO_LARGE', async () => {
      const { h, la } = await opened();
      try {
        expect(() => h.a.send(la.id, new Uint8Array(la.capabilities.maxFrameBytes + 1))).toThrow(
          expect.objectContaining({ code: 'MUX_FRAME_TOO_LARGE' }) as Error,
        );
      } finally {
        await h.close();
      }
    });

    it('signals writable after refusing a frame, and never loses a frame it accepted on a reliable link', async () => {
      const { h, ra, rb, la, lb } = await opened();
      try {
        const frames = Array.from({ length: 200 }, (_, i) =>
          bytes(la.capabilities.maxFrameBytes, i),
        );
        await sendAll(h, h.a, ra, la.id, frames);
        if (la.capabilities.reliable) {
          await h.waitFor(() => rb.frames(lb.id).length === frames.length, 'all 200 frames');
        }
      } finally {
        await h.close();
      }
    });

    it('reports a cut link down on both ends; sending on it is refused', async () => {
      const { h, ra, rb, la, lb } = await opened();
      try {
        await h.cut();
        const down = (r: Recorder, id: LinkId): boolean =>
          r.events.some((e) => e.type === 'down' && e.linkId === id);
        await h.waitFor(() => down(ra, la.id) && down(rb, lb.id), 'both ends down');
        expect(h.a.send(la.id, bytes(4, 1))).toBe(false);
      } finally {
        await h.close();
      }
    });

    it('closes a link on request: the end that asked reports it down and stops sending', async () => {
      const { h, ra, la } = await opened();
      try {
        h.a.closeLink(la.id, 'MUX_SELF_LINK', 'test');
        await h.waitFor(
          () => ra.events.some((e) => e.type === 'down' && e.linkId === la.id),
          'the closing end down',
        );
        expect(h.a.send(la.id, bytes(4, 1))).toBe(false);
      } finally {
        await h.close();
      }
    });

    it('stops delivering events to a listener that unsubscribed', async () => {
      const { h, la, ra, rb, lb } = await opened();
      try {
        // Two listeners on one end both get a frame; once one unsubscribes, only the other does.
        const probe = record(h.b);
        await sendAll(h, h.a, probe, la.id, [bytes(8, 2)]);
        if (la.capabilities.reliable) {
          await h.waitFor(() => probe.frames(lb.id).length === 1, 'the first probe frame');
          await h.waitFor(() => rb.frames(lb.id).length === 1, 'the frame at the other listener');
        }
        ra.stop();
        rb.stop();
        const before = rb.events.length;
        await sendAll(h, h.a, probe, la.id, [bytes(8, 3)]);
        if (la.capabilities.reliable) {
          await h.waitFor(() => probe.frames(lb.id).length === 2, 'the second probe frame');
        }
        expect(rb.events.length).toBe(before);
        probe.stop();
      } finally {
        await h.close();
      }
    });
  });
}

/**
 * `inner`, reporting `permissions` (undefined: everything) and the principal `principal` for the
 * peer behind each of its links, as a transport that authenticated an app does (the gateway's
 * WebSocket endpoint).
 */
export function restrictedDriver(
  inner: LinkDriver,
  permissions: v1.IPermissions | undefined,
  principal = 'app-key',
): LinkDriver {
  return {
    name: inner.name,
    listen: (listener: LinkListener) =>
      inner.listen((e) =>
        listener(
          e.type === 'up'
            ? {
                type: 'up',
                link: {
                  ...e.link,
                  principal,
                  ...(permissions === undefined ? {} : { permissions }),
                },
              }
            : e,
        ),
      ),
    send: (id, frame) => inner.send(id, frame),
    closeLink: (id, code, reason) => inner.closeLink(id, code, reason),
    close: () => inner.close(),
  };
}
