import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ControlType,
  createIdentity,
  decodeFrame,
  encodeDataFrame,
  LinkHandshake,
  LoopbackNetwork,
  Multiplexer,
  SimulatedClock,
} from '@lattice/multiplexer';

/**
 * A hostile peer that completes the handshake honestly (it has a key) and then sends whatever it
 * likes on the link: the multiplexer must stay within its caps and never throw.
 */
function hostile() {
  const clock = new SimulatedClock();
  const net = new LoopbackNetwork({ clock, seed: 9 });
  const hub = new Multiplexer({
    identity: createIdentity(new Uint8Array(32).fill(1)),
    clock,
    maxBufferedBytes: 48 * 1024,
    session: {
      maxPeerBufferedBytes: 32 * 1024,
      maxPeerReassemblies: 2,
      reassemblyTimeoutMs: 30_000,
    },
  });
  const dh = net.driver('hub');
  hub.attach(dh);
  const evil = net.driver('evil');
  const link = net.connect(dh, evil, {
    maxFrameBytes: 512,
    bandwidthBytesPerS: Infinity,
    latencyMs: 1,
  });
  const handshake = new LinkHandshake({
    identity: createIdentity(new Uint8Array(32).fill(66)),
    maxFrameBytes: 512,
    crc: false,
    receiveWindowBytes: 1 << 20,
    maxMessageBytes: 1 << 19,
    hooks: {
      send: (frame) => evil.send(link.id, frame),
      sessionIdFor: () => new Uint8Array(16).fill(5),
      done: () => undefined,
      failed: (error) => {
        throw error;
      },
    },
  });
  evil.listen((e) => {
    if (e.type !== 'frame') return;
    const f = decodeFrame(e.data);
    if (f.kind === 'control' && (f.type === ControlType.HELLO || f.type === ControlType.AUTH)) {
      handshake.onControl(f.type, f.body);
    }
  });
  handshake.kick();
  clock.runUntil(() => hub.peers().some((p) => p.connected));
  return { clock, hub, send: (frame: Uint8Array) => evil.send(link.id, frame) };
}

describe('a hostile authenticated peer', () => {
  it('reassembly exhaustion: thousands of first fragments never completed stay within the caps, then time out', () => {
    const { clock, hub, send } = hostile();
    let peak = { bufferedBytes: 0, reassemblies: 0 };
    for (let i = 0; i < 5_000; i++) {
      send(
        encodeDataFrame({
          stream: i % 8,
          offset: 1 + ((i * 104_729) % 4_000_000),
          payload: new Uint8Array(400),
        }),
      );
      clock.advance(0.1);
      const f = hub.footprint();
      peak = {
        bufferedBytes: Math.max(peak.bufferedBytes, f.bufferedBytes),
        reassemblies: Math.max(peak.reassemblies, f.reassemblies),
      };
    }
    expect(peak.bufferedBytes).toBeLessThanOrEqual(32 * 1024);
    expect(peak.bufferedBytes).toBeGreaterThan(30 * 1024);
    expect(peak.reassemblies).toBe(2);
    const metrics = hub.peers()[0]?.metrics;
    expect(metrics?.capDrops).toBeGreaterThan(4_000);
    expect(metrics?.messagesReceived).toBe(0);
    clock.advance(40_000);
    expect(hub.footprint()).toMatchObject({ bufferedBytes: 0, reassemblies: 0 });
    expect(hub.peers()[0]?.metrics.timeouts).toBeGreaterThan(0);
  });

  it('fuzz: random and mutated frames on an authenticated link are dropped and counted, never thrown', () => {
    const { clock, hub, send } = hostile();
    const valid = encodeDataFrame({ stream: 2, offset: 0, payload: Uint8Array.from([3, 1, 2, 3]) });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 512 }),
          fc
            .array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
              minLength: 1,
              maxLength: 4,
            })
            .map((flips) => {
              const f = valid.slice();
              for (const [pos, xor] of flips) f[pos % f.length] = (f[pos % f.length] ?? 0) ^ xor;
              return f;
            }),
        ),
        (frame) => {
          send(frame);
          clock.advance(2);
        },
      ),
      { numRuns: 3_000 },
    );
    // The multiplexer is still there, within its caps; garbage was counted somewhere.
    const f = hub.footprint();
    expect(f.peers).toBe(1);
    expect(f.bufferedBytes).toBeLessThanOrEqual(32 * 1024);
    const m = hub.peers()[0]?.metrics;
    const dropped =
      hub.counters.malformedFrames +
      (m?.outOfRange ?? 0) +
      (m?.capDrops ?? 0) +
      (m?.duplicateBytes ?? 0);
    expect(dropped).toBeGreaterThan(1_000);
  });
});
