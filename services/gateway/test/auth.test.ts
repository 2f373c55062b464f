import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { JsonValue } from '@lattice/dql';
import type { v1 } from '@lattice/proto';
import { parseKeys, WebSocketLinkDriver } from '@lattice/gateway';
import type { KeyEntry } from '@lattice/gateway';
import { call, dec, enc, failure, observe, reader, startFixture } from './helpers.js';
import type { Fixture } from './helpers.js';

const ADMIN = 'admin-token-0123456789';
const REGION1 = 'region-1-token-0123456789';
const EXPIRED = 'expired-token-0123456789';
const SHORT = 'short-lived-token-0123456789';
const WRONG = 'not-a-configured-token-0123';

const region1 = { queriesByCollection: { cars: ["_id.region = '1'"] } };

/** The keys file's entries; `short` expires `shortMs` from now. */
function keys(shortMs = 60_000): KeyEntry[] {
  return parseKeys({
    keys: [
      { name: 'region-1', token: REGION1, permission: { read: region1, write: region1 } },
      {
        name: 'old',
        token: EXPIRED,
        expiresAt: new Date(Date.now() - 60_000).toISOString(),
        permission: { read: { everything: true }, write: { everything: true } },
      },
      {
        name: 'short',
        token: SHORT,
        expiresAt: new Date(Date.now() + shortMs).toISOString(),
        permission: { read: { everything: true } },
      },
    ],
  });
}

let fx: Fixture;
beforeAll(async () => {
  fx = await startFixture({ apiKeys: [ADMIN], keys: keys() });
});
afterAll(async () => {
  await fx.close();
});

const auth = (token: string | undefined): grpc.Metadata => {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  return md;
};

async function grpcExec(
  token: string | undefined,
  statement: string,
  args?: Record<string, JsonValue>,
): Promise<{ items: JsonValue[]; mutated: JsonValue[] }> {
  const r = await call(
    fx.client,
    'execute',
    { statement, ...(args ? { args: enc(args) } : {}) } as v1.ExecuteRequest,
    { metadata: auth(token) },
  );
  return { items: r.items.map(dec), mutated: r.mutatedDocumentIds.map(dec) };
}

