/**
 * Spans of the gateway: each Execute (gRPC or HTTP) runs in a SERVER span that continues the
 * caller's W3C trace context (`traceparent` metadata or header), so the bus carries it on to the
 * merge service, the commit, and over sync to other peers; an observer update runs in a span that
 * continues the trace of the commit it reports (a write's trace ends in the observers it reached).
 */
import { SpanKind, trace } from '@opentelemetry/api';
import { extractTraceContext, withSpan } from '@lattice/bus';

const tracer = trace.getTracer('@lattice/gateway');

/** W3C trace headers (`traceparent`, `tracestate`) from any header-like source. */
export function traceHeaders(get: (name: string) => string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['traceparent', 'tracestate']) {
    const v = get(name);
    if (v !== undefined && v !== '') out[name] = v;
  }
  return out;
}

/** Runs `fn` in a span named `name` whose parent is the context in `headers` (a new trace without). */
export function inSpan<T>(
  name: string,
  kind: SpanKind,
  headers: Readonly<Record<string, string>>,
  fn: () => Promise<T>,
): Promise<T> {
  return withSpan(tracer, name, { kind }, extractTraceContext(headers), fn);
}

/** Runs synchronous `fn` in a span continuing `headers`' trace; without one, just runs it. */
export function inSpanSync(
  name: string,
  headers: { readonly traceparent: string; readonly tracestate?: string } | undefined,
  fn: () => void,
): void {
  if (headers === undefined) {
    fn();
    return;
  }
  const carrier = {
    traceparent: headers.traceparent,
    ...(headers.tracestate === undefined ? {} : { tracestate: headers.tracestate }),
  };
  tracer.startActiveSpan(
    name,
    { kind: SpanKind.CONSUMER },
    extractTraceContext(carrier),
    (span) => {
      try {
        fn();
      } finally {
        span.end();
      }
    },
  );
}
