import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { channelPair } from '@lattice/merge';
import { v1 } from '@lattice/proto';
import type { JsonValue } from '@lattice/dql';
import { startGateway, InProcessPeer } from '@lattice/gateway';
import type { PeerApi } from '@lattice/gateway';
import {
  applyBatch,
  call,
  delegate,
  dec,
  enc,
  failure,
  observe,
  openPeer,
  reader,
  startFixture,
} from './helpers.js';
import type { Fixture } from './helpers.js';

const Kind = v1.ObserveBatchKind;
let fx: Fixture | undefined;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await fx?.close();
  fx = undefined;
});

const exec = (statement: string, args: Record<string, JsonValue> = {}) =>
  call((fx as Fixture).client, 'execute', { statement, args: enc(args) } as v1.ExecuteRequest);

describe('gRPC Execute', () => {
  it('writes and reads with MessagePack values, mutated ids and commit ids', async () => {
    fx = await startFixture();
    const ins = await exec('INSERT INTO cars DOCUMENTS (:a), (:b)', {
      a: { _id: 'a', make: 'Fiat', year: 1990 },
      b: { _id: 'b', make: 'Audi', year: 2001 },
    });
    expect(ins.queryType).toBe('insert');
    expect(ins.mutatedDocumentIds.map(dec)).toEqual(['a', 'b']);
    expect(ins.commitId).toBeGreaterThan(0);
    const sel = await exec('SELECT make FROM cars WHERE year > :y ORDER BY year', { y: 1980 });
    expect(sel.queryType).toBe('select');
    expect(sel.items.map(dec)).toEqual([{ make: 'Fiat' }, { make: 'Audi' }]);
    expect(sel.commitId).toBe(ins.commitId);
  });

  it('maps a DQL syntax error to INVALID_ARGUMENT with our code in trailing metadata', async () => {
    fx = await startFixture();
    const error = await exec('SELEC * FROM cars').catch((e: unknown) => e);
    expect(failure(error)).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      latticeCode: 'DQL_SYNTAX',
    });
    const bin = (error as grpc.ServiceError).metadata.get('lattice-error-bin')[0] as Buffer;
    const detail = v1.Error.decode(bin);
    expect(detail.kind).toBe('INVALID_ARGUMENT');
    expect(detail.service).toBe('gateway');
    expect(detail.message).not.toBe('');
    // An insert conflict maps through the same table.
    await exec("INSERT INTO cars DOCUMENTS ({'_id': 'x'})");
    const dup = await exec("INSERT INTO cars DOCUMENTS ({'_id': 'x'})").catch((e: unknown) => e);
    expect(failure(dup).code).not.toBe(grpc.status.OK);
    expect(failure(dup).latticeCode).toMatch(/^[A-Z]+_[A-Z_]+$/);
  });

  it('refuses malformed argument bytes with INVALID_ARGUMENT', async () => {
    fx = await startFixture();
    const error = await call(fx.client, 'execute', {
      statement: 'SELECT * FROM cars',
      args: Uint8Array.of(0xc1),
    } as v1.ExecuteRequest).catch((e: unknown) => e);
    expect(failure(error)).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      latticeCode: 'GATEWAY_BAD_REQUEST',
    });
  });

  it('answers DEADLINE_EXCEEDED when the peer is slower than the deadline, and stays up', async () => {
    let release: (() => void) | undefined;
    const slow = (peer: PeerApi): PeerApi =>
      delegate(peer, {
        execute: async (s: string, a: Readonly<Record<string, JsonValue>>) => {
          if (s.includes('slow')) await new Promise<void>((r) => (release = r));
          return peer.execute(s, a);
        },
      });
    fx = await startFixture({ wrap: slow });
    const started = Date.now();
    const error = await call(
      fx.client,
      'execute',
      { statement: 'SELECT * FROM slow' } as v1.ExecuteRequest,
      { deadlineMs: 150 },
    ).catch((e: unknown) => e);
    expect(failure(error).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(5_000);
    release?.();
    expect((await exec('SELECT * FROM cars')).items).toEqual([]);
    // A deadline already passed is refused by the server before any work.
    const past = await call(
      fx.client,
      'execute',
      { statement: "INSERT INTO cars DOCUMENTS ({'_id': 'late'})" } as v1.ExecuteRequest,
      { deadlineMs: -1 },
    ).catch((e: unknown) => e);
    expect(failure(past).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect((await exec('SELECT * FROM cars')).items).toEqual([]);
  });

  it('requires a configured API key when keys are set', async () => {
    fx = await startFixture({ apiKeys: ['s3cret'] });
    const none = await exec('SELECT * FROM cars').catch((e: unknown) => e);
    expect(failure(none)).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      latticeCode: 'GATEWAY_UNAUTHENTICATED',
    });
    const md = (key: string) => {
      const m = new grpc.Metadata();
      m.set('authorization', `Bearer ${key}`);
      return m;
    };
    const wrong = await call(
      fx.client,
      'execute',
      { statement: 'SELECT * FROM cars' } as v1.ExecuteRequest,
      { metadata: md('nope') },
    ).catch((e: unknown) => e);
    expect(failure(wrong).code).toBe(grpc.status.UNAUTHENTICATED);
    const ok = await call(
      fx.client,
      'execute',
      { statement: "INSERT INTO cars DOCUMENTS ({'_id': 1})" } as v1.ExecuteRequest,
      { metadata: md('s3cret') },
    );
    expect(ok.mutatedDocumentIds.map(dec)).toEqual([1]);
  });

  it('refuses playground mode (no keys) on a non-loopback address', async () => {
    const engine = await openPeer('p');
    cleanups.push(() => engine.store.close());
    await expect(
      startGateway(new InProcessPeer(engine), { host: '0.0.0.0', grpcPort: 0, httpPort: 0 }),
    ).rejects.toMatchObject({ code: 'GATEWAY_INSECURE_CONFIG' });
  });

  it('answers standard gRPC health checks', async () => {
    fx = await startFixture();
    const client = fx.client;
    const check = (service: string) =>
      new Promise<Buffer>((resolve, reject) => {
        // grpc.health.v1.HealthCheckRequest { string service = 1; }
        const s = Buffer.from(service);
        const req =
          s.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.of(0x0a, s.length), s]);
        client.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (b: Buffer) => b,
          (b: Buffer) => b,
          req,
          (e, r) => (e ? reject(e) : resolve(r as Buffer)),
        );
      });
    // HealthCheckResponse { status = SERVING (1) }
    expect([...(await check(''))]).toEqual([0x08, 0x01]);
    expect([...(await check('lattice.v1.DqlService'))]).toEqual([0x08, 0x01]);
    const unknown = await check('nope').catch((e: unknown) => e);
    expect(failure(unknown).code).toBe(grpc.status.NOT_FOUND);
  });
});

