import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createIdentity,
  LoopbackNetwork,
  Multiplexer,
  Priority,
  SimulatedClock,
} from '@lattice/multiplexer';
import type {
  InboundMessage,
  LoopbackLinkDriver,
  LoopbackLinkOptions,
  MultiplexerEvent,
  MultiplexerOptions,
} from '@lattice/multiplexer';

const seedA = new Uint8Array(32).fill(1);
const seedB = new Uint8Array(32).fill(2);

function world(seed = 1, options: Partial<MultiplexerOptions> = {}) {
  const clock = new SimulatedClock();
  const net = new LoopbackNetwork({ clock, seed });
  const a = new Multiplexer({ identity: createIdentity(seedA), clock, ...options });
  const b = new Multiplexer({ identity: createIdentity(seedB), clock, ...options });
  const da = net.driver('a');
  const db = net.driver('b');
  a.attach(da);
  b.attach(db);
  const got: InboundMessage[] = [];
  b.onMessage((m) => got.push(m));
  const connected = (): boolean =>
    a.peers().some((p) => p.connected) && b.peers().some((p) => p.connected);
  return { clock, net, a, b, da, db, got, connected };
}

function message(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + (i >> 8)) & 0xff);
}

describe('Multiplexer over loopback links (simulated time)', () => {
  it('handshakes, groups the link under the remote peer and carries messages in order', async () => {
    const w = world();
    w.net.connect(w.da, w.db, { maxFrameBytes: 185, bandwidthBytesPerS: 20_000, latencyMs: 5 });
    w.clock.runUntil(w.connected);
    expect(w.a.peers().map((p) => p.peerId)).toEqual([w.b.peerId]);
    expect(w.b.peers().map((p) => p.peerId)).toEqual([w.a.peerId]);
    const payloads = [message(100, 1), message(10_000, 2), message(0, 3), message(3, 4)];
    for (const p of payloads) await w.a.send(w.b.peerId, p);
    w.clock.runUntil(() => w.got.length === payloads.length);
    expect(w.got.map((m) => m.data)).toEqual(payloads);
    expect(w.got.every((m) => m.peerId === w.a.peerId && m.stream === Priority.SYNC)).toBe(true);
  });

  it('property: any messages over a lossy, duplicating, reordering link of any MTU ≥ 20 arrive once, in order, byte-identical', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 6_000 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 20, max: 600 }),
        fc.double({ min: 0, max: 0.3, noNaN: true }),
        fc.double({ min: 0, max: 0.2, noNaN: true }),
        fc.integer({ min: 0, max: 20 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 1_000_000 }),
        async (sizes, mtu, loss, duplicate, jitterMs, checksummed, seed) => {
          const w = world(seed);
          w.net.connect(w.da, w.db, {
            maxFrameBytes: mtu,
            bandwidthBytesPerS: 50_000,
            latencyMs: 3,
            loss,
            duplicate,
            jitterMs,
            checksummed,
          });
          w.clock.runUntil(w.connected, 600_000);
          const sent = sizes.map((n, i) => message(n, i + seed));
          for (const [i, m] of sent.entries())
            await w.a.send(w.b.peerId, m, { stream: 1 + (i % 3) });
          w.clock.runUntil(
            () => w.got.length >= sent.length && w.a.session(w.b.peerId)?.isIdle === true,
            3_600_000,
          );
          // In order per stream, each exactly once.
          for (const s of [1, 2, 3]) {
            expect(w.got.filter((m) => m.stream === s).map((m) => m.data)).toEqual(
              sent.filter((_, i) => 1 + (i % 3) === s),
            );
          }
          expect(w.got.length).toBe(sent.length);
        },
      ),
      { numRuns: Number(process.env['MUX_PROPERTY_RUNS'] ?? 25) },
    );
  });

  it('failover: a link cut mid-message; the message arrives once over the other link and re-sent bytes are counted', async () => {
    const w = world();
    const fast = w.net.connect(w.da, w.db, {
      maxFrameBytes: 512,
      bandwidthBytesPerS: 100_000,
      latencyMs: 20,
    });
    w.net.connect(w.da, w.db, { maxFrameBytes: 185, bandwidthBytesPerS: 20_000, latencyMs: 5 });
    w.clock.runUntil(() => w.a.session(w.b.peerId)?.linkIds.length === 2);
    const big = message(150_000, 9);
    await w.a.send(w.b.peerId, big, { stream: Priority.BULK });
    w.clock.advance(500); // part of the way: both links busy
    expect(w.got).toHaveLength(0);
    fast.drop('cut');
    w.clock.runUntil(() => w.got.length === 1, 600_000);
    w.clock.advance(5_000);
    expect(w.got).toHaveLength(1);
    expect(w.got[0]?.data).toEqual(big);
    const [peer] = w.a.peers();
    expect(peer?.metrics.retransmittedBytes).toBeGreaterThan(0);
    expect(peer?.links).toHaveLength(1);
    expect(peer?.links[0]?.retransmittedBytes).toBe(peer?.metrics.retransmittedBytes);
    expect(w.b.peers()[0]?.metrics.messagesReceived).toBe(1);
  });

  it('uses two links together, weighted by capacity', async () => {
    const w = world();
    w.net.connect(w.da, w.db, { maxFrameBytes: 512, bandwidthBytesPerS: 300_000, latencyMs: 2 });
    w.net.connect(w.da, w.db, { maxFrameBytes: 512, bandwidthBytesPerS: 100_000, latencyMs: 2 });
    w.clock.runUntil(() => w.a.session(w.b.peerId)?.linkIds.length === 2);
    await w.a.send(w.b.peerId, message(2_000_000, 3), { stream: Priority.BULK });
    const t = w.clock.runUntil(() => w.got.length === 1, 600_000);
    // 400 kB/s together: 2 MB in ~5 s; one link alone would need ≥ 6.7 s.
    expect(t).toBeLessThan(5_400);
    const links = w.a.peers()[0]?.links ?? [];
    const shares = links.map((l) => l.payloadBytesSent).sort((x, y) => y - x);
    expect((shares[0] ?? 0) / (shares[1] ?? 1)).toBeGreaterThan(2.5);
    expect((shares[0] ?? 0) / (shares[1] ?? 1)).toBeLessThan(3.5);
  });

  it('a small control message waits for at most one bulk frame', async () => {
    const w = world();
    const bandwidth = 10_000;
    w.net.connect(w.da, w.db, { maxFrameBytes: 512, bandwidthBytesPerS: bandwidth, latencyMs: 5 });
    w.clock.runUntil(w.connected);
    await w.a.send(w.b.peerId, message(1_000_000, 1), { stream: Priority.BULK });
    w.clock.advance(1_003.3); // mid-frame
    const sentAt = w.clock.now();
    await w.a.send(w.b.peerId, message(30, 2), { stream: Priority.CONTROL });
    const t = w.clock.runUntil(() => w.got.some((m) => m.stream === Priority.CONTROL));
    const frameMs = (512 * 1000) / bandwidth;
    const ownMs = ((30 + 1 + 4) * 1000) / bandwidth;
    expect(w.clock.now() - sentAt).toBe(t);
    expect(t).toBeLessThanOrEqual(frameMs + ownMs + 5 + 0.001);
  });

  it('link flapping for 5 minutes of simulated time: every message once, in order, and nothing left behind', async () => {
    const w = world(42, { peerLingerMs: 60_000 });
    const options: LoopbackLinkOptions = {
      maxFrameBytes: 244,
      bandwidthBytesPerS: 50_000,
      latencyMs: 10,
      loss: 0.02,
    };
    const links = [w.net.connect(w.da, w.db, options)];
    w.clock.runUntil(w.connected);
    const sent: Uint8Array[] = [];
    const random = w.net.random;
    let n = 0;
    for (let second = 0; second < 300; second++) {
      // Each second: maybe a link drops, maybe one comes back, and a few messages go out.
      for (const l of links) if (l.isUp && random() < 0.08) l.drop('flap');
      if (links.filter((l) => l.isUp).length < 2 && random() < 0.3) {
        links.push(
          w.net.connect(w.da, w.db, { ...options, maxFrameBytes: random() < 0.5 ? 20 : 244 }),
        );
      }
      if (
        w.a.session(w.b.peerId) !== undefined &&
        w.a.session(w.b.peerId)!.sendBufferedBytes < 200_000
      ) {
        for (let k = 0; k < 3; k++) {
          const m = message(Math.floor(random() * 1_200), n++);
          sent.push(m);
          await w.a.send(w.b.peerId, m);
        }
      }
      w.clock.advance(1_000);
    }
    links.push(w.net.connect(w.da, w.db, options));
    w.clock.runUntil(() => w.got.length === sent.length, 600_000);
    expect(w.got.map((m) => m.data)).toEqual(sent);
    // Every link down, the sessions linger, then go: nothing is left.
    for (const l of links) l.drop('end');
    w.clock.advance(61_000);
    for (const mux of [w.a, w.b]) {
      expect(mux.footprint()).toEqual({
        links: 0,
        peers: 0,
        bufferedBytes: 0,
        reassemblies: 0,
        segments: 0,
        inbox: 0,
      });
    }
    expect(w.clock.pendingTimers).toBe(0);
  });

  it('bounds memory with a slow reader: the sender waits, and resumes as the reader reads', async () => {
    const w = world(3, {
      session: {
        receiveWindowBytes: 64 * 1024,
        maxMessageBytes: 32 * 1024,
        maxSendBufferBytes: 128 * 1024,
      },
    });
    const reader = new Multiplexer({
      identity: createIdentity(new Uint8Array(32).fill(5)),
      clock: w.clock,
      session: { receiveWindowBytes: 64 * 1024, maxMessageBytes: 32 * 1024 },
    });
    const dr = w.net.driver('r');
    reader.attach(dr);
    w.net.connect(w.da, dr, { maxFrameBytes: 512, bandwidthBytesPerS: 1_000_000, latencyMs: 1 });
    w.clock.runUntil(() => w.a.session(reader.peerId) !== undefined && reader.peers().length === 1);
    let queued = 0;
    const writer = (async () => {
      for (let i = 0; i < 40; i++) {
        await w.a.send(reader.peerId, message(10_000, i));
        queued++;
      }
    })();
    await w.clock.advanceAsync(5_000);
    // Nobody reads: the window (64 KiB) and the send buffer (128 KiB) hold everything.
    expect(queued).toBeLessThan(25);
    expect(w.a.session(reader.peerId)?.sendBufferedBytes).toBeLessThanOrEqual(128 * 1024 + 10_002);
    expect(reader.footprint().inbox * 10_000).toBeLessThanOrEqual(64 * 1024);
    const it = reader.messages();
    const received: Uint8Array[] = [];
    let done = false;
    const consumer = (async () => {
      for await (const m of it) {
        received.push(m.data);
        if (received.length === 40) break;
      }
      done = true;
    })();
    await w.clock.runUntilAsync(() => done, 600_000);
    await writer;
    await consumer;
    expect(received).toEqual(Array.from({ length: 40 }, (_, i) => message(10_000, i)));
    await reader.close();
  });

  it('cancels a waiting send with its signal (MUX_CANCELLED)', async () => {
    const w = world(4, { session: { maxSendBufferBytes: 1_000 } });
    w.net.connect(w.da, w.db, { maxFrameBytes: 100, bandwidthBytesPerS: 1_000, latencyMs: 1 });
    w.clock.runUntil(w.connected);
    await w.a.send(w.b.peerId, message(900, 1));
    const controller = new AbortController();
    const pending = w.a.send(w.b.peerId, message(900, 2), { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'MUX_CANCELLED' });
    await expect(w.a.send('nobody', message(1, 1))).rejects.toMatchObject({
      code: 'MUX_PEER_UNREACHABLE',
    });
  });

  it('refuses a link to ourselves', () => {
    const clock = new SimulatedClock();
    const net = new LoopbackNetwork({ clock });
    const a = new Multiplexer({ identity: createIdentity(seedA), clock });
    const d1 = net.driver('1');
    const d2 = net.driver('2');
    a.attach(d1);
    a.attach(d2);
    const events: MultiplexerEvent[] = [];
    a.on((e) => events.push(e));
    const link = net.connect(d1, d2, { maxFrameBytes: 20 });
    clock.runUntil(() => !link.isUp);
    expect(
      events
        .filter((e) => e.type === 'link-refused')
        .map((e) => e.type === 'link-refused' && e.error.code),
    ).toContain('MUX_SELF_LINK');
    expect(a.peers()).toEqual([]);
  });

  it('refuses a peer beyond maxPeers with MUX_TOO_MANY_PEERS', () => {
    const clock = new SimulatedClock();
    const net = new LoopbackNetwork({ clock });
    const hub = new Multiplexer({ identity: createIdentity(seedA), clock, maxPeers: 1 });
    const dh = net.driver('hub');
    hub.attach(dh);
    const events: MultiplexerEvent[] = [];
    hub.on((e) => events.push(e));
    const others = [seedB, new Uint8Array(32).fill(3)].map((seed) => {
      const m = new Multiplexer({ identity: createIdentity(seed), clock });
      const d = net.driver();
      m.attach(d);
      return { m, link: net.connect(dh, d, { maxFrameBytes: 100 }) };
    });
    clock.runUntil(() => events.some((e) => e.type === 'link-refused'));
    clock.advance(1_000);
    expect(hub.peers()).toHaveLength(1);
    expect(
      events
        .filter((e) => e.type === 'link-refused')
        .map((e) => e.type === 'link-refused' && e.error.code),
    ).toEqual(['MUX_TOO_MANY_PEERS']);
    expect(others.filter((o) => o.link.isUp)).toHaveLength(1);
  });

  it('runs the handshake on 20-byte frames without a link checksum', () => {
    const w = world();
    w.net.connect(w.da, w.db, {
      maxFrameBytes: 20,
      checksummed: false,
      bandwidthBytesPerS: 2_000,
      latencyMs: 15,
      loss: 0.2,
    });
    w.clock.runUntil(w.connected, 60_000);
    expect(w.b.peers()[0]?.peerId).toBe(w.a.peerId);
  });

  it('drops data on a link that never authenticated, then times the handshake out', () => {
    const clock = new SimulatedClock();
    const net = new LoopbackNetwork({ clock });
    const a = new Multiplexer({
      identity: createIdentity(seedA),
      clock,
      handshakeTimeoutMs: 2_000,
    });
    const da = net.driver('a');
    const silent: LoopbackLinkDriver = net.driver('silent'); // no multiplexer: a stranger
    a.attach(da);
    const events: MultiplexerEvent[] = [];
    a.on((e) => events.push(e));
    const link = net.connect(da, silent, { maxFrameBytes: 100 });
    silent.send(link.id, Uint8Array.from([0x41, 0, 0, 0, 1, 2, 3])); // a DATA frame
    clock.advance(100);
    expect(a.counters.unauthenticatedFrames).toBe(1);
    clock.runUntil(() => !link.isUp);
    expect(
      events.some((e) => e.type === 'link-refused' && e.error.code === 'MUX_HANDSHAKE_TIMEOUT'),
    ).toBe(true);
    expect(a.footprint().links).toBe(0);
  });

  it('resumes the streams when a link comes back within the linger time; starts over when the peer restarted', async () => {
    const w = world(5);
    let link = w.net.connect(w.da, w.db, {
      maxFrameBytes: 185,
      bandwidthBytesPerS: 20_000,
      latencyMs: 5,
    });
    w.clock.runUntil(w.connected);
    await w.a.send(w.b.peerId, message(50_000, 1));
    w.clock.advance(500);
    link.drop();
    w.clock.advance(10_000);
    link = w.net.connect(w.da, w.db, {
      maxFrameBytes: 185,
      bandwidthBytesPerS: 20_000,
      latencyMs: 5,
    });
    w.clock.runUntil(() => w.got.length === 1, 60_000);
    expect(w.got[0]?.data).toEqual(message(50_000, 1));
    expect(w.a.counters.sessionResets + w.b.counters.sessionResets).toBe(0);

    // b restarts: same key, new process (new multiplexer, new session id). The old link stays
    // up (as a transport in another process keeps its connection): a closes it once b's new run
    // authenticates on a new link, since nobody answers on it any more.
    const downs: string[] = [];
    w.a.on((e) => {
      if (e.type === 'link-down') downs.push(e.linkId);
      if (e.type === 'peer-down') downs.push('peer-down');
    });
    const oldLinkId = w.a.peers()[0]?.links[0]?.linkId;
    await w.b.close();
    const b2 = new Multiplexer({ identity: createIdentity(seedB), clock: w.clock });
    const db2 = w.net.driver('b2');
    b2.attach(db2);
    const got2: InboundMessage[] = [];
    b2.onMessage((m) => got2.push(m));
    w.net.connect(w.da, db2, { maxFrameBytes: 185, bandwidthBytesPerS: 20_000, latencyMs: 5 });
    w.clock.runUntil(
      () => b2.peers().some((p) => p.connected) && w.a.peers().some((p) => p.connected),
    );
    expect(w.a.counters.sessionResets).toBe(1);
    await w.a.send(b2.peerId, message(1_000, 2));
    w.clock.runUntil(() => got2.length === 1);
    expect(got2[0]?.data).toEqual(message(1_000, 2));
    expect(downs).toEqual([oldLinkId]);
    expect(w.a.peers()[0]?.links.map((l) => l.transport)).toHaveLength(1);
    expect(link.isUp).toBe(false);
  });

  it('reports metrics and presence that match what the link carried', async () => {
    const w = world(6);
    const link = w.net.connect(w.da, w.db, {
      maxFrameBytes: 244,
      bandwidthBytesPerS: 50_000,
      latencyMs: 10,
    });
    w.clock.runUntil(w.connected);
    await w.a.send(w.b.peerId, message(20_000, 1));
    w.clock.runUntil(() => w.got.length === 1 && w.a.session(w.b.peerId)?.isIdle === true);
    const [peer] = w.a.peers();
    const l = peer?.links[0];
    expect(peer?.metrics.payloadBytesSent).toBe(20_000);
    expect(l?.payloadBytesSent).toBe(20_000 + 3); // the message and its length prefix
    // Handshake frames are not the session's: the link carried at least what the session sent.
    expect(link.stats.aToB.bytesSent).toBeGreaterThanOrEqual(l?.bytesSent ?? Infinity);
    expect(l?.ackedBytes).toBe(20_003);
    expect(l?.goodputBytesPerS).toBeGreaterThan(0);
    expect(l?.goodputBytesPerS).toBeLessThanOrEqual(50_000);
    expect(l?.srttMs).toBeGreaterThan(20);
    expect(l?.srttMs).toBeLessThan(200);
    const presence = w.a.presence();
    expect(presence.peerId).toBe(w.a.peerId);
    expect(presence.peers[0]?.peerId).toBe(w.b.peerId);
    expect(presence.peers[0]?.links?.[0]?.transport).toBe('loopback');
    expect(Number(presence.peers[0]?.links?.[0]?.rttUs)).toBeGreaterThan(20_000);
  });
});
