import { SpanKind, context, trace } from '@opentelemetry/api';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { NatsBus, serve } from '@lattice/bus';
import { memoryTelemetry } from '@lattice/telemetry/testing';

const { exporter, telemetry } = memoryTelemetry();

describe('one trace across two services over real NATS', () => {
  afterAll(async () => {
    await telemetry.shutdown();
  });

  it('continues the caller trace in the handler, and the handler span is a child of the request span', async () => {
    const url = inject('natsUrl');
    // Two connections, as two service processes would have: the only link between them is NATS.
    const gateway = await NatsBus.connect({ servers: url, name: 'gateway' });
    const store = await NatsBus.connect({ servers: url, name: 'store' });
    const subject = `lattice.trace${process.pid}.store.req.get`;
    let handlerTraceId: string | undefined;
    const server = serve(
      store,
      subject,
      (req) => {
        handlerTraceId = trace.getActiveSpan()?.spanContext().traceId;
        trace.getTracer('store').startSpan('rocksdb.get').end(); // a child span inside the handler
        return req.data;
      },
      { service: 'store' },
    );
    await store.flush();

    const tracer = trace.getTracer('gateway');
    const root = tracer.startSpan('Execute', { kind: SpanKind.SERVER });
    await context.with(trace.setSpan(context.active(), root), () =>
      gateway.request(subject, new Uint8Array([1]), { timeoutMs: 2_000 }),
    );
    root.end();
    await server.stop();
    await gateway.close();
    await store.close();

    const spans = exporter.getFinishedSpans();
    const traceId = root.spanContext().traceId;
    const client = spans.find(
      (s) => s.kind === SpanKind.CLIENT && s.name === 'request store.req.get',
    );
    const handler = spans.find(
      (s) => s.kind === SpanKind.SERVER && s.name === 'handle store.req.get',
    );
    const inner = spans.find((s) => s.name === 'rocksdb.get');
    expect(client?.spanContext().traceId).toBe(traceId);
    expect(client?.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(handler?.spanContext().traceId).toBe(traceId);
    expect(handler?.parentSpanContext?.spanId).toBe(client?.spanContext().spanId);
    expect(handler?.parentSpanContext?.isRemote).toBe(true);
    expect(inner?.parentSpanContext?.spanId).toBe(handler?.spanContext().spanId);
    expect(handlerTraceId).toBe(traceId);
  });
});
