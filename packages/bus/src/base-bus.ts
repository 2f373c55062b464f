/**
 * The shared half of every bus: argument and state checks, deadlines, trace propagation, error
 * replies, bounded subscriptions and status events. Implementations (`LocalBus`, `NatsBus`)
 * write only the protected `_publish`, `_subscribe`, `_request`, `_flush` and `_close`.
 */
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { hasCode } from '@lattice/errors';
import { Channel } from './channel.js';
import { busError, decodeError, encodeError, ERROR_HEADER } from './errors.js';
import { injectTraceContext } from './trace.js';
import type {
  Bus,
  BusHeaders,
  BusMessage,
  BusStatus,
  PublishOptions,
  RequestOptions,
  SubscribeOptions,
  Subscription,
} from './types.js';

/** Header carrying a request's absolute deadline in Unix milliseconds. */
export const DEADLINE_HEADER = 'lattice-deadline';

/** Default time a request waits for its reply. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

/** Default number of messages that may wait for one subscriber. */
export const DEFAULT_MAX_PENDING = 65_536;

const tracer = trace.getTracer('@lattice/bus');

/** A handle an implementation returns from `_subscribe`. */
export interface Unsubscribe {
  (): void;
}

// Services publish on a handful of subjects over and over: remember the ones already checked
// (bounded: reply inboxes are many and used once).
const validSubjects = new Set<string>();
const MAX_VALID_SUBJECTS = 1_024;

/** Checks a subject to publish on: tokens of visible characters, no wildcards. */
export function assertPublishSubject(subject: string): void {
  if (validSubjects.has(subject)) return;
  if (!/^[^\s.*>]+(\.[^\s.*>]+)*$/.test(subject)) {
    throw busError(
      'BUS_INVALID_SUBJECT',
      `not a valid subject to publish on: ${JSON.stringify(subject)}`,
      {
        subject,
      },
    );
  }
  if (validSubjects.size >= MAX_VALID_SUBJECTS) validSubjects.clear();
  validSubjects.add(subject);
}

/** Checks a subject to subscribe to: like a publish subject, with `*` tokens and a final `>`. */
export function assertSubscribeSubject(subject: string): void {
  const tokens = subject.split('.');
  const ok = tokens.every(
    (t, i) => t === '*' || (t === '>' && i === tokens.length - 1) || /^[^\s.*>]+$/.test(t),
  );
  if (!ok) {
    throw busError(
      'BUS_INVALID_SUBJECT',
      `not a valid subject to subscribe to: ${JSON.stringify(subject)}`,
      {
        subject,
      },
    );
  }
}

class BoundedSubscription implements Subscription {
  readonly subject: string;
  readonly queue: string | undefined;
  readonly #channel: Channel<BusMessage>;
  readonly #onSlow: (s: BoundedSubscription) => void;
  #dropped = 0;
  #overflowing = false;
  unsubscribeImpl: Unsubscribe = () => undefined;
  readonly #onClose: (s: BoundedSubscription) => void;

  constructor(
    subject: string,
    queue: string | undefined,
    maxPending: number,
    onSlow: (s: BoundedSubscription) => void,
    onClose: (s: BoundedSubscription) => void,
  ) {
    this.subject = subject;
    this.queue = queue;
    this.#channel = new Channel(maxPending);
    this.#onSlow = onSlow;
    this.#onClose = onClose;
  }

  get dropped(): number {
    return this.#dropped;
  }

  get pending(): number {
    return this.#channel.size;
  }

  get isClosed(): boolean {
    return this.#channel.isClosed;
  }

