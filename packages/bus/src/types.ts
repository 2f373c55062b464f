/** Headers of a bus message: lower-case names, string values. */
export type BusHeaders = Readonly<Record<string, string>>;

/** A message as a subscriber receives it. */
export interface BusMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: BusHeaders;
  /** Where a reply goes, for requests. */
  readonly reply: string | undefined;
}

/** Options of {@link Bus.publish}. */
export interface PublishOptions {
  readonly headers?: BusHeaders;
  readonly reply?: string;
}

/** Options of {@link Bus.subscribe}. */
export interface SubscribeOptions {
  /** Subscribers in one queue group share the messages: each goes to one of them. */
  readonly queue?: string;
  /**
   * How many messages may wait for this subscriber before new ones are dropped (default 65 536).
   * Drops are counted in {@link Subscription.dropped} and reported as a `slow_consumer` status.
   */
  readonly maxPending?: number;
}

/** Options of {@link Bus.request}. */
export interface RequestOptions {
  readonly headers?: BusHeaders;
  /** Give up after this many milliseconds (default 5 000). */
  readonly timeoutMs?: number;
  /** Give up at this absolute time (Unix ms); the earlier of this and `timeoutMs` wins. */
  readonly deadline?: number;
  readonly signal?: AbortSignal;
}

/** An active subscription: an async iterable of its messages. */
export interface Subscription extends AsyncIterable<BusMessage> {
  readonly subject: string;
  readonly queue: string | undefined;
  /** Messages dropped because the subscriber fell `maxPending` behind. */
  readonly dropped: number;
  /** Messages waiting to be read. */
  readonly pending: number;
  /** Stops the subscription; the iterator ends after the messages already queued. */
  unsubscribe(): void;
  readonly isClosed: boolean;
}

/** What happens to the bus's connection, as a discriminated union. */
export type BusStatus =
  | { readonly type: 'disconnected'; readonly server?: string }
  | { readonly type: 'reconnecting' }
  | { readonly type: 'reconnected'; readonly server?: string }
  | {
      readonly type: 'slow_consumer';
      readonly subject: string;
      readonly pending: number;
      readonly dropped: number;
    }
  | { readonly type: 'error'; readonly error: Error }
  | { readonly type: 'closed' };

/**
 * Publish/subscribe and request/reply between the services of a peer.
 *
 * @remarks
 * Two implementations with the same semantics, proven by one contract suite
 * (`runBusContractTests` from `@lattice/bus/testing`): `NatsBus` over a real NATS server and
 * `LocalBus` in process. Subjects are NATS subjects (tokens separated by `.`, wildcards `*` and `>`
 * when subscribing); build them with `Subjects` from `@lattice/proto`, never by concatenation.
 */
export interface Bus {
  /** A name for logs: `nats` or `local`. */
  readonly kind: string;
  publish(subject: string, data: Uint8Array, options?: PublishOptions): void;
  subscribe(subject: string, options?: SubscribeOptions): Subscription;
  /**
   * Sends a request and waits for one reply. A reply that carries an error is thrown as the
   * rebuilt `LatticeError`; no reply in time is `BUS_TIMEOUT`; nobody listening is
   * `BUS_NO_RESPONDERS`; an aborted signal is `BUS_CANCELLED`.
   */
  request(subject: string, data: Uint8Array, options?: RequestOptions): Promise<BusMessage>;
  /** Replies to a request message (no-op when it has no reply subject). */
  respond(request: BusMessage, data: Uint8Array, options?: { readonly headers?: BusHeaders }): void;
  /** Replies to a request with an error, encoded so the caller rebuilds it. */
  respondError(request: BusMessage, error: unknown, service: string): void;
  /** Resolves when everything published so far has reached the server (or local subscribers). */
  flush(): Promise<void>;
  /** Connection events. Each call returns a new iterator that sees events from then on. */
  status(): AsyncIterable<BusStatus>;
  /** Closes every subscription after its queued messages, then closes the bus. */
  drain(): Promise<void>;
  /** Closes the bus now; pending requests fail with `BUS_CLOSED`. */
  close(): Promise<void>;
  readonly isClosed: boolean;
}
