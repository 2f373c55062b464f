// Helpers of this package's tests: serial drivers over a socat pty pair, with short timers.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { socatPtyPair, waitFor, type PtyPair } from '@lattice/testing';
import type { LinkEvent, LinkId, LinkInfo } from '@lattice/multiplexer';
import { SerialLinkDriver, type SerialLinkDriverOptions } from '../src/index.js';

/** Options that make tests fast: quick reopen, short keepalive. */
export const FAST: Partial<SerialLinkDriverOptions> = {
  reopenMinMs: 20,
  reopenMaxMs: 200,
  keepaliveMs: 100,
  silenceMs: 2_000,
};

/** Everything a driver reported. */
export interface Recorded {
  readonly events: LinkEvent[];
  up(): LinkInfo | undefined;
  frames(id?: LinkId): Uint8Array[];
  downs(): LinkEvent[];
  stop(): void;
}

export function record(driver: SerialLinkDriver): Recorded {
  const events: LinkEvent[] = [];
  // A frame's data is the driver's and valid only during the event (the link contract): copied.
  const stop = driver.listen((e) =>
    events.push(e.type === 'frame' ? { ...e, data: e.data.slice() } : e),
  );
  return {
    events,
    up: () => {
      const last = [...events].reverse().find((e) => e.type === 'up' || e.type === 'down');
      return last?.type === 'up' ? last.link : undefined;
    },
    frames: (id) =>
      events.flatMap((e) =>
        e.type === 'frame' && (id === undefined || e.linkId === id) ? [e.data] : [],
      ),
    downs: () => events.filter((e) => e.type === 'down'),
    stop,
  };
}

/**
 * A raw second handle on a pty end, for writing bytes past the driver.
 * @remarks Writes run on the thread pool (a full pty blocks the writer until the driver reads),
 *   one after the other in call order.
 */
export async function rawWriter(
  path: string,
): Promise<{ write(bytes: Uint8Array): Promise<void>; close(): Promise<void> }> {
  const handle = await open(path, constants.O_RDWR | constants.O_NOCTTY);
  return {
    write: async (bytes) => {
      let at = 0;
      while (at < bytes.length) at += (await handle.write(bytes, at)).bytesWritten;
    },
    close: () => handle.close(),
  };
}

/** A pty pair and a driver on each end; `close` releases all of it. */
export async function serialPair(options: Partial<SerialLinkDriverOptions> = {}): Promise<{
  pair: PtyPair;
  a: SerialLinkDriver;
  b: SerialLinkDriver;
  close(): Promise<void>;
}> {
  const pair = await socatPtyPair();
  const a = new SerialLinkDriver({ ...FAST, ...options, ports: [pair.a], name: 'usb-a' });
  const b = new SerialLinkDriver({ ...FAST, ...options, ports: [pair.b], name: 'usb-b' });
  return {
    pair,
    a,
    b,
    close: async () => {
      await Promise.all([a.close(), b.close()]);
      await pair.stop();
    },
  };
}

export { waitFor };
