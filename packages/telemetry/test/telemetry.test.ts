import { createServer, type IncomingMessage } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createTelemetry, otlpTracesUrl } from '@lattice/telemetry';

describe('telemetry configuration from OTEL_* variables', () => {
  it('exports nothing without an endpoint, and honours OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none', () => {
    expect(createTelemetry({ serviceName: 's', env: {} }).exporting).toBe(false);
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/' };
    expect(otlpTracesUrl(endpoint)).toBe('http://127.0.0.1:4318/v1/traces');
    expect(otlpTracesUrl({ ...endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://x:1/t' })).toBe(
      'http://x:1/t',
    );
    expect(otlpTracesUrl({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
    expect(
      createTelemetry({ serviceName: 's', env: { ...endpoint, OTEL_SDK_DISABLED: 'true' } })
        .exporting,
    ).toBe(false);
    const t = createTelemetry({ serviceName: 's', env: endpoint });
    expect(t.exporting).toBe(true);
    expect(t.destination).toBe('otlp http://127.0.0.1:4318/v1/traces');
  });

  it('sends spans over OTLP/HTTP to the configured endpoint', async () => {
    const bodies: { url: string | undefined; type: string | undefined; body: Buffer }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push({
          url: req.url,
          type: req.headers['content-type'],
          body: Buffer.concat(chunks),
        });
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      const telemetry = createTelemetry({
        serviceName: 'lattice-otlp-test',
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` },
      });
      telemetry.tracer('t').startSpan('span-that-must-arrive').end();
      await telemetry.forceFlush();
      await telemetry.shutdown();
      expect(bodies.length).toBeGreaterThanOrEqual(1);
      expect(bodies[0]?.url).toBe('/v1/traces');
      const all = Buffer.concat(bodies.map((b) => b.body)).toString('latin1');
      expect(all).toContain('span-that-must-arrive');
      expect(all).toContain('lattice-otlp-test');
    } finally {
      server.close();
    }
  });
});
