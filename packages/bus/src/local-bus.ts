/**
 * An in-process bus with NATS semantics, for `lattice up` (the embedded default) and unit tests.
 *
 * @remarks
 * Matches NATS where it matters to callers: `*` matches one token and `>` one or more; each queue
 * group gets one copy of a message (round robin); a request with no subscriber fails at once with
 * BUS_NO_RESPONDERS; payloads are copied, so a publisher may reuse its buffer; payloads above
 * `maxPayload` (1 MiB by default, as nats-server) are refused with BUS_PAYLOAD_TOO_LARGE.
 * Delivery to each subscriber keeps publish order.
 */
import { BaseBus, type Unsubscribe } from './base-bus.js';
import { busError } from './errors.js';
import type { BusHeaders, BusMessage } from './types.js';

/** Options of {@link LocalBus}. */
export interface LocalBusOptions {
  /** Largest payload accepted, in bytes (default 1 MiB, as nats-server). */
  readonly maxPayload?: number;
}

interface Entry {
  readonly tokens: readonly string[];
  readonly queue: string | undefined;
  readonly deliver: (message: BusMessage) => void;
}

/** See the module comment. */
export class LocalBus extends BaseBus {
  readonly kind = 'local';
  readonly #entries = new Set<Entry>();
  readonly #roundRobin = new Map<string, number>();
  readonly #maxPayload: number;
  #inboxSeq = 0;
  readonly #pendingRequests = new Set<(error: Error) => void>();

  constructor(options: LocalBusOptions = {}) {
    super();
    this.#maxPayload = options.maxPayload ?? 1024 * 1024;
  }

  protected _publish(
    subject: string,
    data: Uint8Array,
    headers: BusHeaders,
    reply: string | undefined,
  ): void {
    this.#route(subject, data, headers, reply);
  }

  /** Delivers a message; returns how many subscribers got it. */
  #route(
    subject: string,
    data: Uint8Array,
    headers: BusHeaders,
    reply: string | undefined,
  ): number {
    if (data.byteLength > this.#maxPayload) {
      throw busError(
        'BUS_PAYLOAD_TOO_LARGE',
        `payload of ${data.byteLength} bytes exceeds ${this.#maxPayload}`,
        {
          subject,
          bytes: String(data.byteLength),
        },
      );
    }
    const tokens = subject.split('.');
    const groups = new Map<string, Entry[]>();
    const direct: Entry[] = [];
    for (const entry of this.#entries) {
      if (!matches(entry.tokens, tokens)) continue;
      if (entry.queue === undefined) direct.push(entry);
      else {
        const key = `${entry.tokens.join('.')}\u0000${entry.queue}`;
        const group = groups.get(key);
        if (group === undefined) groups.set(key, [entry]);
        else group.push(entry);
      }
    }
    const chosen = direct;
    for (const [key, group] of groups) {
      const next = this.#roundRobin.get(key) ?? 0;
      chosen.push(group[next % group.length] as Entry);
      this.#roundRobin.set(key, next + 1);
    }
    for (const entry of chosen) {
      entry.deliver({ subject, data: data.slice(), headers: { ...headers }, reply });
    }
    return chosen.length;
  }

  protected _subscribe(
    subject: string,
    queue: string | undefined,
    deliver: (m: BusMessage) => void,
  ): Unsubscribe {
    const entry: Entry = { tokens: subject.split('.'), queue, deliver };
    this.#entries.add(entry);
    return () => {
      this.#entries.delete(entry);
    };
  }

  protected _request(
    subject: string,
    data: Uint8Array,
    headers: BusHeaders,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<BusMessage> {
    const inbox = `_INBOX.local.${++this.#inboxSeq}`;
    return new Promise<BusMessage>((resolve, reject) => {
      const entry: Entry = {
        tokens: inbox.split('.'),
        queue: undefined,
        deliver: (message) => {
          finish();
          resolve(message);
        },
      };
      const fail = (error: Error): void => {
        finish();
        reject(error);
      };
      const onAbort = (): void =>
        fail(busError('BUS_CANCELLED', `request to ${subject} was aborted`, { subject }));
      const timer = setTimeout(
        () =>
          fail(
            busError('BUS_TIMEOUT', `no reply from ${subject} within ${timeoutMs} ms`, { subject }),
          ),
        timeoutMs,
      );
      const finish = (): void => {
        clearTimeout(timer);
        this.#entries.delete(entry);
        this.#pendingRequests.delete(fail);
        signal?.removeEventListener('abort', onAbort);
      };
      this.#entries.add(entry);
      this.#pendingRequests.add(fail);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        if (this.#route(subject, data, headers, inbox) === 0) {
          fail(busError('BUS_NO_RESPONDERS', `no responders on ${subject}`, { subject }));
        }
      } catch (error) {
        fail(error as Error);
      }
    });
  }

  protected async _flush(): Promise<void> {
    // Delivery is synchronous into each subscriber's queue; nothing is in flight.
  }

  protected async _close(): Promise<void> {
    for (const fail of [...this.#pendingRequests])
      fail(busError('BUS_CLOSED', 'the local bus was closed'));
    this.#entries.clear();
  }
}

/** NATS subject matching: `*` is one token, a final `>` is one or more. */
function matches(pattern: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '>') return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== '*' && p !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}
