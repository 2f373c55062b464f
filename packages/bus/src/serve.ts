/**
 * Serving requests on a subject: the other half of `Bus.request`.
 *
 * @remarks
 * For each request: the trace context in its headers is continued in a SERVER span; a request
 * whose deadline already passed is answered with BUS_TIMEOUT without running the handler; the
 * handler gets an AbortSignal that fires at the deadline; whatever it throws goes back as a typed
 * error (code + message + details), never as text. At most `maxConcurrent` requests run at once;
 * beyond that, requests wait in the subscription's bounded queue. `stop()` stops taking requests
 * and waits for the ones in flight: the drain of a graceful shutdown.
 */
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { hasCode } from '@lattice/errors';
import { DEADLINE_HEADER, subjectOperation } from './base-bus.js';
import { busError } from './errors.js';
import { extractTraceContext } from './trace.js';
import type { Bus, BusMessage } from './types.js';

/** What a handler knows about the request besides its message. */
export interface HandlerContext {
  /** Absolute deadline in Unix ms, when the caller set one. */
  readonly deadline: number | undefined;
  /** Fires when the deadline passes or the server stops. */
  readonly signal: AbortSignal;
}

/** Answers one request with the reply's bytes, or throws a Lattice error. */
export type Handler = (
  request: BusMessage,
  ctx: HandlerContext,
) => Promise<Uint8Array> | Uint8Array;

/** Options of {@link serve}. */
export interface ServeOptions {
  /** The service answering, named in error replies ("which side failed"). */
  readonly service: string;
  /** Queue group, so several instances share the requests. */
  readonly queue?: string;
  /** Requests handled at once (default 64). */
  readonly maxConcurrent?: number;
  /** Largest request accepted, in bytes (default 1 MiB). */
  readonly maxRequestBytes?: number;
  /** Requests that may wait for a free slot before new ones are dropped (default 65 536). */
  readonly maxPending?: number;
}

/** A running request handler. */
export interface Server {
  readonly subject: string;
  /** Requests being handled now. */
  readonly inFlight: number;
  /** Stops taking requests and resolves once those in flight have been answered. */
  stop(): Promise<void>;
}

const tracer = trace.getTracer('@lattice/bus');

/** Serves `handler` on `subject`; see the module comment. */
export function serve(bus: Bus, subject: string, handler: Handler, options: ServeOptions): Server {
  const maxConcurrent = options.maxConcurrent ?? 64;
  const maxRequestBytes = options.maxRequestBytes ?? 1024 * 1024;
  const subscription = bus.subscribe(subject, {
    ...(options.queue === undefined ? {} : { queue: options.queue }),
    ...(options.maxPending === undefined ? {} : { maxPending: options.maxPending }),
  });
  const stopController = new AbortController();
  const inFlight = new Set<Promise<void>>();
  let slotFreed: (() => void) | undefined;

  async function handle(request: BusMessage): Promise<void> {
    const parent = extractTraceContext(request.headers);
    const span = tracer.startSpan(
      `handle ${subjectOperation(request.subject)}`,
      { kind: SpanKind.SERVER, attributes: { 'messaging.destination.name': request.subject } },
      parent,
    );
    const deadlineHeader = request.headers[DEADLINE_HEADER];
    const deadline = deadlineHeader === undefined ? undefined : Number(deadlineHeader);
    let timer: NodeJS.Timeout | undefined;
    let signal: AbortSignal | undefined;
    try {
      if (request.data.byteLength > maxRequestBytes) {
        throw busError(
          'BUS_PAYLOAD_TOO_LARGE',
          `request of ${request.data.byteLength} bytes exceeds the limit of ${maxRequestBytes}`,
          { limit: String(maxRequestBytes), bytes: String(request.data.byteLength) },
        );
      }
      const finite = deadline !== undefined && Number.isFinite(deadline);
      if (finite && deadline - Date.now() <= 0)
        throw busError('BUS_TIMEOUT', `request to ${request.subject} arrived after its deadline`);
      const ctx: HandlerContext = {
        deadline,
        // Made when the handler first asks for it: most handlers answer without looking, and a
        // timer plus a combined signal per request cost more than many handlers do.
        get signal(): AbortSignal {
          if (signal !== undefined) return signal;
          if (!finite) return (signal = stopController.signal);
          const deadlineController = new AbortController();
          const passed = (): Error => busError('BUS_TIMEOUT', 'deadline passed');
          const left = (deadline as number) - Date.now();
          if (left <= 0) deadlineController.abort(passed());
          else timer = setTimeout(() => deadlineController.abort(passed()), left);
          return (signal = AbortSignal.any([stopController.signal, deadlineController.signal]));
        },
      };
      const reply = await context.with(trace.setSpan(parent, span), () => handler(request, ctx));
      // The caller stops waiting at its deadline; a reply after it would race the caller's timer,
      // so a late handler always answers BUS_TIMEOUT and the caller sees one outcome.
      if (deadline !== undefined && Date.now() >= deadline) {
        throw busError('BUS_TIMEOUT', `handler for ${request.subject} finished after the deadline`);
      }
      bus.respond(request, reply);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: hasCode(error) ? error.code : 'handler failed',
      });
      bus.respondError(request, error, options.service);
    } finally {
      clearTimeout(timer);
      span.end();
    }
  }

  const loop = (async () => {
    for await (const request of subscription) {
      while (inFlight.size >= maxConcurrent) {
        await new Promise<void>((resolve) => {
          slotFreed = resolve;
        });
      }
      const task = handle(request).finally(() => {
        inFlight.delete(task);
        const wake = slotFreed;
        slotFreed = undefined;
        wake?.();
      });
      inFlight.add(task);
    }
  })();

  return {
    subject,
    get inFlight() {
      return inFlight.size;
    },
    async stop() {
      subscription.unsubscribe();
      await loop;
      await Promise.all([...inFlight]);
      stopController.abort(busError('BUS_CLOSED', 'server stopped'));
    },
  };
}
