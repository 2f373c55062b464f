import { afterEach, describe, expect, it, vi } from 'vitest';
import { seededRandom, type LinkId } from '@lattice/multiplexer';
import { freePort } from '@lattice/testing';
import {
  decodeBye,
  encodeHello,
  encodeRecord,
  LAN_PROTOCOL_VERSION,
  LanLinkDriver,
  parsePeerAddress,
  RecordDecoder,
  RecordType,
  type LanDriverEvent,
  type LanLinkDriverOptions,
} from '../src/index.js';
import { rawClient, recordDriver, selfSignedPair, TcpProxy, untilEvent } from './helpers.js';

const LOCAL = '127.0.0.1';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function driver(options: LanLinkDriverOptions = {}): Promise<LanLinkDriver> {
  const d = await LanLinkDriver.start({ port: 0, host: LOCAL, ...options });
  cleanups.push(() => d.close());
  return d;
}

/** Every BYE record in bytes a raw client received. */
function byes(received: readonly Buffer[]): { code: string; reason: string }[] {
  const out: { code: string; reason: string }[] = [];
  try {
    new RecordDecoder().push(Buffer.concat(received), (type, payload) => {
      if (type === RecordType.BYE) out.push(decodeBye(payload));
    });
  } catch {
    // Bytes after the BYE are not expected; what decoded before them is returned.
  }
  return out;
}

const hello = (id: string): Buffer =>
  encodeRecord(
    RecordType.HELLO,
    encodeHello({ version: LAN_PROTOCOL_VERSION, maxFrameBytes: 65_536, instanceId: id }),
  );

function closedWith(d: LanDriverEvent[], code: string): boolean {
  return d.some((e) => e.type === 'connection-closed' && e.code === code);
}

/** Checks that a driver still works: a fresh driver links to it and a frame crosses. */
async function stillServes(server: LanLinkDriver): Promise<void> {
  const probe = await driver({ port: false, peers: [`tcp://${LOCAL}:${server.port}`] });
  const got: Uint8Array[] = [];
  const stop = server.listen((e) => {
    if (e.type === 'frame') got.push(new Uint8Array(e.data)); // valid only during the event
  });
  await untilEvent(
    [probe, server],
    () => probe.links.length === 1 && server.connectedInstances.includes(probe.instanceId),
    'probe link up',
  );
  expect(probe.send(probe.links[0]?.id as LinkId, Uint8Array.of(1, 2, 3))).toBe(true);
  await untilEvent([server], () => got.length === 1, 'probe frame');
  expect([...(got[0] ?? [])]).toEqual([1, 2, 3]);
  stop();
  await probe.close();
}

