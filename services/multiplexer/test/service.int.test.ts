import { afterEach, describe, expect, inject, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { Subjects, v1 } from '@lattice/proto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, waitFor } from '@lattice/testing';
import { checkHealth, createLogger, startService, type RunningService } from '@lattice/service';
import {
  createIdentity,
  issueRevocations,
  LoopbackNetwork,
  MultiplexerClient,
  multiplexerConfigSchema,
  multiplexerService,
  readRevocationLists,
  startMultiplexerService,
  writeRevocationLists,
  type InboundMessage,
  type MultiplexerServiceInstance,
} from '@lattice/multiplexer';

const logger = createLogger('silent', 'test');

/**
 * A stand-in transport: one loopback link (real time, 512-byte frames, 1 MB/s each way) whose two
 * ends are published as `transport-lan` links in two peers' namespaces; frames a multiplexer
 * publishes for the link go into its end, and what comes out of the other end is published to
 * the other multiplexer, as a real transport would carry them over its socket.
 */
function bridge(bus: NatsBus, nsA: Subjects, nsB: Subjects, linkId: string) {
  const net = new LoopbackNetwork({ seed: 3 });
  const ends = { a: net.driver('end-a'), b: net.driver('end-b') };
  const link = net.connect(ends.a, ends.b, {
    maxFrameBytes: 512,
    bandwidthBytesPerS: 1_000_000,
    latencyMs: 2,
  });
  const subs = (
    [
      [nsA, ends.a, nsB, ends.b],
      [nsB, ends.b, nsA, ends.a],
    ] as const
  ).map(([from, end, to, otherEnd]) => {
    // What comes out of the other end goes to the other peer's multiplexer.
    otherEnd.listen((e) => {
      if (e.type === 'frame') {
        bus.publish(
          to.framesIn('transport-lan', linkId),
          v1.LinkFrame.encode({ linkId, data: e.data }).finish(),
        );
      }
    });
    const backlog: Uint8Array[] = [];
    const flush = (): void => {
      while (backlog.length > 0 && link.isUp && end.send(link.id, backlog[0] as Uint8Array))
        backlog.shift();
    };
    end.listen((e) => {
      if (e.type === 'writable') flush();
    });
    const sub = bus.subscribe(from.framesOut('transport-lan', linkId));
    void (async () => {
      for await (const m of sub) {
        backlog.push(v1.LinkFrame.decode(m.data).data);
        flush();
      }
    })();
    return sub;
  });
  return {
    up: () => {
      for (const ns of [nsA, nsB]) {
        bus.publish(
          ns.linkEvent('transport-lan', 'up'),
          v1.LinkUp.encode({
            linkId,
            transport: 'lan',
            capabilities: {
              maxFrameBytes: 512,
              kind: v1.LinkKind.LINK_KIND_DATAGRAM,
              reliable: true,
              ordered: true,
              checksummed: true,
              bandwidthBytesPerS: 1_000_000,
              latencyMs: 2,
            },
          }).finish(),
        );
      }
    },
    down: () => {
      link.drop();
      for (const ns of [nsA, nsB]) {
        bus.publish(
          ns.linkEvent('transport-lan', 'down'),
          v1.LinkDown.encode({ linkId, transport: 'lan' }).finish(),
        );
      }
    },
    close: () => {
      for (const s of subs) s.unsubscribe();
      link.drop();
    },
  };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  await waitFor(() => condition() || undefined, { what, intervalMs: 5 });
}

describe('multiplexer service over real NATS', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it('parses its settings', () => {
    const c = multiplexerConfigSchema.parse({
      transports: 'transport-lan, gateway',
      presenceIntervalMs: '250',
    });
    expect(c.transports).toEqual(['transport-lan', 'gateway']);
    expect(c.presenceIntervalMs).toBe(250);
    expect(multiplexerConfigSchema.parse({}).transports).toContain('transport-ble');
    expect(multiplexerConfigSchema.safeParse({ transports: 'transport-lan,ftp' }).success).toBe(
      false,
    );
  });

  it('two multiplexers joined by a loopback link bridged through the bus carry sync traffic both ways', async () => {
    const url = inject('natsUrl');
    const tag = `mux${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
    const nsA = new Subjects(`${tag}a`);
    const nsB = new Subjects(`${tag}b`);
    const busA = await NatsBus.connect({ servers: url, name: 'mux-a' });
    const busB = await NatsBus.connect({ servers: url, name: 'mux-b' });
    const busT = await NatsBus.connect({ servers: url, name: 'transport' });
    cleanups.push(
      () => busA.close(),
      () => busB.close(),
      () => busT.close(),
    );
    const config = (ns: Subjects) =>
      multiplexerConfigSchema.parse({
        namespace: ns.namespace,
        natsUrl: url,
        transports: 'transport-lan',
        presenceIntervalMs: '0',
      });
    const a: MultiplexerServiceInstance = await startMultiplexerService(
      { bus: busA, config: config(nsA), logger, subjects: nsA },
      { identity: createIdentity(new Uint8Array(32).fill(11)) },
    );
    const b = await startMultiplexerService(
      { bus: busB, config: config(nsB), logger, subjects: nsB },
      { identity: createIdentity(new Uint8Array(32).fill(12)) },
    );
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    const link = bridge(busT, nsA, nsB, 'l1');
    cleanups.push(() => link.close());
    await busT.flush();
    link.up();
    await until(
      () =>
        a.multiplexer.peers().some((p) => p.connected) &&
        b.multiplexer.peers().some((p) => p.connected),
      'handshake',
    );
    expect(a.multiplexer.peers()[0]?.peerId).toBe(b.multiplexer.peerId);

    const toB = Array.from({ length: 20 }, (_, i) =>
      new Uint8Array(i % 2 === 0 ? 100 : 20_000).fill(i),
    );
    const toA = [new Uint8Array(5_000).fill(7), new Uint8Array(3).fill(8)];
    // Sent and received through the message API on the bus, as a merge service in another
    // process does.
    const clientA = new MultiplexerClient({
      bus: busT,
      subjects: nsA,
      peerId: a.multiplexer.peerId,
    });
    const clientB = new MultiplexerClient({
      bus: busT,
      subjects: nsB,
      peerId: b.multiplexer.peerId,
    });
    cleanups.push(
      () => clientA.close(),
      () => clientB.close(),
    );
    await until(
      () => clientA.peers().length === 1 && clientB.peers().length === 1,
      'the clients learn the connected peers',
    );
    const gotB: InboundMessage[] = [];
    const gotA: InboundMessage[] = [];
    clientB.onMessage((m) => gotB.push(m));
    clientA.onMessage((m) => gotA.push(m));
    await Promise.all([
      ...toB.map((m) => clientA.send(b.multiplexer.peerId, m)),
      ...toA.map((m) => clientB.send(a.multiplexer.peerId, m, { stream: 1 })),
    ]);
    await until(() => gotB.length === toB.length && gotA.length === toA.length, 'every message');
    expect(gotB.map((m) => new Uint8Array(m.data))).toEqual(toB);
    expect(gotA.map((m) => new Uint8Array(m.data))).toEqual(toA);
    expect(gotA.every((m) => m.stream === 1 && m.peerId === b.multiplexer.peerId)).toBe(true);

    // Presence over the bus, and the link going down.
    const reply = await busT.request(nsA.request('multiplexer', 'presence'), new Uint8Array(0));
    const presence = v1.MuxPresence.decode(reply.data);
    expect(presence.peerId).toBe(a.multiplexer.peerId);
    expect(presence.peers[0]?.links?.[0]?.transport).toBe('lan');
    expect(Number(presence.peers[0]?.payloadBytesSent)).toBe(toB.reduce((n, m) => n + m.length, 0));
    link.down();
    await until(() => !a.multiplexer.peers().some((p) => p.connected), 'link down');
  });

  it('keeps in its revocations file the later lists its peers pass on, and starts with them', async () => {
    const url = inject('natsUrl');
    const tag = `muxr${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
    const nsA = new Subjects(`${tag}a`);
    const nsB = new Subjects(`${tag}b`);
    const [busA, busB, busT] = await Promise.all(
      ['rev-a', 'rev-b', 'rev-t'].map((name) => NatsBus.connect({ servers: url, name })),
    );
    cleanups.push(
      () => busA?.close(),
      () => busB?.close(),
      () => busT?.close(),
    );
    await using dir = await tempDir('lattice-revocations-');
    const authority = createIdentity(new Uint8Array(32).fill(31));
    const revoked = createIdentity(new Uint8Array(32).fill(32)).peerId;
    const fileA = join(dir.path, 'a.revocations');
    const fileB = join(dir.path, 'b.revocations'); // missing: B holds no list yet
    const list = issueRevocations(authority, [revoked]);
    writeRevocationLists(fileA, [list]);
    const options = (seed: number) => ({
      identity: createIdentity(new Uint8Array(32).fill(seed)),
      meshKey: new Uint8Array(16).fill(5),
      authorities: [authority.publicKey],
    });
    const config = (ns: Subjects, revocationsFile: string) =>
      multiplexerConfigSchema.parse({
        namespace: ns.namespace,
        natsUrl: url,
        transports: 'transport-lan',
        presenceIntervalMs: '0',
        revocationsFile,
      });
    const a = await startMultiplexerService(
      { bus: busA as NatsBus, config: config(nsA, fileA), logger, subjects: nsA },
      options(21),
    );
    const startB = () =>
      startMultiplexerService(
        { bus: busB as NatsBus, config: config(nsB, fileB), logger, subjects: nsB },
        options(22),
      );
    let b = await startB();
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    expect(a.multiplexer.revokedPeers).toBe(1);
    expect(b.multiplexer.revokedPeers).toBe(0);
    const link = bridge(busT as NatsBus, nsA, nsB, 'l1');
    cleanups.push(() => link.close());
    await busT?.flush();
    link.up();
    await until(() => b.multiplexer.revokedPeers === 1, 'the list passed on to B');
    await waitFor(() => existsSync(fileB) || undefined, { what: "B's revocations file" });
    const hex = (ls: readonly Uint8Array[]) => ls.map((l) => Buffer.from(l).toString('hex'));
    expect(hex(readRevocationLists(fileB))).toEqual(hex([list]));
    // Restarted, B holds the list before any link comes up.
    await b.stop();
    b = await startB();
    expect(b.multiplexer.revokedPeers).toBe(1);
  });

  it('starts as a service and answers health with its peer id', async () => {
    const url = inject('natsUrl');
    const ns = new Subjects(`muxh${Date.now().toString(36)}`);
    const bus = await NatsBus.connect({ servers: url, name: 'mux-health' });
    cleanups.push(() => bus.close());
    const running: RunningService = await startService(multiplexerService, {
      bus,
      config: multiplexerConfigSchema.parse({
        namespace: ns.namespace,
        natsUrl: url,
        presenceIntervalMs: '0',
      }),
      logger,
      subjects: ns,
    });
    cleanups.push(() => running.stop());
    const health = await checkHealth(bus, ns, 'multiplexer');
    expect(health.service).toBe('multiplexer');
    expect(health.details['peerId']).toMatch(/^[0-9a-f]{32}$/);
    expect(health.details['links']).toBe('0');
  });
});
