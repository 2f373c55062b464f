/**
 * OpenTelemetry for every Lattice service, configured by the standard `OTEL_*` variables.
 *
 * @remarks
 * - The W3C trace-context propagator and an AsyncLocalStorage context manager are always
 *   installed, so a trace passes through a service even when that service exports nothing.
 * - Spans are recorded and exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
 *   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_TRACES_EXPORTER` is not `none`), or when
 *   a test passes its own exporter. Otherwise no span is recorded and tracing costs next to nothing.
 * - `OTEL_SDK_DISABLED=true` turns everything off. `OTEL_SERVICE_NAME` overrides the service name;
 *   `OTEL_RESOURCE_ATTRIBUTES` adds resource attributes.
 * - Telemetry never throws into the application: export failures are the exporter's to log.
 * Pinned to the 2.x SDK line (`@opentelemetry/sdk-trace` 2.x with exporter 0.2xx).
 */
import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  SimpleSpanProcessor,
  TracerProvider,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

/** Options of {@link createTelemetry} and {@link setupTelemetry}. */
export interface TelemetryOptions {
  /** The service's name (`lattice-store`); `OTEL_SERVICE_NAME` wins over it. */
  readonly serviceName: string;
  readonly serviceVersion?: string;
  /** Environment to read `OTEL_*` from (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Export to this exporter, synchronously (tests: `InMemorySpanExporter`). */
  readonly exporter?: SpanExporter;
  /** Extra resource attributes (e.g. `lattice.peer.namespace`). */
  readonly attributes?: Readonly<Record<string, string>>;
}

/** A configured tracer provider. */
export interface Telemetry {
  /** Whether spans are recorded and exported. */
  readonly exporting: boolean;
  /** Where spans go: `otlp <url>`, `custom`, or `none`. */
  readonly destination: string;
  tracer(name: string): Tracer;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** The OTLP/HTTP traces URL the environment asks for, if any. */
export function otlpTracesUrl(
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if ((env['OTEL_TRACES_EXPORTER'] ?? '').split(',').includes('none')) return undefined;
  const traces = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'];
  if (traces !== undefined && traces !== '') return traces;
  const base = env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  if (base !== undefined && base !== '') return `${base.replace(/\/+$/, '')}/v1/traces`;
  return undefined;
}

function resourceAttributes(
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (env['OTEL_RESOURCE_ATTRIBUTES'] ?? '').split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    try {
      out[decodeURIComponent(pair.slice(0, eq).trim())] = decodeURIComponent(
        pair.slice(eq + 1).trim(),
      );
    } catch {
      // a malformed attribute is ignored, as the OpenTelemetry specification asks
    }
  }
  return out;
}

/** Builds a tracer provider from options and environment, without registering it globally. */
export function createTelemetry(options: TelemetryOptions): Telemetry {
  const env = options.env ?? process.env;
  const disabled = (env['OTEL_SDK_DISABLED'] ?? '').toLowerCase() === 'true';
  const url = disabled ? undefined : otlpTracesUrl(env);
  const processors: SpanProcessor[] = [];
  let destination = 'none';
  if (!disabled && options.exporter !== undefined) {
    processors.push(new SimpleSpanProcessor({ exporter: options.exporter }));
    destination = 'custom';
  } else if (url !== undefined) {
    processors.push(new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url }) }));
    destination = `otlp ${url}`;
  }
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      ...resourceAttributes(env),
      ...options.attributes,
      [ATTR_SERVICE_NAME]: env['OTEL_SERVICE_NAME'] ?? options.serviceName,
      ...(options.serviceVersion === undefined
        ? {}
        : { [ATTR_SERVICE_VERSION]: options.serviceVersion }),
    }),
    spanProcessors: processors,
  });
  return {
    exporting: processors.length > 0,
    destination,
    tracer: (name) => provider.getTracer(name),
    forceFlush: () => provider.forceFlush().catch(() => undefined),
    shutdown: () => provider.shutdown().catch(() => undefined),
  };
}

let contextInstalled = false;

/**
 * Creates telemetry and registers it as the process's global tracer provider, with the W3C
 * propagators and the async context manager. Call once, from a service's `main.ts`.
 * @returns the telemetry; `shutdown()` flushes pending spans (call it on exit).
 */
export function setupTelemetry(options: TelemetryOptions): Telemetry {
  installContextPropagation();
  const telemetry = createTelemetry(options);
  // The first registration in a process wins: tracers handed out earlier are proxies bound to the
  // global provider, and replacing it (trace.disable()) would silently detach them.
  if (
    telemetry.exporting &&
    !trace.setGlobalTracerProvider({ getTracer: (name: string) => telemetry.tracer(name) })
  ) {
    throw new RangeError('a global tracer provider is already registered in this process');
  }
  return telemetry;
}

/** Installs the async context manager and W3C propagators once per process. */
export function installContextPropagation(): void {
  if (contextInstalled) return;
  contextInstalled = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
  );
}