async function httpExec(
  token: string | undefined,
  statement: string,
  args?: Record<string, JsonValue>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${fx.httpUrl}/api/v4/store/execute`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ statement, ...(args ? { args } : {}) }),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** Every document, as the admin sees them, sorted by id. */
async function everything(): Promise<JsonValue[]> {
  const cars = await grpcExec(ADMIN, 'SELECT * FROM cars ORDER BY _id');
  const secrets = await grpcExec(ADMIN, 'SELECT * FROM secrets ORDER BY _id');
  return [...cars.items, ...secrets.items];
}

const byJson = (a: JsonValue, b: JsonValue): number =>
  JSON.stringify(a) < JSON.stringify(b) ? -1 : 1;
const sortIds = (values: JsonValue[]): JsonValue[] => [...values].sort(byJson);
const ids = (items: JsonValue[]): JsonValue[] =>
  sortIds(items.map((i) => (i as { _id: JsonValue })._id));

beforeEach(async () => {
  await grpcExec(ADMIN, 'DELETE FROM cars');
  await grpcExec(ADMIN, 'DELETE FROM secrets');
  await grpcExec(ADMIN, 'INSERT INTO cars DOCUMENTS (:a), (:b), (:c)', {
    a: { _id: { region: '1', n: 1 }, make: 'Volvo' },
    b: { _id: { region: '1', n: 2 }, make: 'Saab' },
    c: { _id: { region: '2', n: 1 }, make: 'Fiat' },
  });
  await grpcExec(ADMIN, "INSERT INTO secrets DOCUMENTS ({'_id': 's', 'pin': 1234})");
});

const WRITES = [
  "INSERT INTO cars DOCUMENTS ({'_id': {'region': '1', 'n': 9}, 'make': 'Kia'})",
  "UPDATE cars SET make = 'X'",
  'DELETE FROM cars',
];

describe('tokens over gRPC', () => {
  it.each([
    ['no token', undefined, 'GATEWAY_UNAUTHENTICATED', /missing bearer token/],
    ['a wrong token', WRONG, 'GATEWAY_UNAUTHENTICATED', /invalid API key/],
    ['an expired token', EXPIRED, 'GATEWAY_TOKEN_EXPIRED', /key "old" expired at 20/],
  ])(
    '%s: UNAUTHENTICATED for reads, writes and observers; nothing changes',
    async (_, token, code, message) => {
      const before = await everything();
      for (const statement of ['SELECT * FROM cars', ...WRITES]) {
        const error = await grpcExec(token, statement).catch((e: unknown) => e);
        expect(failure(error)).toEqual({ code: grpc.status.UNAUTHENTICATED, latticeCode: code });
        expect((error as grpc.ServiceError).details).toMatch(message);
      }
      const stream = observe(fx.client, { statement: 'SELECT * FROM cars' }, auth(token));
      const error = await reader(stream)().catch((e: unknown) => e);
      expect(failure(error)).toEqual({ code: grpc.status.UNAUTHENTICATED, latticeCode: code });
      const sub = await call(fx.client, 'listSubscriptions', {} as v1.ListSubscriptionsRequest, {
        metadata: auth(token),
      }).catch((e: unknown) => e);
      expect(failure(sub).code).toBe(grpc.status.UNAUTHENTICATED);
      expect(await everything()).toEqual(before);
    },
  );

  it("a token that may read only _id.region = '1' sees only those documents", async () => {
    const all = await grpcExec(REGION1, 'SELECT * FROM cars');
    expect(ids(all.items)).toEqual([
      { n: 1, region: '1' },
      { n: 2, region: '1' },
    ]);
    // A WHERE that tries to widen the result cannot: the permission is ANDed in as a whole.
    const widened = await grpcExec(REGION1, "SELECT * FROM cars WHERE make = 'Fiat' OR true");
    expect(ids(widened.items)).toEqual(ids(all.items));
    // An alias, aggregates, USE IDS and parameters are restricted the same way.
    const aliased = await grpcExec(REGION1, 'SELECT c.make FROM cars AS c ORDER BY c.make');
    expect(aliased.items).toEqual([{ make: 'Saab' }, { make: 'Volvo' }]);
    const count = await grpcExec(REGION1, 'SELECT COUNT(*) AS n FROM cars');
    expect(count.items).toEqual([{ n: 2 }]);
    const byId = await grpcExec(REGION1, 'SELECT * FROM cars USE IDS LIST :ids', {
      ids: [{ region: '2', n: 1 }],
    });
    expect(byId.items).toEqual([]);
    const byArg = await grpcExec(REGION1, 'SELECT * FROM cars WHERE make = :m', { m: 'Fiat' });
    expect(byArg.items).toEqual([]);
    // Collections without permission, system collections, index statements: refused.
    for (const statement of [
      'SELECT * FROM secrets',
      'SELECT * FROM system:data_sync_info',
      'CREATE INDEX by_make ON cars (make)',
      'DROP INDEX IF EXISTS by_make',
    ]) {
      const error = await grpcExec(REGION1, statement).catch((e: unknown) => e);
      expect(failure(error), statement).toEqual({
        code: grpc.status.PERMISSION_DENIED,
        latticeCode: 'GATEWAY_PERMISSION_DENIED',
      });
    }
    // EXPLAIN shows the restricted statement's plan.
    const explained = await grpcExec(REGION1, 'EXPLAIN SELECT * FROM cars');
    expect(JSON.stringify(explained.items)).toMatch(/region/);
  });

  it('writes outside the permission are refused and change nothing; UPDATE and DELETE touch only permitted documents', async () => {
    const before = await everything();
    for (const statement of [
      "INSERT INTO cars DOCUMENTS ({'_id': {'region': '2', 'n': 5}, 'make': 'Kia'})",
      // One refused document refuses the whole statement.
      "INSERT INTO cars DOCUMENTS ({'_id': {'region': '1', 'n': 5}}), ({'_id': {'region': '2', 'n': 5}})",
      "INSERT INTO cars DOCUMENTS ({'_id': {'region': '2', 'n': 1}, 'make': 'Kia'}) ON ID CONFLICT DO UPDATE",
      // Without an _id the peer would choose a random one, which no condition can promise.
      "INSERT INTO cars DOCUMENTS ({'make': 'Kia'})",
      "INSERT INTO secrets DOCUMENTS ({'_id': 't'})",
      'UPDATE secrets SET pin = 0',
      'DELETE FROM secrets',
      'EVICT FROM secrets',
    ]) {
      const error = await grpcExec(REGION1, statement).catch((e: unknown) => e);
      expect(failure(error), statement).toEqual({
        code: grpc.status.PERMISSION_DENIED,
        latticeCode: 'GATEWAY_PERMISSION_DENIED',
      });
    }
    expect(await everything()).toEqual(before);

    const updated = await grpcExec(REGION1, "UPDATE cars SET make = 'X'");
    expect(sortIds(updated.mutated)).toEqual([
      { n: 1, region: '1' },
      { n: 2, region: '1' },
    ]);
    const deleted = await grpcExec(REGION1, "DELETE FROM cars WHERE _id.region = '2'");
    expect(deleted.mutated).toEqual([]);
    const fiat = await grpcExec(ADMIN, "SELECT make FROM cars WHERE _id.region = '2'");
    expect(fiat.items).toEqual([{ make: 'Fiat' }]);
    const inserted = await grpcExec(
      REGION1,
      "INSERT INTO cars DOCUMENTS ({'_id': {'region': '1', 'n': 3}, 'make': 'Kia'})",
    );
    expect(inserted.mutated).toEqual([{ region: '1', n: 3 }]);
  });

  it('an observer sees only permitted documents, and its changes', async () => {
    const stream = observe(
      fx.client,
      { statement: 'SELECT * FROM cars ORDER BY make' },
      auth(REGION1),
    );
    const next = reader(stream);
    const initial = await next();
    expect(initial.items.map(dec)).toEqual([
      { _id: { region: '1', n: 2 }, make: 'Saab' },
      { _id: { region: '1', n: 1 }, make: 'Volvo' },
    ]);
    // A write outside the permission sends nothing; the next batch is the permitted write's.
    await grpcExec(
      ADMIN,
      "INSERT INTO cars DOCUMENTS ({'_id': {'region': '2', 'n': 7}, 'make': 'Audi'})",
    );
    await grpcExec(
      ADMIN,
      "INSERT INTO cars DOCUMENTS ({'_id': {'region': '1', 'n': 7}, 'make': 'BMW'})",
    );
    const batch = await next();
    expect(batch.changes.map((c: v1.IItemChange) => dec(c.item ?? new Uint8Array()))).toEqual([
      { _id: { region: '1', n: 7 }, make: 'BMW' },
    ]);
    stream.cancel();
  });

  it('subscriptions: a restricted key subscribes within its permission and sees and cancels only those', async () => {
    const mine = await call(
      fx.client,
      'registerSubscription',
      { statement: 'SELECT * FROM cars' } as v1.RegisterSubscriptionRequest,
      { metadata: auth(REGION1) },
    );
    expect(mine.subscription?.statement).toMatch(/_id\.region = '1'/);
    const theirs = await call(
      fx.client,
      'registerSubscription',
      { statement: 'SELECT * FROM secrets' } as v1.RegisterSubscriptionRequest,
      { metadata: auth(ADMIN) },
    );
    const denied = await call(
      fx.client,
      'registerSubscription',
      { statement: 'SELECT * FROM secrets' } as v1.RegisterSubscriptionRequest,
      { metadata: auth(REGION1) },
    ).catch((e: unknown) => e);
    expect(failure(denied).code).toBe(grpc.status.PERMISSION_DENIED);
    const listed = await call(fx.client, 'listSubscriptions', {} as v1.ListSubscriptionsRequest, {
      metadata: auth(REGION1),
    });
    expect(listed.subscriptions.map((s) => s.id)).toEqual([mine.subscription?.id]);
    const cancel = await call(
      fx.client,
      'cancelSubscription',
      { id: theirs.subscription?.id } as v1.CancelSubscriptionRequest,
      { metadata: auth(REGION1) },
    );
    expect(cancel.cancelled).toBe(false);
    const all = await call(fx.client, 'listSubscriptions', {} as v1.ListSubscriptionsRequest, {
      metadata: auth(ADMIN),
    });
    expect(all.subscriptions).toHaveLength(2);
    for (const s of all.subscriptions) {
      await call(fx.client, 'cancelSubscription', { id: s.id } as v1.CancelSubscriptionRequest, {
        metadata: auth(ADMIN),
      });
    }
  });

  it('an Observe stream ends with UNAUTHENTICATED when its key expires', async () => {
    const short = await startFixture({ keys: keys(1_000) });
    try {
      const stream = observe(short.client, { statement: 'SELECT * FROM cars' }, auth(SHORT));
      const next = reader(stream);
      expect((await next()).kind).toBe(1); // INITIAL, while the key is valid
      const error = await next().catch((e: unknown) => e);
      expect(failure(error)).toEqual({
        code: grpc.status.UNAUTHENTICATED,
        latticeCode: 'GATEWAY_TOKEN_EXPIRED',
      });
      // …and the key is refused from then on.
      const again = await call(
        short.client,
        'execute',
        { statement: 'SELECT * FROM cars' } as v1.ExecuteRequest,
        { metadata: auth(SHORT) },
      ).catch((e: unknown) => e);
      expect(failure(again).latticeCode).toBe('GATEWAY_TOKEN_EXPIRED');
    } finally {
      await short.close();
    }
  });
});

describe('tokens over HTTP', () => {
  it.each([
    ['no token', undefined, 'GATEWAY_UNAUTHENTICATED', /missing bearer token/],
    ['a wrong token', WRONG, 'GATEWAY_UNAUTHENTICATED', /invalid API key/],
    ['an expired token', EXPIRED, 'GATEWAY_TOKEN_EXPIRED', /key "old" expired at/],
  ])('%s: 401 for reads and writes; nothing changes', async (_, token, code, message) => {
    const before = await everything();
    for (const statement of ['SELECT * FROM cars', ...WRITES]) {
      const r = await httpExec(token, statement);
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ error: { code, description: expect.stringMatching(message) } });
    }
    expect(await everything()).toEqual(before);
  });

  it("the region token reads only _id.region = '1' and cannot write elsewhere (403)", async () => {
    const r = await httpExec(REGION1, 'SELECT * FROM cars ORDER BY make');
    expect(r.status).toBe(200);
    expect(r.body['items']).toEqual([
      { _id: { region: '1', n: 2 }, make: 'Saab' },
      { _id: { region: '1', n: 1 }, make: 'Volvo' },
    ]);
    const before = await everything();
    const denied = await httpExec(REGION1, 'INSERT INTO cars DOCUMENTS (:d)', {
      d: { _id: { region: '2', n: 3 }, make: 'Kia' },
    });
    expect(denied.status).toBe(403);
    expect(denied.body).toEqual({
      error: {
        code: 'GATEWAY_PERMISSION_DENIED',
        description: expect.stringMatching(/key "region-1" may not write cars document/),
      },
    });
    expect((await httpExec(REGION1, 'SELECT * FROM secrets')).status).toBe(403);
    expect(await everything()).toEqual(before);
    const deleted = await httpExec(REGION1, 'DELETE FROM cars');
    expect(deleted.status).toBe(200);
    expect(deleted.body['mutatedDocumentIds']).toHaveLength(2);
    const left = await grpcExec(ADMIN, 'SELECT * FROM cars');
    expect(ids(left.items)).toEqual([{ n: 1, region: '2' }]);
  });
});

describe('tokens on the WebSocket sync endpoint', () => {
  it('refuses expired and wrong (401) keys during the upgrade; restricted keys sync', async () => {
    const sync = await startFixture({ apiKeys: [ADMIN], keys: keys(), sync: {} });
    const client = new WebSocketLinkDriver();
    try {
      const url = `ws://127.0.0.1:${sync.gateway.httpPort}/api/v4/sync`;
      await expect(client.connect(url, { apiKey: REGION1 })).resolves.toBeDefined();
      await expect(client.connect(url, { apiKey: EXPIRED })).rejects.toThrow(/HTTP 401/);
      await expect(client.connect(url, { apiKey: WRONG })).rejects.toThrow(/HTTP 401/);
      await expect(client.connect(url, { apiKey: ADMIN })).resolves.toBeDefined();
    } finally {
      await client.close();
      await sync.close();
    }
  });
});