describe('gRPC Observe', () => {
  it('sends the full result, then inserts, updates, moves and deletes as changes', async () => {
    fx = await startFixture();
    await exec('INSERT INTO cars DOCUMENTS (:a), (:b)', {
      a: { _id: 'a', n: 1 },
      b: { _id: 'b', n: 2 },
    });
    const stream = observe(fx.client, {
      statement: 'SELECT _id, n FROM cars WHERE n > 0 ORDER BY n',
    });
    cleanups.push(() => stream.cancel());
    const next = reader<v1.ObserveResponse>(stream);
    const first = await next();
    expect(first.kind).toBe(Kind.OBSERVE_BATCH_KIND_INITIAL);
    let items = applyBatch([], first);
    expect(items).toEqual([
      { _id: 'a', n: 1 },
      { _id: 'b', n: 2 },
    ]);
    const expectSynced = async (statement: string, kinds: number[]) => {
      const r = await exec(statement);
      const batch = await next();
      expect(batch.kind).toBe(Kind.OBSERVE_BATCH_KIND_CHANGES);
      expect(batch.commitId).toBe(r.commitId);
      expect(batch.changes.map((c) => c.kind)).toEqual(kinds);
      items = applyBatch(items, batch);
      const now = (await exec('SELECT _id, n FROM cars WHERE n > 0 ORDER BY n')).items.map(dec);
      expect(items).toEqual(now);
    };
    await expectSynced("INSERT INTO cars DOCUMENTS ({'_id': 'c', 'n': 3})", [1]);
    await expectSynced("UPDATE cars SET n = 5 WHERE _id = 'a'", [4, 3]);
    await expectSynced("UPDATE cars SET n = 6 WHERE _id = 'a'", [3]);
    await expectSynced("DELETE FROM cars WHERE _id = 'b'", [2]);
    // A document that does not match produces no batch: the next batch is the next change.
    await exec("INSERT INTO cars DOCUMENTS ({'_id': 'z', 'n': -1})");
    await expectSynced("UPDATE cars SET n = 0.5 WHERE _id = 'z'", [1]);
    expect(items).toEqual([
      { _id: 'z', n: 0.5 },
      { _id: 'c', n: 3 },
      { _id: 'a', n: 6 },
    ]);
  });

  it('keeps a LIMIT window and an aggregate right', async () => {
    fx = await startFixture();
    for (let i = 0; i < 5; i++) await exec('INSERT INTO t DOCUMENTS (:d)', { d: { _id: i, n: i } });
    const top = observe(fx.client, { statement: 'SELECT * FROM t ORDER BY n DESC LIMIT 2' });
    const count = observe(fx.client, { statement: 'SELECT COUNT(*) AS c FROM t' });
    cleanups.push(
      () => top.cancel(),
      () => count.cancel(),
    );
    const nextTop = reader<v1.ObserveResponse>(top);
    const nextCount = reader<v1.ObserveResponse>(count);
    let topItems = applyBatch([], await nextTop());
    let countItems = applyBatch([], await nextCount());
    expect(countItems).toEqual([{ c: 5 }]);
    // [statement, whether the count changes] — an unchanged result sends no batch.
    for (const [s, counted] of [
      ['UPDATE t SET n = 10 WHERE _id = 0', false],
      ['DELETE FROM t WHERE _id = 0', true],
      ['DELETE FROM t WHERE _id = 4', true],
    ] as const) {
      await exec(s);
      topItems = applyBatch(topItems, await nextTop());
      if (counted) countItems = applyBatch(countItems, await nextCount());
      expect(topItems).toEqual(
        (await exec('SELECT * FROM t ORDER BY n DESC LIMIT 2')).items.map(dec),
      );
      expect(countItems).toEqual((await exec('SELECT COUNT(*) AS c FROM t')).items.map(dec));
    }
    expect(countItems).toEqual([{ c: 3 }]);
  });

  it('refuses a non-SELECT, an unknown system collection and a bad statement with INVALID_ARGUMENT', async () => {
    fx = await startFixture();
    for (const [statement, code] of [
      ["DELETE FROM cars WHERE _id = 'a'", 'DQL_INVALID_QUERY'],
      ['SELECT * FROM system:nothing', 'DQL_INVALID_QUERY'],
      ['SELECT FROM', 'DQL_SYNTAX'],
    ] as const) {
      const stream = observe(fx.client, { statement });
      const error = await reader(stream)().catch((e: unknown) => e);
      expect(failure(error)).toEqual({ code: grpc.status.INVALID_ARGUMENT, latticeCode: code });
    }
    expect(fx.gateway.health().observers).toBe('0');
  });

  it('delivers a remote peer transaction as one batch, through a registered subscription', async () => {
    fx = await startFixture();
    const remote = await openPeer('remote-peer');
    cleanups.push(async () => {
      await remote.close();
      await remote.store.close();
    });
    const reg = await call(fx.client, 'registerSubscription', {
      statement: 'SELECT * FROM orders',
      args: enc({}),
    } as v1.RegisterSubscriptionRequest);
    expect(reg.subscription?.statement).toBe('SELECT * FROM orders');
    const stream = observe(fx.client, { statement: 'SELECT * FROM orders ORDER BY _id' });
    cleanups.push(() => stream.cancel());
    const next = reader<v1.ObserveResponse>(stream);
    expect((await next()).items).toEqual([]);
    const [ca, cb] = channelPair();
    const sessions = Promise.allSettled([
      fx.engine.connect(remote.peerId, ca),
      remote.connect(fx.engine.peerId, cb),
    ]);
    cleanups.push(async () => {
      ca.close();
      await sessions;
    });
    await remote.execute('INSERT INTO orders DOCUMENTS (:a), (:b), (:c)', {
      a: { _id: 'o1', total: 1 },
      b: { _id: 'o2', total: 2 },
      c: { _id: 'o3', total: 3 },
    });
    const batch = await next();
    expect(batch.kind).toBe(Kind.OBSERVE_BATCH_KIND_CHANGES);
    expect(batch.changes.map((c) => c.kind)).toEqual([1, 1, 1]);
    expect(applyBatch([], { ...batch, kind: 2 } as v1.ObserveResponse)).toEqual([
      { _id: 'o1', total: 1 },
      { _id: 'o2', total: 2 },
      { _id: 'o3', total: 3 },
    ]);
    const status = await call(fx.client, 'syncStatus', {} as v1.SyncStatusRequest);
    expect(status.peerId).toBe('gateway-peer');
    expect(status.peers.map((p) => p.remotePeer)).toEqual(['remote-peer']);
    expect(status.peers[0]?.documentsReceived).toBe(3);
  });

  it('observes system:data_sync_info: a remote peer appears, then its acknowledgement', async () => {
    fx = await startFixture({ systemPollMs: 20 });
    const stream = observe(fx.client, {
      statement:
        'SELECT _id, documents.synced_up_to_local_commit_id AS acked FROM system:data_sync_info',
    });
    cleanups.push(() => stream.cancel());
    const next = reader<v1.ObserveResponse>(stream);
    let items = applyBatch([], await next());
    expect(items).toEqual([]);
    const remote = await openPeer('remote-peer');
    cleanups.push(async () => {
      await remote.close();
      await remote.store.close();
    });
    await remote.subscribe('SELECT * FROM orders');
    const { commitSeq } = await fx.engine.execute("INSERT INTO orders DOCUMENTS ({'_id': 'o1'})");
    const [ca, cb] = channelPair();
    const sessions = Promise.allSettled([
      fx.engine.connect(remote.peerId, ca),
      remote.connect(fx.engine.peerId, cb),
    ]);
    cleanups.push(async () => {
      ca.close();
      await sessions;
    });
    while (JSON.stringify(items) !== JSON.stringify([{ _id: 'remote-peer', acked: commitSeq }])) {
      const batch = await next();
      expect(batch.kind).toBe(Kind.OBSERVE_BATCH_KIND_CHANGES);
      items = applyBatch(items, batch);
    }
    expect(fx.gateway.health().observers).toBe('1');
  });

  it('frees an observer when the client cancels the stream', async () => {
    fx = await startFixture();
    const stream = observe(fx.client, { statement: 'SELECT * FROM cars' });
    await reader(stream)();
    expect(fx.gateway.health().observers).toBe('1');
    const closed = new Promise((r) => stream.on('error', r));
    stream.cancel();
    await closed;
    const gw = fx.gateway;
    await expect.poll(() => gw.health().observers).toBe('0');
  });
});

