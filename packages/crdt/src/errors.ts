/**
 * Error codes of `@lattice/crdt`.
 *
 * @remarks
 * Codes are stable within a major version; callers branch on them with `hasCode` from
 * `@lattice/errors`. Programmer mistakes (a non-increasing write time, a malformed path) throw
 * `TypeError`/`RangeError` instead.
 */
import { errorFactory, ErrorKind } from '@lattice/errors';

/** Every error code this package throws, with its kind. */
export const CrdtErrorCode = {
  /** Bytes are not a valid encoded document, delta or `_id` (or break a decoder limit). */
  CRDT_DECODE: ErrorKind.INVALID_ARGUMENT,
  /** A document would exceed the hard size limit (5 MiB); the write or merge was refused. */
  CRDT_DOC_TOO_LARGE: ErrorKind.RESOURCE_EXHAUSTED,
  /** A remote timestamp is further in the future than the clock's drift bound allows. */
  CRDT_CLOCK_DRIFT: ErrorKind.FAILED_PRECONDITION,
  /** `INSERT … ON ID CONFLICT FAIL` found a live document with the same `_id`. */
  CRDT_ID_CONFLICT: ErrorKind.ALREADY_EXISTS,
  /** An `_id` is not a string, finite number or object of such values. */
  CRDT_INVALID_ID: ErrorKind.INVALID_ARGUMENT,
  /** A value cannot be stored (non-finite number, undefined, too deep, wrong type for its field). */
  CRDT_INVALID_VALUE: ErrorKind.INVALID_ARGUMENT,
  /** An intent is malformed (`SET _id`, empty path, RESTART on a PN_COUNTER, …). */
  CRDT_INVALID_INTENT: ErrorKind.INVALID_ARGUMENT,
  /** A delta belongs to another document. */
  CRDT_DOC_MISMATCH: ErrorKind.INVALID_ARGUMENT,
} as const;

/** One error code of this package. */
export type CrdtErrorCode = keyof typeof CrdtErrorCode;

/** Creates a `LatticeError` with one of this package's codes. */
export const crdtError = errorFactory(CrdtErrorCode);
