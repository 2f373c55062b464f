import { describe, expect, it } from 'vitest';
import { LocalBus } from '@lattice/bus';
import { createLogger } from '@lattice/service';
import { Subjects } from '@lattice/proto';
import {
  gatewayConfigSchema,
  gatewayOptionsFrom,
  gatewayService,
  InProcessPeer,
  startGatewayService,
} from '@lattice/gateway';
import * as grpc from '@grpc/grpc-js';
import { mergeConfigSchema, startMergeService } from '@lattice/merge';
import type { v1 } from '@lattice/proto';
import { waitFor } from '@lattice/testing';
import { applyBatch, observe, openPeer, reader } from './helpers.js';

describe('gateway service', () => {
  it('reads its settings with defaults', () => {
    const c = gatewayConfigSchema.parse({});
    expect(gatewayOptionsFrom(c)).toEqual({
      host: '127.0.0.1',
      grpcPort: 50051,
      httpPort: 8080,
      apiKeys: [],
      reflection: 'auto',
      maxBodyBytes: 1024 * 1024,
    });
    const d = gatewayConfigSchema.parse({
      grpcPort: '0',
      apiKey: 'a, b',
      syncEndpoint: 'on',
      allowedOrigins: 'https://x',
    });
    expect(gatewayOptionsFrom(d)).toMatchObject({
      grpcPort: 0,
      apiKeys: ['a', 'b'],
      sync: { allowedOrigins: ['https://x'] },
    });
    expect(() => gatewayConfigSchema.parse({ grpcPort: '70000' })).toThrow();
  });

  it('starts over a peer and serves execute over HTTP; stops cleanly', async () => {
    const engine = await openPeer('svc');
    try {
      const config = gatewayConfigSchema.parse({ grpcPort: '0', httpPort: '0', apiKey: 'k' });
      const svc = await startGatewayService(new InProcessPeer(engine), config);
      expect(svc.health?.()).toMatchObject({ peer: 'svc', auth: 'api-keys', syncLinks: 'off' });
      const r = await fetch(`http://127.0.0.1:${svc.gateway.httpPort}/api/v4/store/execute`, {
        method: 'POST',
        headers: { authorization: 'Bearer k' },
        body: JSON.stringify({ statement: "INSERT INTO t DOCUMENTS ({'_id': 1})" }),
      });
      expect(r.status).toBe(200);
      await svc.stop();
      await expect(
        fetch(`http://127.0.0.1:${svc.gateway.httpPort}/api/v4/store/execute`, { method: 'POST' }),
      ).rejects.toThrow();
    } finally {
      await engine.close();
      await engine.store.close();
    }
  });

  it('on its own, serves the peer whose merge service is on the bus: statements and observers', async () => {
    const bus = new LocalBus();
    const subjects = new Subjects('gwbus');
    const logger = createLogger('silent', 'test');
    // The gateway starts first: it serves, and statements fail typed until merge answers.
    const instance = await gatewayService.start({
      bus,
      config: gatewayConfigSchema.parse({ grpcPort: '0', httpPort: '0', syncEndpoint: 'off' }),
      logger,
      subjects,
    });
    const merge = await startMergeService(
      {
        bus,
        config: mergeConfigSchema.parse({ engine: 'memory', syncOverBus: 'false' }),
        logger,
        subjects,
      },
      {},
    );
    try {
      const health = () => instance.health?.() ?? {};
      await waitFor(() => (health()['peer'] === merge.engine.peerId ? true : undefined), {
        what: 'the gateway finding the merge service',
      });
      const url = `http://${health()['http']}`;
      const execute = async (statement: string): Promise<Record<string, unknown>> => {
        const r = await fetch(`${url}/api/v4/store/execute`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ statement }),
        });
        return (await r.json()) as Record<string, unknown>;
      };
      expect(
        await execute("INSERT INTO cars DOCUMENTS ({'_id': 'a', 'color': 'red'})"),
      ).toMatchObject({ mutatedDocumentIds: ['a'] });

      // An observer in this process follows commits made in the merge process.
      const client = new grpc.Client(health()['grpc'] ?? '', grpc.credentials.createInsecure());
      const stream = observe(client, { statement: 'SELECT * FROM cars ORDER BY _id' });
      const next = reader(stream as AsyncIterable<v1.ObserveResponse>);
      let items = applyBatch([], await next());
      expect(items).toEqual([{ _id: 'a', color: 'red' }]);
      await merge.engine.execute("INSERT INTO cars DOCUMENTS ({'_id': 'b', 'color': 'blue'})");
      items = applyBatch(items, await next());
      await merge.engine.execute("UPDATE cars SET color = 'green' WHERE _id = 'a'");
      items = applyBatch(items, await next());
      await merge.engine.execute("DELETE FROM cars WHERE _id = 'b'");
      items = applyBatch(items, await next());
      expect(items).toEqual([{ _id: 'a', color: 'green' }]);
      stream.cancel();
      client.close();
    } finally {
      await instance.stop();
      await merge.stop();
      await bus.close();
    }
  });
});