describe('Observe flow control', () => {
  const big = 'x'.repeat(20_000);

  it('a client that does not read gets its batches coalesced; server memory stays bounded', async () => {
    fx = await startFixture({ maxQueuedBatches: 8 });
    await exec('INSERT INTO docs DOCUMENTS (:d)', { d: { _id: 'k', n: 0, big } });
    const stream = observe(fx.client, { statement: 'SELECT * FROM docs' });
    cleanups.push(() => stream.cancel());
    const next = reader<v1.ObserveResponse>(stream);
    let items = applyBatch([], await next());
    stream.pause();
    const writes = 400;
    let maxQueued = 0;
    let last = 0;
    for (let i = 1; i <= writes; i++) {
      last = (await exec("UPDATE docs SET n = :n WHERE _id = 'k'", { n: i })).commitId;
      maxQueued = Math.max(maxQueued, ...fx.gateway.observerStats().map((s) => s.queued));
    }
    const stats = fx.gateway.observerStats()[0];
    // 400 × 20 KB would be 8 MB of batches; the queue held at most 8 and coalesced the rest.
    expect(maxQueued).toBeLessThanOrEqual(8);
    expect(stats?.coalesced).toBeGreaterThan(0);
    stream.resume();
    let resets = 0;
    for (;;) {
      const b = await next();
      if (b.kind === Kind.OBSERVE_BATCH_KIND_RESET) resets++;
      items = applyBatch(items, b);
      if (b.commitId === last) break;
    }
    expect(resets).toBeGreaterThan(0);
    expect(items).toEqual([{ _id: 'k', n: writes, big }]);
  });

  it('ends the stream with RESOURCE_EXHAUSTED when the client chose cancel', async () => {
    fx = await startFixture({ maxQueuedBatches: 4 });
    await exec('INSERT INTO docs DOCUMENTS (:d)', { d: { _id: 'k', n: 0, big } });
    const stream = observe(fx.client, {
      statement: 'SELECT * FROM docs',
      overflow: v1.ObserveOverflow.OBSERVE_OVERFLOW_CANCEL,
    });
    const next = reader<v1.ObserveResponse>(stream);
    await next();
    stream.pause();
    for (let i = 1; i <= 200 && fx.gateway.observerStats().length > 0; i++) {
      await exec("UPDATE docs SET n = :n WHERE _id = 'k'", { n: i });
    }
    expect(fx.gateway.observerStats()).toEqual([]);
    stream.resume();
    let error: unknown;
    try {
      for (;;) await next();
    } catch (e) {
      error = e;
    }
    expect(failure(error)).toEqual({
      code: grpc.status.RESOURCE_EXHAUSTED,
      latticeCode: 'GATEWAY_OBSERVER_OVERFLOW',
    });
  });
});

