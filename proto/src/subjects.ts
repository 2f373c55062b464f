/**
 * Every NATS subject Lattice uses is built here, and only here.
 *
 * @remarks
 * Layout: `lattice.<namespace>.<service>.<kind>.<name>[.<token>…]`, where `kind` is `req`
 * (request/reply), `evt` (events) or `link` (frames). Every subject starts with the peer's
 * namespace so that many peers share one NATS server or cluster without seeing each other's
 * traffic (tests give each peer its own namespace). Tokens are validated: a dot, a space or a
 * wildcard inside a token would silently change which subscribers match.
 */

/** A peer's namespace: one NATS subject token. */
export type Namespace = string & { readonly __namespace: true };

/** The services of one peer, as they appear in subjects. */
export const SERVICE_NAMES = [
  'store',
  'merge',
  'multiplexer',
  'transport-ble',
  'transport-lan',
  'transport-usb',
  'gateway',
] as const;

/** The name of one service of a peer. */
export type ServiceName = (typeof SERVICE_NAMES)[number];

const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Checks that `value` can stand as one subject token.
 * @throws RangeError when it contains anything but letters, digits, `_` and `-`, or is empty.
 */
export function assertToken(value: string, what: string): void {
  if (!TOKEN.test(value)) {
    throw new RangeError(
      `${what} must be 1-128 characters of [A-Za-z0-9_-] to be a subject token, got ${JSON.stringify(value)}`,
    );
  }
}

/** Validates and brands a namespace. */
export function namespace(value: string): Namespace {
  assertToken(value, 'namespace');
  return value as Namespace;
}

/** Subjects of one peer's namespace. */
export class Subjects {
  readonly namespace: Namespace;
  readonly #prefix: string;

  constructor(ns: Namespace | string) {
    this.namespace = typeof ns === 'string' ? namespace(ns) : ns;
    this.#prefix = `lattice.${this.namespace}`;
  }

  /** Health requests for one service; every instance answers (no queue group). */
  health(service: ServiceName): string {
    return `${this.#prefix}.${service}.req.health`;
  }

  /** A request subject of a service: `op` is one token such as `get` or `commit`. */
  request(service: ServiceName, op: string): string {
    assertToken(op, 'operation');
    return `${this.#prefix}.${service}.req.${op}`;
  }

  /** An event subject of a service: `name` is one token such as `committed`. */
  event(service: ServiceName, name: string): string {
    assertToken(name, 'event name');
    return `${this.#prefix}.${service}.evt.${name}`;
  }

  /** All events of a service (a wildcard, for subscribing). */
  allEvents(service: ServiceName): string {
    return `${this.#prefix}.${service}.evt.>`;
  }

  /** Link lifecycle events of a transport (`up`, `down`). */
  linkEvent(transport: ServiceName, name: 'up' | 'down'): string {
    return `${this.#prefix}.${transport}.evt.link-${name}`;
  }

  /** Frames a transport received on a link, for the multiplexer. */
  framesIn(transport: ServiceName, linkId: string): string {
    assertToken(linkId, 'link id');
    return `${this.#prefix}.${transport}.link.${linkId}.in`;
  }

  /** Every link's inbound frames of a transport (a wildcard, for subscribing). */
  allFramesIn(transport: ServiceName): string {
    return `${this.#prefix}.${transport}.link.*.in`;
  }

  /** Frames the multiplexer wants a transport to send on a link. */
  framesOut(transport: ServiceName, linkId: string): string {
    assertToken(linkId, 'link id');
    return `${this.#prefix}.${transport}.link.${linkId}.out`;
  }

  /** Every link's outbound frames of a transport (a wildcard, for subscribing). */
  allFramesOut(transport: ServiceName): string {
    return `${this.#prefix}.${transport}.link.*.out`;
  }

  /** Everything in this namespace (a wildcard, for tests and tracing tools). */
  all(): string {
    return `${this.#prefix}.>`;
  }
}
