import { request } from 'node:https';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '@lattice/errors';
import { selfSignedPair, testAuthority, type SelfSignedPair } from '@lattice/testing';
import type { v1 } from '@lattice/proto';
import {
  gatewayConfigSchema,
  gatewayOptionsFrom,
  InProcessPeer,
  startGateway,
  WebSocketLinkDriver,
} from '@lattice/gateway';
import { call, dec, openPeer, startFixture } from './helpers.js';
import type { Fixture } from './helpers.js';

const KEY = 'tls-test-token-0123456789';

let pair: SelfSignedPair;
let cert: Buffer;
let key: Buffer;
let fx: Fixture;

beforeAll(async () => {
  pair = await selfSignedPair();
  cert = pair.cert;
  key = pair.key;
  const options = gatewayOptionsFrom(
    gatewayConfigSchema.parse({
      grpcPort: '0',
      httpPort: '0',
      apiKey: KEY,
      syncEndpoint: 'on',
      tlsCert: pair.certPath,
      tlsKey: pair.keyPath,
    }),
  );
  fx = await startFixture(options);
});

afterAll(async () => {
  await fx.close();
  await pair.remove();
});

const auth = (): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${KEY}`);
  return md;
};

function httpsPost(
  port: number,
  body: string,
  ca: Buffer | undefined,
  client?: { readonly cert: Buffer; readonly key: Buffer },
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/api/v4/store/execute',
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        ...(ca ? { ca } : {}),
        ...(client ? { cert: client.cert, key: client.key } : {}),
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('TLS from cert and key paths', () => {
  it('serves gRPC over TLS to a client that trusts the certificate, and not in plaintext', async () => {
    expect(fx.gateway.tls).toBe(true);
    const client = new grpc.Client(fx.grpcAddress, grpc.credentials.createSsl(cert));
    try {
      await call(
        client,
        'execute',
        {
          statement: "INSERT INTO cars DOCUMENTS ({'_id': 'tls', 'make': 'Volvo'})",
        } as v1.ExecuteRequest,
        { metadata: auth() },
      );
      const r = await call(
        client,
        'execute',
        { statement: "SELECT make FROM cars WHERE _id = 'tls'" } as v1.ExecuteRequest,
        { metadata: auth() },
      );
      expect(r.items.map(dec)).toEqual([{ make: 'Volvo' }]);
    } finally {
      client.close();
    }
    // fx.client is a plaintext client: the TLS listener does not answer it.
    const error = await call(
      fx.client,
      'execute',
      { statement: 'SELECT * FROM cars' } as v1.ExecuteRequest,
      { metadata: auth(), deadlineMs: 3_000 },
    ).catch((e: unknown) => e as grpc.ServiceError);
    expect(error).toBeInstanceOf(Error);
    expect((error as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('serves HTTPS, refused by a client that does not trust the certificate', async () => {
    const body = JSON.stringify({ statement: "SELECT make FROM cars WHERE _id = 'tls'" });
    const r = await httpsPost(fx.gateway.httpPort, body, cert);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ queryType: 'select' });
    await expect(httpsPost(fx.gateway.httpPort, body, undefined)).rejects.toThrow(
      /self[- ]signed/i,
    );
    await expect(
      fetch(`http://127.0.0.1:${fx.gateway.httpPort}/api/v4/store/execute`, {
        method: 'POST',
        body,
      }),
    ).rejects.toThrow();
  });

  it('serves the sync endpoint as wss', async () => {
    const client = new WebSocketLinkDriver();
    try {
      const url = `wss://127.0.0.1:${fx.gateway.httpPort}/api/v4/sync`;
      const linkId = await client.connect(url, { apiKey: KEY, ca: cert });
      expect(linkId).toBeDefined();
      await expect(client.connect(url.replace('wss:', 'ws:'), { apiKey: KEY })).rejects.toThrow();
      await expect(client.connect(url, { apiKey: KEY })).rejects.toThrow(/self[- ]signed/i);
    } finally {
      await client.close();
    }
  });

  it('needs both --tls-cert and --tls-key; playground mode stays loopback-only with TLS', async () => {
    const error = (() => {
      try {
        gatewayOptionsFrom(gatewayConfigSchema.parse({ tlsCert: pair.certPath }));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(hasCode(error, 'GATEWAY_BAD_CONFIG')).toBe(true);
    const engine = await openPeer('tls-playground');
    try {
      await expect(
        startGateway(new InProcessPeer(engine), {
          host: '0.0.0.0',
          grpcPort: 0,
          httpPort: 0,
          tls: { cert, key },
        }),
      ).rejects.toMatchObject({ code: 'GATEWAY_INSECURE_CONFIG' });
    } finally {
      await engine.close();
      await engine.store.close();
    }
  });
});

describe('mutual TLS (--tls-client-ca)', () => {
  it('admits clients that show a certificate of the CA on gRPC, HTTPS and wss, and no others', async () => {
    const ca = await testAuthority();
    const stranger = await testAuthority();
    const mtls = await startFixture(
      gatewayOptionsFrom(
        gatewayConfigSchema.parse({
          grpcPort: '0',
          httpPort: '0',
          apiKey: KEY,
          syncEndpoint: 'on',
          tlsCert: pair.certPath,
          tlsKey: pair.keyPath,
          tlsClientCa: ca.certPath,
        }),
      ),
    );
    const links = new WebSocketLinkDriver();
    try {
      const device = await ca.issue('device-1');
      const impostor = await stranger.issue('device-1');
      expect(mtls.gateway.health()['tls']).toBe('mutual');
      // gRPC
      const query = { statement: 'SELECT * FROM cars' } as v1.ExecuteRequest;
      const ok = new grpc.Client(
        mtls.grpcAddress,
        grpc.credentials.createSsl(cert, device.key, device.cert),
      );
      const anonymous = new grpc.Client(mtls.grpcAddress, grpc.credentials.createSsl(cert));
      const foreign = new grpc.Client(
        mtls.grpcAddress,
        grpc.credentials.createSsl(cert, impostor.key, impostor.cert),
      );
      try {
        expect((await call(ok, 'execute', query, { metadata: auth() })).items).toEqual([]);
        for (const refused of [anonymous, foreign]) {
          const error = await call(refused, 'execute', query, {
            metadata: auth(),
            deadlineMs: 3_000,
          }).catch((e: unknown) => e as grpc.ServiceError);
          expect((error as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
        }
      } finally {
        for (const c of [ok, anonymous, foreign]) c.close();
      }
      // HTTPS
      const body = JSON.stringify({ statement: 'SELECT * FROM cars' });
      expect((await httpsPost(mtls.gateway.httpPort, body, cert, device)).status).toBe(200);
      await expect(httpsPost(mtls.gateway.httpPort, body, cert)).rejects.toThrow();
      await expect(httpsPost(mtls.gateway.httpPort, body, cert, impostor)).rejects.toThrow();
      // wss
      const url = `wss://127.0.0.1:${mtls.gateway.httpPort}/api/v4/sync`;
      expect(await links.connect(url, { apiKey: KEY, ca: cert, ...device })).toBeDefined();
      await expect(links.connect(url, { apiKey: KEY, ca: cert })).rejects.toThrow();
      await expect(links.connect(url, { apiKey: KEY, ca: cert, ...impostor })).rejects.toThrow();
    } finally {
      await links.close();
      await mtls.close();
      await ca.remove();
      await stranger.remove();
    }
  });

  it('needs TLS itself', () => {
    expect(() =>
      gatewayOptionsFrom(gatewayConfigSchema.parse({ tlsClientCa: pair.certPath })),
    ).toThrow(expect.objectContaining({ code: 'GATEWAY_BAD_CONFIG' }) as Error);
  });
});
