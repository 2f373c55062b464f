/**
 * A mesh with a shared key: only peers that prove they hold it get a link; links whose transport
 * authenticated the remote itself (an app's key at the gateway) are admitted without it.
 */
import { describe, expect, it } from 'vitest';
import {
  createIdentity,
  LoopbackNetwork,
  Multiplexer,
  SimulatedClock,
  type MultiplexerEvent,
} from '@lattice/multiplexer';
import { restrictedDriver } from '@lattice/multiplexer/testing';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { meshKeyFromFile } from '@lattice/multiplexer';
import { tempDir } from '@lattice/testing';

const KEY = new Uint8Array(32).fill(42);
const OTHER_KEY = new Uint8Array(32).fill(43);

/** Two multiplexers on one loopback link; resolves the events of both once the link settled. */
function pair(
  aKey: Uint8Array | undefined,
  bKey: Uint8Array | undefined,
  options: { readonly bViaApp?: boolean } = {},
): { a: Multiplexer; b: Multiplexer; events: { a: MultiplexerEvent[]; b: MultiplexerEvent[] } } {
  const clock = new SimulatedClock();
  const net = new LoopbackNetwork({ clock });
  const a = new Multiplexer({
    identity: createIdentity(new Uint8Array(32).fill(1)),
    clock,
    meshKey: aKey,
  });
  const b = new Multiplexer({
    identity: createIdentity(new Uint8Array(32).fill(2)),
    clock,
    meshKey: bKey,
  });
  const events = { a: [] as MultiplexerEvent[], b: [] as MultiplexerEvent[] };
  a.on((e) => events.a.push(e));
  b.on((e) => events.b.push(e));
  const da = net.driver('a');
  const db = net.driver('b');
  // With bViaApp, `a` hears b over a transport that authenticated b as an app (a principal).
  a.attach(options.bViaApp === true ? restrictedDriver(da, undefined, 'app-1') : da);
  b.attach(db);
  net.connect(da, db);
  const settled = (): boolean =>
    (a.peers().some((p) => p.connected) && b.peers().some((p) => p.connected)) ||
    [...events.a, ...events.b].some((e) => e.type === 'link-refused');
  clock.runUntil(settled);
  clock.advance(2_000); // let a refusal reach the other side too
  return { a, b, events };
}

const refusal = (events: MultiplexerEvent[]): string | undefined => {
  const e = events.find((x) => x.type === 'link-refused');
  return e?.type === 'link-refused' ? e.error.code : undefined;
};

describe('a mesh key', () => {
  it('links two peers that hold the same key', () => {
    const { a, b, events } = pair(KEY, KEY);
    expect(a.peers()[0]?.peerId).toBe(b.peerId);
    expect(b.peers()[0]?.peerId).toBe(a.peerId);
    expect(refusal(events.a)).toBeUndefined();
  });

  it('refuses a peer with another key, on both sides', () => {
    const { a, b, events } = pair(KEY, OTHER_KEY);
    expect(a.peers().filter((p) => p.connected)).toEqual([]);
    expect(b.peers().filter((p) => p.connected)).toEqual([]);
    expect(refusal(events.a) ?? refusal(events.b)).toBe('MUX_NOT_IN_MESH');
  });

  it('refuses a peer without a key, and a keyless peer gets no link either', () => {
    const { a, b, events } = pair(KEY, undefined);
    expect(a.peers().filter((p) => p.connected)).toEqual([]);
    expect(b.peers().filter((p) => p.connected)).toEqual([]);
    expect(refusal(events.a)).toBe('MUX_NOT_IN_MESH');
    const local = events.a.find((e) => e.type === 'link-refused');
    expect(local?.type === 'link-refused' && local.error.message).toMatch(/no mesh key/);
  });

  it('admits without the key a remote that its transport authenticated (an app at the gateway)', () => {
    const { a, b } = pair(KEY, undefined, { bViaApp: true });
    expect(a.peers()[0]?.peerId).toBe(b.peerId);
    expect(b.peers()[0]?.peerId).toBe(a.peerId);
  });

  it('is read from a file of hex digits; a missing or malformed file is a typed error', async () => {
    await using dir = await tempDir('lattice-mesh-key-');
    const path = join(dir.path, 'mesh.key');
    const read = (text: string | undefined): unknown => {
      if (text !== undefined) writeFileSync(path, text);
      try {
        return meshKeyFromFile(path);
      } catch (e) {
        return (e as { code?: string }).code;
      }
    };
    expect(read(undefined)).toBe('MUX_BAD_REQUEST'); // missing: never created here
    expect(read('not hex at all\n')).toBe('MUX_BAD_REQUEST');
    expect(read(`${'a'.repeat(30)}\n`)).toBe('MUX_BAD_REQUEST'); // under 128 bits
    expect(read(`${'a'.repeat(33)}\n`)).toBe('MUX_BAD_REQUEST'); // odd
    expect(read(`${'0f'.repeat(32)}\n`)).toEqual(new Uint8Array(32).fill(15));
  });

  it('refuses a key shorter than 16 bytes', () => {
    expect(
      () => new Multiplexer({ identity: createIdentity(), meshKey: new Uint8Array(8) }),
    ).toThrow(RangeError);
  });
});
