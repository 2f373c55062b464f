import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { hasCode } from '@lattice/errors';
import { ApiKeys, parseKeys, WebSocketLinkDriver } from '@lattice/gateway';
import { waitFor } from '@lattice/testing';
import { failure, observe, reader, startFixture } from './helpers.js';

const region1 = { queriesByCollection: { cars: ["_id.region = '1'"] } };
const entries = (...names: string[]) =>
  parseKeys({
    keys: names.map((name) => ({
      name,
      token: `${name}-token-0123456789`,
      permission: { read: region1, write: region1 },
    })),
  });
const bearer = (name: string) => `Bearer ${name}-token-0123456789`;

describe('reloading keys', () => {
  it('accepts added keys, refuses removed ones, and keeps unchanged principals', () => {
    const keys = new ApiKeys(['admin-0123456789'], entries('a', 'b'));
    const a = keys.check(bearer('a'));
    const b = keys.check(bearer('b'));
    expect(keys.replace(['admin-0123456789'], entries('a', 'c'))).toEqual({
      added: 1,
      removed: 1,
      kept: 2,
    });
    expect(keys.check(bearer('a'))).toBe(a); // the same principal: its streams go on
    expect(keys.check(bearer('c')).name).toBe('c');
    expect(() => keys.check(bearer('b'))).toThrow(/invalid API key/);
    expect(b.name).toBe('b');
  });

  it('ends the watchers of a removed or changed key with GATEWAY_KEY_REVOKED, not the others', () => {
    const keys = new ApiKeys([], entries('a', 'b', 'c'));
    const ended = new Map<string, unknown>();
    for (const n of ['a', 'b', 'c']) {
      keys.watch(keys.check(bearer(n)), (e) => ended.set(n, e));
    }
    // b is removed; c keeps its token but its permission changes.
    const changed = parseKeys({
      keys: [
        { name: 'c', token: 'c-token-0123456789', permission: { read: { everything: true } } },
      ],
    });
    keys.replace([], [...entries('a'), ...changed]);
    expect([...ended.keys()].sort()).toEqual(['b', 'c']);
    expect(hasCode(ended.get('b'), 'GATEWAY_KEY_REVOKED')).toBe(true);
    expect(keys.check(bearer('c')).read.everything).toBe(true);
    // A second reload does not end them twice.
    keys.replace([], entries('a'));
    expect(ended.size).toBe(2);
  });

  it('ends a watcher at its expiry, and stops watching when asked', async () => {
    let now = Date.now();
    const soon = parseKeys({
      keys: [
        {
          name: 'soon',
          token: 'soon-token-0123456789',
          expiresAt: new Date(now + 50).toISOString(),
          permission: { read: { everything: true } },
        },
      ],
    });
    const keys = new ApiKeys([], soon, () => now);
    const p = keys.check('Bearer soon-token-0123456789');
    const errors: unknown[] = [];
    keys.watch(p, (e) => errors.push(e));
    const stop = keys.watch(p, () => errors.push('stopped watcher fired'));
    stop();
    now += 60;
    await new Promise((r) => setTimeout(r, 120));
    expect(errors).toHaveLength(1);
    expect(hasCode(errors[0], 'GATEWAY_TOKEN_EXPIRED')).toBe(true);
  });

  it('a timer that fires before the clock reaches the expiry is armed again', async () => {
    const t0 = Date.now();
    const soon = parseKeys({
      keys: [
        {
          name: 'soon',
          token: 'soon-token-0123456789',
          expiresAt: new Date(t0 + 40).toISOString(),
          permission: { read: { everything: true } },
        },
      ],
    });
    let lag = 0;
    const keys = new ApiKeys([], soon, () => Date.now() - lag);
    const errors: unknown[] = [];
    keys.watch(keys.check('Bearer soon-token-0123456789'), (e) => errors.push(e));
    lag = 25; // the clock now reads 25 ms behind the timers: the first one fires "early"
    await new Promise((r) => setTimeout(r, 150));
    expect(errors).toHaveLength(1);
    expect(hasCode(errors[0], 'GATEWAY_TOKEN_EXPIRED')).toBe(true);
  });

  it('refuses a reload that would leave no key (authentication off), changing nothing', () => {
    const keys = new ApiKeys(['admin-0123456789']);
    let error: unknown;
    try {
      keys.replace([], []);
    } catch (e) {
      error = e;
    }
    expect(hasCode(error, 'GATEWAY_BAD_CONFIG')).toBe(true);
    expect(keys.check('Bearer admin-0123456789').name).toBe('api-key-1');
    expect(keys.playground).toBe(false);
  });

  it('a playground gateway that gains keys ends its keyless streams', () => {
    const keys = new ApiKeys([]);
    const ended: unknown[] = [];
    keys.watch(keys.check(undefined), (e) => ended.push(e));
    keys.replace([], []); // still playground: nothing ends
    expect(ended).toEqual([]);
    keys.replace(['admin-0123456789'], []);
    expect(ended).toHaveLength(1);
    expect(() => keys.check(undefined)).toThrow(/missing bearer token/);
  });
});

describe('a gateway reloading its keys', () => {
  it('ends the Observe streams and sync links of a revoked key; the others go on', async () => {
    const full = { read: { everything: true }, write: { everything: true } };
    const file = (...names: string[]) =>
      parseKeys({
        keys: names.map((name) => ({ name, token: `${name}-token-0123456789`, permission: full })),
      });
    const fx = await startFixture({ keys: file('stay', 'go'), sync: {} });
    const client = new WebSocketLinkDriver();
    const md = (name: string) => {
      const m = new grpc.Metadata();
      m.set('authorization', bearer(name));
      return m;
    };
    const staying = observe(fx.client, { statement: 'SELECT * FROM t' }, md('stay'));
    const going = observe(fx.client, { statement: 'SELECT * FROM t' }, md('go'));
    try {
      const nextStaying = reader(staying);
      const nextGoing = reader(going);
      await nextStaying();
      await nextGoing();
      const url = `ws://127.0.0.1:${fx.gateway.httpPort}/api/v4/sync`;
      await client.connect(url, { apiKey: 'stay-token-0123456789' });
      await client.connect(url, { apiKey: 'go-token-0123456789' });
      await waitFor(() => (fx.gateway.links?.size === 2 ? true : undefined), { what: '2 links' });

      expect(fx.gateway.reloadKeys([], file('stay', 'new'))).toEqual({
        added: 1,
        removed: 1,
        kept: 1,
      });
      const error = await nextGoing().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(failure(error)).toEqual({
        code: grpc.status.UNAUTHENTICATED,
        latticeCode: 'GATEWAY_KEY_REVOKED',
      });
      await waitFor(() => (fx.gateway.links?.size === 1 ? true : undefined), {
        what: 'the revoked link closed',
      });
      // The staying stream still delivers.
      await fx.engine.execute("INSERT INTO t DOCUMENTS ({'_id': 1})");
      expect((await nextStaying()).changes).toHaveLength(1);
      // New requests use the new keys.
      const exec = (name: string) =>
        fetch(`${fx.httpUrl}/api/v4/store/execute`, {
          method: 'POST',
          headers: { authorization: bearer(name), 'content-type': 'application/json' },
          body: JSON.stringify({ statement: 'SELECT * FROM t' }),
        });
      expect((await exec('new')).status).toBe(200);
      expect((await exec('go')).status).toBe(401);
    } finally {
      staying.cancel();
      going.cancel();
      await client.close();
      await fx.close();
    }
  });
});
