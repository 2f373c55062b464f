/**
 * W3C trace context in bus headers. Uses only `@opentelemetry/api`: without an SDK registered
 * (see `@lattice/telemetry`) every call here is a no-op, and telemetry never throws into callers.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanStatusCode,
  type Context,
  type SpanOptions,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
} from '@opentelemetry/api';
import type { BusHeaders } from './types.js';

const setter: TextMapSetter<Record<string, string>> = {
  set(carrier, key, value) {
    carrier[key.toLowerCase()] = value;
  },
};

const getter: TextMapGetter<BusHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key.toLowerCase()],
};

/** Writes the trace context of `ctx` (the active one by default) into `headers`. */
export function injectTraceContext(
  headers: Record<string, string>,
  ctx: Context = context.active(),
): void {
  propagation.inject(ctx, headers, setter);
}

/**
 * The context carried by `headers`, rooted at ROOT_CONTEXT: what a receiving service continues
 * is exactly what the sender put in the message, never whatever happens to be active locally.
 */
export function extractTraceContext(headers: BusHeaders): Context {
  return propagation.extract(ROOT_CONTEXT, headers, getter);
}

/**
 * Runs `fn` in a new active span named `name` whose parent is `parent` (from
 * {@link extractTraceContext}, or the active context); a failure marks the span as an error.
 */
export async function withSpan<T>(
  tracer: Tracer,
  name: string,
  options: SpanOptions,
  parent: Context,
  fn: () => Promise<T>,
): Promise<T> {
  return tracer.startActiveSpan(name, options, parent, async (span) => {
    try {
      return await fn();
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}
