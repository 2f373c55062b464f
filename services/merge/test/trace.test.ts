/** A write's trace continues on the peer that receives it, and on the next hop. */
import { trace } from '@opentelemetry/api';
import { memoryTelemetry } from '@lattice/telemetry/testing';
import { waitFor } from '@lattice/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { contents, link, peer } from './helpers.js';

const { exporter, telemetry } = memoryTelemetry('merge-trace-test');
afterAll(() => telemetry.shutdown());

describe('trace context in the sync envelope', () => {
  it('continues the writer trace on the receiving peer and across a relay', async () => {
    const a = await peer('a');
    const b = await peer('b');
    const c = await peer('c');
    for (const p of [b, c]) await p.subscribe('SELECT * FROM notes');
    link(a, b);
    link(b, c);
    await waitFor(() => b.syncStatus().every((s) => s.state === 'idle') || undefined, {
      what: 'idle',
    });
    await trace.getTracer('app').startActiveSpan('app write', async (span) => {
      await a.execute("INSERT INTO notes DOCUMENTS ({'_id': 'n1', 'text': 'traced'})");
      span.end();
    });
    await waitFor(() => contents(c, 'notes').length === 1 || undefined, { what: 'note on c' });
    const spans = exporter.getFinishedSpans();
    const write = spans.find((s) => s.name === 'app write');
    expect(write, spans.map((s) => s.name).join(', ')).toBeDefined();
    const applies = spans.filter(
      (s) => s.name === 'sync apply' && s.spanContext().traceId === write?.spanContext().traceId,
    );
    // One on b (from a) and one on c (relayed by b).
    expect(applies.length).toBeGreaterThanOrEqual(2);
    for (const p of [a, b, c]) await p.close();
  });
});
