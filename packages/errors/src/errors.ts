/**
 * The error every Lattice package throws for failures that are not programmer mistakes.
 *
 * @remarks
 * A `LatticeError` carries a stable, namespaced UPPER_SNAKE `code` (`STORE_NOT_OPEN`,
 * `DQL_SYNTAX`) that never changes meaning within a major version, a `kind` that says which class
 * of failure it is (and so which gRPC/HTTP status it maps to), structured read-only `details`, and
 * a `cause`. Callers branch on `code` with {@link hasCode}, never on `instanceof` across packages
 * (two copies of this package may be loaded) and never on the message text.
 * Programmer mistakes (wrong argument types, impossible states) throw `TypeError`/`RangeError`.
 */

/** Classes of failure; each maps to one gRPC and one HTTP status in {@link STATUS_BY_KIND}. */
export const ErrorKind = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  NOT_FOUND: 'NOT_FOUND',
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  FAILED_PRECONDITION: 'FAILED_PRECONDITION',
  ABORTED: 'ABORTED',
  OUT_OF_RANGE: 'OUT_OF_RANGE',
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  CANCELLED: 'CANCELLED',
  UNAVAILABLE: 'UNAVAILABLE',
  UNIMPLEMENTED: 'UNIMPLEMENTED',
  DATA_LOSS: 'DATA_LOSS',
  INTERNAL: 'INTERNAL',
} as const;

/** One class of failure. */
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

/** Structured fields of an error: strings only, so they cross every boundary unchanged. */
export type ErrorDetails = Readonly<Record<string, string>>;

/** Options of a {@link LatticeError}. */
export interface LatticeErrorOptions {
  readonly kind?: ErrorKind;
  readonly details?: ErrorDetails;
  readonly cause?: unknown;
  /** Which service produced the error, when it crossed a boundary. */
  readonly service?: string;
}

/** A failure with a stable code. */
export class LatticeError extends Error {
  override readonly name: string = 'LatticeError';
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: ErrorDetails;
  readonly service: string | undefined;

  constructor(code: string, message: string, options: LatticeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (!isErrorCode(code)) {
      throw new RangeError(
        `error code must be namespaced UPPER_SNAKE (e.g. STORE_NOT_OPEN), got ${code}`,
      );
    }
    this.code = code;
    this.kind = options.kind ?? ErrorKind.INTERNAL;
    this.details = Object.freeze({ ...(options.details ?? {}) });
    this.service = options.service;
  }

  /** A plain object for logs and JSON APIs. */
  toJSON(): {
    code: string;
    kind: ErrorKind;
    message: string;
    details: ErrorDetails;
    service?: string;
  } {
    return {
      code: this.code,
      kind: this.kind,
      message: this.message,
      details: this.details,
      ...(this.service === undefined ? {} : { service: this.service }),
    };
  }
}

const CODE_PATTERN = /^[A-Z][A-Z0-9]*_[A-Z0-9_]+$/;

/** Whether `code` is a valid error code: namespaced UPPER_SNAKE (`STORE_NOT_OPEN`). */
export function isErrorCode(code: string): boolean {
  return CODE_PATTERN.test(code);
}

/** The shape of a {@link LatticeError} as other copies of this package see it. */
export interface CodedError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: ErrorDetails;
}

/**
 * Whether `error` is a Lattice error, optionally with one of the given codes.
 * @remarks Checks the shape, not `instanceof`, so it works across package copies and processes.
 */
export function hasCode(error: unknown, ...codes: readonly string[]): error is CodedError {
  if (typeof error !== 'object' || error === null) return false;
  const { code, kind } = error as { code?: unknown; kind?: unknown };
  if (typeof code !== 'string' || typeof kind !== 'string' || !(kind in ErrorKind)) return false;
  return codes.length === 0 || codes.includes(code);
}

/**
 * Declares a package's error codes with their kinds and returns a factory for them.
 *
 * @example
 * ```ts
 * export const DqlErrorCode = { DQL_SYNTAX: 'INVALID_ARGUMENT', DQL_LIMIT: 'RESOURCE_EXHAUSTED' } as const;
 * export const dqlError = errorFactory(DqlErrorCode);
 * throw dqlError('DQL_SYNTAX', 'expected FROM', { line: '1', column: '8' });
 * ```
 */
export function errorFactory<const T extends Readonly<Record<string, ErrorKind>>>(
  codes: T,
): (
  code: keyof T & string,
  message: string,
  details?: ErrorDetails,
  cause?: unknown,
) => LatticeError {
  return (code, message, details, cause) =>
    new LatticeError(code, message, {
      kind: codes[code] ?? ErrorKind.INTERNAL,
      ...(details === undefined ? {} : { details }),
      ...(cause === undefined ? {} : { cause }),
    });
}

/** gRPC status codes (grpc/status.proto), by name. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** The one table from error kind to gRPC and HTTP status. */
export const STATUS_BY_KIND: Readonly<
  Record<ErrorKind, { readonly grpc: number; readonly http: number }>
> = {
  INVALID_ARGUMENT: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400 },
  NOT_FOUND: { grpc: GrpcStatus.NOT_FOUND, http: 404 },
  ALREADY_EXISTS: { grpc: GrpcStatus.ALREADY_EXISTS, http: 409 },
  FAILED_PRECONDITION: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 412 },
  ABORTED: { grpc: GrpcStatus.ABORTED, http: 409 },
  OUT_OF_RANGE: { grpc: GrpcStatus.OUT_OF_RANGE, http: 400 },
  RESOURCE_EXHAUSTED: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 413 },
  PERMISSION_DENIED: { grpc: GrpcStatus.PERMISSION_DENIED, http: 403 },
  UNAUTHENTICATED: { grpc: GrpcStatus.UNAUTHENTICATED, http: 401 },
  DEADLINE_EXCEEDED: { grpc: GrpcStatus.DEADLINE_EXCEEDED, http: 504 },
  CANCELLED: { grpc: GrpcStatus.CANCELLED, http: 499 },
  UNAVAILABLE: { grpc: GrpcStatus.UNAVAILABLE, http: 503 },
  UNIMPLEMENTED: { grpc: GrpcStatus.UNIMPLEMENTED, http: 501 },
  DATA_LOSS: { grpc: GrpcStatus.DATA_LOSS, http: 500 },
  INTERNAL: { grpc: GrpcStatus.INTERNAL, http: 500 },
};

/** The gRPC and HTTP status for any thrown value (non-Lattice errors are INTERNAL). */
export function statusOf(error: unknown): { readonly grpc: number; readonly http: number } {
  return STATUS_BY_KIND[hasCode(error) ? error.kind : ErrorKind.INTERNAL];
}
