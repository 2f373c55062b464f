import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { LinkDriver, LinkEvent, LinkId } from '@lattice/multiplexer';
import { runLinkDriverContractTests } from '@lattice/multiplexer/testing';
import { ApiKeys, WebSocketLinkDriver } from '@lattice/gateway';
import { startFixture } from './helpers.js';
import type { Fixture } from './helpers.js';

/** Resolves once `condition()` holds, re-checking on every event of the drivers. */
function untilEvent(
  drivers: readonly LinkDriver[],
  condition: () => boolean,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const stops: (() => void)[] = [];
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      for (const s of stops) s();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}`)), 10_000);
    const check = (): void => {
      if (condition()) finish();
    };
    for (const d of drivers) stops.push(d.listen(check));
    check();
  });
}

runLinkDriverContractTests('WebSocketLinkDriver', async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/api/v4/sync`;
  const a = new WebSocketLinkDriver({ maxFrameBytes: 4096, highWaterBytes: 64 * 1024 });
  const b = new WebSocketLinkDriver({ maxFrameBytes: 4096, highWaterBytes: 64 * 1024 });
  a.attach(server, new ApiKeys(['k']));
  let bLink: LinkId | undefined;
  return {
    a,
    b,
    open: async () => {
      bLink = await b.connect(url, { apiKey: 'k' });
    },
    cut: () => {
      if (bLink) b.terminate(bLink);
      return Promise.resolve();
    },
    waitFor: (condition, what) => untilEvent([a, b], condition, what),
    close: async () => {
      await a.close();
      await b.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
});

describe('the gateway WebSocket sync endpoint', () => {
  let fx: Fixture | undefined;
  afterEach(async () => {
    await fx?.close();
    fx = undefined;
  });

  const status = (url: string, headers: Record<string, string> = {}) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(url, { headers });
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('error', () => resolve(-1));
    });

  it('checks the key, the Origin and the connection cap during the upgrade', async () => {
    fx = await startFixture({
      apiKeys: ['k'],
      sync: { maxConnections: 1, allowedOrigins: ['https://app.example'] },
    });
    const url = `ws://127.0.0.1:${fx.gateway.httpPort}/api/v4/sync`;
    expect(await status(url)).toBe(401);
    expect(await status(url, { authorization: 'Bearer wrong' })).toBe(401);
    expect(await status(url, { authorization: 'Bearer k', origin: 'https://evil.example' })).toBe(
      403,
    );
    const links = fx.gateway.links as WebSocketLinkDriver;
    const events: LinkEvent[] = [];
    links.listen((e) => events.push(e));
    const held = new WebSocket(url, {
      headers: { authorization: 'Bearer k', origin: 'https://app.example' },
    });
    await new Promise((r) => held.once('open', r));
    await untilEvent([links], () => events.some((e) => e.type === 'up'), 'link up');
    expect(await status(url, { authorization: 'Bearer k' })).toBe(503);
    held.close();
    await untilEvent([links], () => events.some((e) => e.type === 'down'), 'link down');
    // A browser passes its key as a subprotocol.
    const browser = new WebSocket(url, ['lattice-key.k'], {
      headers: { origin: 'https://app.example' },
    });
    await new Promise((r) => browser.once('open', r));
    expect(browser.protocol).toBe('lattice-key.k');
    browser.close();
  });

  it('closes a connection that sends an oversized frame or floods; others stay up', async () => {
    fx = await startFixture({
      apiKeys: ['k'],
      sync: { maxFrameBytes: 1024, maxMessagesPerSecond: 50 },
    });
    const url = `ws://127.0.0.1:${fx.gateway.httpPort}/api/v4/sync`;
    const links = fx.gateway.links as WebSocketLinkDriver;
    const events: LinkEvent[] = [];
    links.listen((e) => events.push(e));
    const open = async () => {
      const ws = new WebSocket(url, { headers: { authorization: 'Bearer k' } });
      await new Promise((r) => ws.once('open', r));
      return ws;
    };
    const big = await open();
    const bigClosed = new Promise<number>((r) => big.once('close', (code) => r(code)));
    big.send(new Uint8Array(2048));
    expect(await bigClosed).toBe(1009);
    const flood = await open();
    const floodClosed = new Promise<number>((r) => flood.once('close', (code) => r(code)));
    for (let i = 0; i < 500; i++) flood.send(Uint8Array.of(1, 2, 3));
    expect(await floodClosed).toBe(1008);
    const calm = await open();
    calm.send(Uint8Array.of(9, 9));
    await untilEvent(
      [links],
      () => events.some((e) => e.type === 'frame' && e.data.length === 2 && e.data[0] === 9),
      'the calm frame',
    );
    const downs = events
      .filter((e) => e.type === 'down')
      .map((e) => e.type === 'down' && e.reasonCode);
    expect(downs).toEqual(['MUX_FRAME_TOO_LARGE', 'GATEWAY_LIMIT']);
    expect(links.size).toBe(1);
    calm.close();
  });
});