describe('gRPC subscriptions and presence', () => {
  it('registers, lists and cancels subscriptions', async () => {
    fx = await startFixture();
    const a = await call(fx.client, 'registerSubscription', {
      statement: 'SELECT * FROM cars WHERE make = :m',
      args: enc({ m: 'Fiat' }),
    } as v1.RegisterSubscriptionRequest);
    await call(fx.client, 'registerSubscription', {
      statement: 'SELECT * FROM boats',
    } as v1.RegisterSubscriptionRequest);
    const list = await call(fx.client, 'listSubscriptions', {} as v1.ListSubscriptionsRequest);
    expect(list.subscriptions.map((s) => [s.statement, dec(s.args ?? new Uint8Array())])).toEqual([
      ['SELECT * FROM cars WHERE make = :m', { m: 'Fiat' }],
      ['SELECT * FROM boats', {}],
    ]);
    expect(fx.engine.subscriptions).toHaveLength(2);
    const id = a.subscription?.id ?? '';
    expect(
      (await call(fx.client, 'cancelSubscription', { id } as v1.CancelSubscriptionRequest))
        .cancelled,
    ).toBe(true);
    expect(
      (await call(fx.client, 'cancelSubscription', { id } as v1.CancelSubscriptionRequest))
        .cancelled,
    ).toBe(false);
    expect(fx.engine.subscriptions.map((s) => s.statement)).toEqual(['SELECT * FROM boats']);
    const bad = await call(fx.client, 'registerSubscription', {
      statement: 'SELECT COUNT(*) FROM cars',
    } as v1.RegisterSubscriptionRequest).catch((e: unknown) => e);
    expect(failure(bad)).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      latticeCode: 'DQL_INVALID_SUBSCRIPTION',
    });
  });

  it('streams the presence graph', async () => {
    fx = await startFixture();
    const def = (await import('@lattice/gateway')).dqlServiceDefinition.presence;
    const stream = fx.client.makeServerStreamRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      {} as v1.PresenceRequest,
      new grpc.Metadata(),
      {},
    );
    cleanups.push(() => stream.cancel());
    const first = await reader<v1.PresenceResponse>(stream)();
    expect(first.presence?.peerId).toBe('gateway-peer');
    expect(first.presence?.peers).toEqual([]);
  });
});