describe('LanLinkDriver', () => {
  it('parses tcp://host:port peers, IPv6 in brackets, and refuses anything else', () => {
    expect(parsePeerAddress('tcp://10.0.0.2:4040')).toEqual({ host: '10.0.0.2', port: 4040 });
    expect(parsePeerAddress('tcp://[fe80::1]:1')).toEqual({ host: 'fe80::1', port: 1 });
    expect(parsePeerAddress('tcp://peer-a.local:65535')).toEqual({
      host: 'peer-a.local',
      port: 65_535,
    });
    for (const bad of ['10.0.0.2:4040', 'udp://a:1', 'tcp://a:0', 'tcp://a:70000', 'tcp://[zz]:1'])
      expect(() => parsePeerAddress(bad)).toThrow(
        expect.objectContaining({ code: 'LAN_BAD_ADDRESS' }) as Error,
      );
  });

  it('delivers no event to a listener once it unsubscribed, even as the only one', async () => {
    const b = await driver();
    const a = await driver({ port: false, peers: [`tcp://${LOCAL}:${b.port}`] });
    const events: string[] = [];
    const stop = b.listen((e) => events.push(e.type));
    // Polled, not awaited through listeners: one more listener on `b` would make this one no
    // longer its only one, which is the case under test.
    const until = (check: () => void): Promise<void> => vi.waitFor(check, { timeout: 10_000 });
    await until(() => expect(a.links.length + b.links.length).toBe(2));
    const id = a.links[0]?.id as LinkId;
    expect(a.send(id, Uint8Array.of(1))).toBe(true);
    await until(() => expect(b.counters.framesReceived).toBe(1));
    expect(events).toEqual(['up', 'frame']);
    stop();
    expect(a.send(id, Uint8Array.of(2))).toBe(true);
    await until(() => expect(b.counters.framesReceived).toBe(2));
    expect(events).toEqual(['up', 'frame']);
  });

  it('links over IPv6 loopback', async () => {
    const b = await driver({ host: '::1' });
    const a = await driver({ port: false, peers: [`tcp://[::1]:${b.port}`] });
    await untilEvent([a, b], () => a.links.length === 1 && b.links.length === 1, 'link up');
    expect(a.links[0]?.remoteAddress).toBe(`[::1]:${b.port}`);
    expect(b.links[0]?.remoteAddress).toMatch(/^\[::1\]:\d+$/);
    expect(a.links[0]?.capabilities).toMatchObject({
      maxFrameBytes: 65_536,
      reliable: true,
      ordered: true,
      checksummed: false,
    });
  });

  it('keeps exactly one link when two peers dial each other at the same moment', async () => {
    const a = await driver();
    const b = await driver();
    const ra = recordDriver(a);
    const rb = recordDriver(b);
    a.addPeer({ host: LOCAL, port: b.port ?? 0 });
    b.addPeer({ host: LOCAL, port: a.port ?? 0 });
    await untilEvent(
      [a, b],
      () =>
        a.connectionCount === 1 &&
        b.connectionCount === 1 &&
        a.links.length === 1 &&
        b.links.length === 1,
      'one connection and one link each side',
    );
    // Both connections were made and one was refused as a duplicate on both sides.
    expect(a.counters.dialed + b.counters.dialed).toBe(2);
    expect(closedWith(ra.diagnostics, 'LAN_DUPLICATE_LINK')).toBe(true);
    expect(closedWith(rb.diagnostics, 'LAN_DUPLICATE_LINK')).toBe(true);
    // The two surviving ends are the same connection: a frame each way crosses it.
    const la = a.links[0]?.id as LinkId;
    const lb = b.links[0]?.id as LinkId;
    expect(a.send(la, Uint8Array.of(7))).toBe(true);
    expect(b.send(lb, Uint8Array.of(8))).toBe(true);
    const frame = (r: typeof ra, id: LinkId): boolean =>
      r.events.some((e) => e.type === 'frame' && e.linkId === id);
    await untilEvent([a, b], () => frame(ra, la) && frame(rb, lb), 'a frame each way');
    // The connection kept is the one the smaller instance id dialed.
    const smaller = a.instanceId < b.instanceId ? a : b;
    expect(smaller.links[0]?.remoteAddress).toBe(`${LOCAL}:${(smaller === a ? b : a).port ?? 0}`);
    expect(a.connectedInstances).toEqual([b.instanceId]);
    expect(b.connectedInstances).toEqual([a.instanceId]);
  });

  it('refuses connections beyond the cap with LAN_CONNECTION_LIMIT and keeps the others', async () => {
    const server = await driver({ maxConnections: 2 });
    const peer = `tcp://${LOCAL}:${server.port}`;
    const c1 = await driver({ port: false, peers: [peer] });
    const c2 = await driver({ port: false, peers: [peer] });
    await untilEvent(
      [server, c1, c2],
      () => server.links.length === 2 && c1.links.length === 1 && c2.links.length === 1,
      'two links',
    );
    // A driver over the cap learns why.
    const c3 = await driver({ port: false, peers: [peer], backoff: { initialMs: 60_000 } });
    const r3 = recordDriver(c3);
    await untilEvent([c3], () => r3.diagnostics.some((e) => e.type === 'refused'), 'refusal');
    expect(r3.diagnostics).toContainEqual(
      expect.objectContaining({
        type: 'connection-closed',
        code: 'LAN_CONNECTION_LIMIT',
        byRemote: true,
      }),
    );
    expect(c3.links).toHaveLength(0);
    // A raw socket gets the BYE record on the wire, then the connection is closed.
    const raw = await rawClient(server.port ?? 0);
    await raw.closed;
    expect(byes(raw.received)).toEqual([
      { code: 'LAN_CONNECTION_LIMIT', reason: 'this peer accepts at most 2 connections' },
    ]);
    expect(server.counters.refused).toBe(2);
    expect(server.links).toHaveLength(2);
  });

  it('detects a peer that stops answering in the middle of a frame within seconds', async () => {
    const server = await driver();
    const rs = recordDriver(server);
    const raw = await rawClient(server.port ?? 0);
    raw.socket.write(hello('ab'.repeat(16)));
    await untilEvent([server], () => server.links.length === 1, 'link up');
    const linkId = server.links[0]?.id;
    // Half of a 1000-byte DATA record, then silence with the socket left open.
    const record = encodeRecord(RecordType.DATA, new Uint8Array(1000).fill(5));
    raw.socket.write(record.subarray(0, 400));
    const started = Date.now();
    await untilEvent(
      [server],
      () => rs.events.some((e) => e.type === 'down' && e.linkId === linkId),
      'link down',
    );
    const elapsed = Date.now() - started;
    expect(rs.events).toContainEqual(
      expect.objectContaining({ type: 'down', linkId, reasonCode: 'LAN_IDLE_TIMEOUT' }),
    );
    expect(elapsed).toBeGreaterThanOrEqual(2_500);
    expect(elapsed).toBeLessThan(4_500);
    await raw.closed;
    await stillServes(server);
  });

  it('two drivers both detect a frozen path (no FIN, no RST) as dead within seconds', async () => {
    const b = await driver({ keepaliveMs: 200, idleTimeoutMs: 1_000 });
    const proxy = await TcpProxy.start(b.port ?? 0);
    cleanups.push(() => proxy.close());
    const a = await driver({
      port: false,
      keepaliveMs: 200,
      idleTimeoutMs: 1_000,
      backoff: { initialMs: 60_000 },
    });
    const ra = recordDriver(a);
    const rb = recordDriver(b);
    a.addPeer({ host: LOCAL, port: proxy.port });
    await untilEvent([a, b], () => a.links.length === 1 && b.links.length === 1, 'link up');
    // Keepalive PINGs hold an idle link up past its idle timeout. This waits on purpose: the
    // point is that no event (no link down) happens in a window longer than the timeout.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(ra.events.filter((e) => e.type === 'down')).toEqual([]);
    expect(rb.events.filter((e) => e.type === 'down')).toEqual([]);
    expect(a.counters.framesSent).toBe(0);
    expect(a.counters.pingsSent).toBeGreaterThanOrEqual(3);
    expect(b.counters.pingsSent).toBeGreaterThanOrEqual(3);
    proxy.freeze();
    const started = Date.now();
    await untilEvent(
      [a, b],
      () => ra.events.some((e) => e.type === 'down') && rb.events.some((e) => e.type === 'down'),
      'both ends down',
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    for (const r of [ra, rb])
      expect(r.events).toContainEqual(expect.objectContaining({ reasonCode: 'LAN_IDLE_TIMEOUT' }));
  });

  it('drops a connection sending garbage with LAN_FRAME_MALFORMED and keeps serving', async () => {
    const server = await driver();
    const rs = recordDriver(server);
    const raw = await rawClient(server.port ?? 0);
    raw.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await raw.closed;
    expect(closedWith(rs.diagnostics, 'LAN_FRAME_MALFORMED')).toBe(true);
    expect(byes(raw.received.slice(0)).map((b) => b.code)).toContain('LAN_FRAME_MALFORMED');
    expect(server.connectionCount).toBe(0);
    await stillServes(server);
  });

  it('drops a link announcing an oversized length with LAN_FRAME_TOO_LARGE before buffering it', async () => {
    const server = await driver();
    const rs = recordDriver(server);
    const raw = await rawClient(server.port ?? 0);
    raw.socket.write(hello('cd'.repeat(16)));
    await untilEvent([server], () => server.links.length === 1, 'link up');
    const header = Buffer.alloc(5);
    header[0] = RecordType.DATA;
    header.writeUInt32BE(0xffff_ffff, 1);
    raw.socket.write(header);
    await raw.closed;
    expect(rs.events).toContainEqual(
      expect.objectContaining({ type: 'down', reasonCode: 'LAN_FRAME_TOO_LARGE' }),
    );
    expect(byes(raw.received).map((b) => b.code)).toEqual(['LAN_FRAME_TOO_LARGE']);
    await stillServes(server);
  });

  it('refuses a connection to itself', async () => {
    const a = await driver({ backoff: { initialMs: 60_000 } });
    const ra = recordDriver(a);
    a.addPeer({ host: LOCAL, port: a.port ?? 0 });
    await untilEvent([a], () => closedWith(ra.diagnostics, 'LAN_SELF_CONNECTION'), 'self refusal');
    expect(a.links).toHaveLength(0);
  });

  it('redials a static peer with exponential backoff and jitter until it is back', async () => {
    const port = await freePort();
    let b = await LanLinkDriver.start({ port, host: LOCAL });
    const a = await driver({
      port: false,
      peers: [`tcp://${LOCAL}:${port}`],
      backoff: { initialMs: 40, maxMs: 5_000, jitter: 0.5 },
      random: seededRandom(5),
    });
    const ra = recordDriver(a);
    await untilEvent([a], () => a.links.length === 1, 'first link');
    await b.close();
    await untilEvent(
      [a],
      () => ra.diagnostics.filter((e) => e.type === 'dial-scheduled').length >= 4,
      'four redials scheduled',
    );
    b = await LanLinkDriver.start({ port, host: LOCAL });
    cleanups.push(() => b.close());
    await untilEvent([a, b], () => a.links.length === 1 && b.links.length === 1, 'link back');
    const delays = ra.diagnostics.flatMap((e) => (e.type === 'dial-scheduled' ? [e] : []));
    // Attempt k waits between half and all of 40 ms · 2^(k-1), and the waits grow.
    delays.slice(0, 4).forEach((d, i) => {
      expect(d.attempt).toBe(i + 1);
      expect(d.delayMs).toBeLessThanOrEqual(40 * 2 ** i);
      expect(d.delayMs).toBeGreaterThanOrEqual(20 * 2 ** i);
    });
    expect(
      new Set(delays.slice(0, 4).map((d) => d.delayMs / 2 ** (d.attempt - 1))).size,
    ).toBeGreaterThan(1);
    // A successful HELLO resets the backoff.
    const before = delays.length;
    await b.close();
    await untilEvent(
      [a],
      () => ra.diagnostics.filter((e) => e.type === 'dial-scheduled').length > before,
      'redial after the second loss',
    );
    const next = ra.diagnostics.filter((e) => e.type === 'dial-scheduled')[before];
    expect(next).toMatchObject({ attempt: 1 });
  });

  it('carries frames over TLS with a self-signed pair, encrypted on the wire', async () => {
    const pair = await selfSignedPair();
    cleanups.push(() => pair.remove());
    const tls = { cert: pair.cert, key: pair.key, ca: pair.cert };
    const b = await driver({ tls });
    const proxy = await TcpProxy.start(b.port ?? 0);
    cleanups.push(() => proxy.close());
    const a = await driver({ port: false, tls });
    const rb = recordDriver(b);
    a.addPeer({ host: LOCAL, port: proxy.port });
    await untilEvent([a, b], () => a.links.length === 1 && b.links.length === 1, 'TLS link up');
    expect(a.links[0]?.capabilities.checksummed).toBe(true);
    const secret = Buffer.from('a secret only the peers may read '.repeat(100));
    expect(a.send(a.links[0]?.id as LinkId, secret)).toBe(true);
    await untilEvent([b], () => rb.events.some((e) => e.type === 'frame'), 'frame over TLS');
    const got = rb.events.find((e) => e.type === 'frame');
    expect(got?.type === 'frame' && Buffer.from(got.data).equals(secret)).toBe(true);
    expect(Buffer.concat(proxy.captured).includes('a secret only')).toBe(false);
    // A plaintext driver cannot talk to the TLS listener.
    const plain = await driver({ port: false, backoff: { initialMs: 60_000 } });
    const rp = recordDriver(plain);
    plain.addPeer({ host: LOCAL, port: b.port ?? 0 });
    await untilEvent(
      [plain, b],
      () =>
        rp.diagnostics.some((e) => e.type === 'connection-closed') &&
        rb.diagnostics.some((e) => e.type === 'connection-closed' && /TLS/.test(e.reason)),
      'plaintext refused',
    );
    expect(plain.links).toHaveLength(0);
    expect(b.links).toHaveLength(1);
  });
});
