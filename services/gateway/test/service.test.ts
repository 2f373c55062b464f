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
import { openPeer } from './helpers.js';

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

  it('without a peer, the bus-started definition says so in its health', async () => {
    const bus = new LocalBus();
    const instance = await gatewayService.start({
      bus,
      config: gatewayConfigSchema.parse({}),
      logger: createLogger('silent', 'test'),
      subjects: new Subjects('gwtest'),
    });
    expect(instance.health?.()).toMatchObject({ peer: 'none' });
    await instance.stop();
    await bus.close();
  });
});