  deliver(message: BusMessage): void {
    if (this.#channel.push(message)) {
      this.#overflowing = false;
      return;
    }
    if (this.#channel.isClosed) return;
    this.#dropped++;
    if (!this.#overflowing) {
      this.#overflowing = true; // report once per episode, not once per dropped message
      this.#onSlow(this);
    }
  }

  unsubscribe(): void {
    if (this.#channel.isClosed) return;
    this.unsubscribeImpl();
    this.#channel.close();
    this.#onClose(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<BusMessage> {
    const inner = this.#channel[Symbol.asyncIterator]();
    return {
      next: () => inner.next(),
      return: () => {
        this.unsubscribe();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/** The public half of a bus; see the module comment. */
export abstract class BaseBus implements Bus {
  abstract readonly kind: string;
  readonly #subscriptions = new Set<BoundedSubscription>();
  readonly #statusListeners = new Set<Channel<BusStatus>>();
  #closed = false;
  #draining = false;

  get isClosed(): boolean {
    return this.#closed;
  }

  protected abstract _publish(
    subject: string,
    data: Uint8Array,
    headers: BusHeaders,
    reply: string | undefined,
  ): void;
  protected abstract _subscribe(
    subject: string,
    queue: string | undefined,
    deliver: (message: BusMessage) => void,
  ): Unsubscribe;
  protected abstract _request(
    subject: string,
    data: Uint8Array,
    headers: BusHeaders,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<BusMessage>;
  protected abstract _flush(): Promise<void>;
  protected abstract _close(): Promise<void>;

  #assertOpen(): void {
    if (this.#closed || this.#draining)
      throw busError('BUS_CLOSED', `the ${this.kind} bus is closed`);
  }

  publish(subject: string, data: Uint8Array, options: PublishOptions = {}): void {
    this.#assertOpen();
    assertPublishSubject(subject);
    const headers: Record<string, string> =
      options.headers === undefined ? {} : { ...options.headers };
    injectTraceContext(headers);
    this._publish(subject, data, headers, options.reply);
  }

  subscribe(subject: string, options: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    assertSubscribeSubject(subject);
    if (options.queue !== undefined && !/^[^\s.*>]+$/.test(options.queue)) {
      throw busError(
        'BUS_INVALID_SUBJECT',
        `not a valid queue group: ${JSON.stringify(options.queue)}`,
      );
    }
    const subscription = new BoundedSubscription(
      subject,
      options.queue,
      options.maxPending ?? DEFAULT_MAX_PENDING,
      (s) =>
        this.emitStatus({
          type: 'slow_consumer',
          subject: s.subject,
          pending: s.pending,
          dropped: s.dropped,
        }),
      (s) => this.#subscriptions.delete(s),
    );
    subscription.unsubscribeImpl = this._subscribe(subject, options.queue, (m) =>
      subscription.deliver(m),
    );
    this.#subscriptions.add(subscription);
    return subscription;
  }

  async request(
    subject: string,
    data: Uint8Array,
    options: RequestOptions = {},
  ): Promise<BusMessage> {
    this.#assertOpen();
    assertPublishSubject(subject);
    const now = Date.now();
    const deadline = Math.min(
      now + (options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS),
      options.deadline ?? Number.POSITIVE_INFINITY,
    );
    if (options.signal?.aborted === true)
      throw busError('BUS_CANCELLED', `request to ${subject} was aborted`);
    if (deadline <= now)
      throw busError('BUS_TIMEOUT', `deadline of request to ${subject} already passed`, {
        subject,
      });
    const span = tracer.startSpan(`request ${subjectOperation(subject)}`, {
      kind: SpanKind.CLIENT,
      attributes: { 'messaging.system': this.kind, 'messaging.destination.name': subject },
    });
    try {
      const headers: Record<string, string> = {
        ...options.headers,
        [DEADLINE_HEADER]: String(deadline),
      };
      injectTraceContext(headers, trace.setSpan(context.active(), span));
      const reply = await this._request(subject, data, headers, deadline - now, options.signal);
      if (reply.headers[ERROR_HEADER] !== undefined) throw decodeError(reply.data);
      return reply;
    } catch (error) {
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: hasCode(error) ? error.code : String(error),
      });
      throw error;
    } finally {
      span.end();
    }
  }

  respond(
    request: BusMessage,
    data: Uint8Array,
    options: { readonly headers?: BusHeaders } = {},
  ): void {
    if (request.reply === undefined || this.#closed) return;
    this._publish(request.reply, data, options.headers ?? {}, undefined);
  }

  respondError(request: BusMessage, error: unknown, service: string): void {
    if (request.reply === undefined || this.#closed) return;
    this._publish(request.reply, encodeError(error, service), { [ERROR_HEADER]: '1' }, undefined);
  }

  async flush(): Promise<void> {
    if (this.#closed) throw busError('BUS_CLOSED', `the ${this.kind} bus is closed`);
    await this._flush();
  }

  status(): AsyncIterable<BusStatus> {
    const channel = new Channel<BusStatus>(1024);
    this.#statusListeners.add(channel);
    return {
      [Symbol.asyncIterator]: () => {
        const inner = channel[Symbol.asyncIterator]();
        return {
          next: () => inner.next(),
          return: () => {
            this.#statusListeners.delete(channel);
            channel.close();
            return Promise.resolve({ value: undefined, done: true });
          },
        };
      },
    };
  }

  /** Reports a status event to every status iterator (implementations call this). */
  protected emitStatus(status: BusStatus): void {
    for (const listener of this.#statusListeners) listener.push(status);
  }

  async drain(): Promise<void> {
    if (this.#closed || this.#draining) return;
    this.#draining = true;
    for (const s of [...this.#subscriptions]) s.unsubscribe();
    await this._flush().catch(() => undefined); // draining a broken connection still closes it
    await this.close();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of [...this.#subscriptions]) s.unsubscribe();
    await this._close();
    this.emitStatus({ type: 'closed' });
    for (const listener of this.#statusListeners) listener.close();
    this.#statusListeners.clear();
  }
}

/** The low-cardinality part of a subject for span names: `lattice.ns.store.req.get` → `store.req.get`. */
export function subjectOperation(subject: string): string {
  const tokens = subject.split('.');
  return tokens[0] === 'lattice' && tokens.length > 2 ? tokens.slice(2).join('.') : subject;
}
