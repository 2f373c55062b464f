import { afterEach, describe, expect, it } from 'vitest';
import { hasCode } from '@lattice/errors';
import { NatsBus, serve, type BusStatus } from '@lattice/bus';
import { startNatsServer, waitFor, type NatsServer } from '@lattice/testing';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('NatsBus across a server restart', () => {
  let server: NatsServer | undefined;
  const buses: NatsBus[] = [];
  afterEach(async () => {
    await Promise.all(buses.map((b) => b.close()));
    buses.length = 0;
    await server?.stop();
  });

  it('fails requests with a typed error while the server is down and succeeds after reconnect', async () => {
    server = await startNatsServer({ jetstream: false });
    const client = await NatsBus.connect({ servers: server.url, reconnectTimeWaitMs: 100 });
    const service = await NatsBus.connect({ servers: server.url, reconnectTimeWaitMs: 100 });
    buses.push(client, service);
    const statuses: BusStatus['type'][] = [];
    void (async () => {
      for await (const s of client.status()) statuses.push(s.type);
    })();
    const subject = 'lattice.restart.store.req.ping';
    const responder = serve(service, subject, (req) => req.data, { service: 'store' });
    await service.flush();
    expect(new TextDecoder().decode((await client.request(subject, text('before'))).data)).toBe(
      'before',
    );

    await server.kill();
    await waitFor(() => statuses.includes('disconnected'), { what: 'disconnect status' });
    const during = await client.request(subject, text('during'), { timeoutMs: 300 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(hasCode(during, 'BUS_TIMEOUT', 'BUS_DISCONNECTED', 'BUS_NO_RESPONDERS')).toBe(true);

    await server.start();
    await waitFor(() => statuses.includes('reconnected'), {
      what: 'reconnect status',
      timeoutMs: 15_000,
    });
    // The responder's own client reconnects on its own schedule; retry until it is back.
    const after = await waitFor(
      async () =>
        new TextDecoder().decode(
          (await client.request(subject, text('after'), { timeoutMs: 500 })).data,
        ),
      { timeoutMs: 15_000, what: 'a request to succeed after reconnect' },
    );
    expect(after).toBe('after');
    await responder.stop();
  });

  it('reports a clear BUS_DISCONNECTED when no server answers at connect', async () => {
    const error = await NatsBus.connect({
      servers: 'nats://127.0.0.1:1',
      connectTimeoutMs: 500,
      maxReconnectAttempts: 0,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(hasCode(error, 'BUS_DISCONNECTED')).toBe(true);
    expect(String((error as Error).message)).toContain('nats://127.0.0.1:1');
  });
});
