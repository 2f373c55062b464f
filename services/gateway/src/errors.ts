/**
 * Error codes of `@lattice/gateway`.
 *
 * @remarks Stable within a major version; callers branch on them with `hasCode`. The kind of each
 * decides its gRPC and HTTP status through `STATUS_BY_KIND` in `@lattice/errors`.
 */
import { errorFactory, ErrorKind } from '@lattice/errors';

/** Every error code this package throws, with its kind. */
export const GatewayErrorCode = {
  /** No API key, or a key that is not configured. */
  GATEWAY_UNAUTHENTICATED: ErrorKind.UNAUTHENTICATED,
  /** A key past its expiry. */
  GATEWAY_TOKEN_EXPIRED: ErrorKind.UNAUTHENTICATED,
  /** A key removed or changed by a reload of the keys file while a stream or link used it. */
  GATEWAY_KEY_REVOKED: ErrorKind.UNAUTHENTICATED,
  /** A statement, observer or subscription outside the key's permissions; nothing was changed. */
  GATEWAY_PERMISSION_DENIED: ErrorKind.PERMISSION_DENIED,
  /** A bad keys file, permission condition or TLS setting. */
  GATEWAY_BAD_CONFIG: ErrorKind.INVALID_ARGUMENT,
  /** A request body above the configured limit. */
  GATEWAY_BODY_TOO_LARGE: ErrorKind.RESOURCE_EXHAUSTED,
  /** A request that is not well-formed (bad JSON, missing statement, bad value bytes). */
  GATEWAY_BAD_REQUEST: ErrorKind.INVALID_ARGUMENT,
  /** No such route. */
  GATEWAY_NOT_FOUND: ErrorKind.NOT_FOUND,
  /** Wrong HTTP method on a route. */
  GATEWAY_METHOD_NOT_ALLOWED: ErrorKind.FAILED_PRECONDITION,
  /** An observer's queue overflowed and the client asked to be cancelled rather than coalesced. */
  GATEWAY_OBSERVER_OVERFLOW: ErrorKind.RESOURCE_EXHAUSTED,
  /** Too many observers on this gateway. */
  GATEWAY_LIMIT: ErrorKind.RESOURCE_EXHAUSTED,
  /** The call's deadline passed before the peer answered. */
  GATEWAY_DEADLINE_EXCEEDED: ErrorKind.DEADLINE_EXCEEDED,
  /** The gateway has no peer to serve (started without one). */
  GATEWAY_NO_PEER: ErrorKind.UNAVAILABLE,
  /** The gateway is closing. */
  GATEWAY_CLOSED: ErrorKind.UNAVAILABLE,
  /** Playground mode (no API keys) on a listener that is not bound to loopback. */
  GATEWAY_INSECURE_CONFIG: ErrorKind.FAILED_PRECONDITION,
} as const;

/** One error code of this package. */
export type GatewayErrorCode = keyof typeof GatewayErrorCode;

/** Creates a `LatticeError` with one of this package's codes. */
export const gatewayError = errorFactory(GatewayErrorCode);
