/**
 * Error codes of `@lattice/merge`.
 *
 * @remarks Stable within a major version; callers branch on them with `hasCode`.
 */
import { errorFactory, ErrorKind } from '@lattice/errors';

/** Every error code this package throws, with its kind. */
export const MergeErrorCode = {
  /** A statement kept conflicting with concurrent writes after every retry. */
  MERGE_CONFLICT_RETRIES: ErrorKind.ABORTED,
  /** A sync message could not be decoded, or arrived out of protocol order. */
  MERGE_PROTOCOL: ErrorKind.INVALID_ARGUMENT,
  /** Data from a remote peer outside what it may write (its permissions); refused and counted. */
  MERGE_PERMISSION_DENIED: ErrorKind.PERMISSION_DENIED,
  /** The remote speaks a protocol version this peer does not. */
  MERGE_PROTOCOL_VERSION: ErrorKind.FAILED_PRECONDITION,
  /** A session to that peer already runs, or the remote is this peer. */
  MERGE_SESSION_EXISTS: ErrorKind.ALREADY_EXISTS,
  /** The remote started a new sync session on the same channel (it restarted its side). */
  MERGE_REMOTE_RESTARTED: ErrorKind.ABORTED,
  /** The sync channel closed. */
  MERGE_CHANNEL_CLOSED: ErrorKind.UNAVAILABLE,
  /** The engine is closed. */
  MERGE_CLOSED: ErrorKind.UNAVAILABLE,
  /** A write to a read-only system collection, or a system collection that does not exist. */
  MERGE_SYSTEM_COLLECTION: ErrorKind.INVALID_ARGUMENT,
  /** Too many subscriptions, or a subscription too large. */
  MERGE_LIMIT: ErrorKind.RESOURCE_EXHAUSTED,
} as const;

/** One error code of this package. */
export type MergeErrorCode = keyof typeof MergeErrorCode;

/** Creates a `LatticeError` with one of this package's codes. */
export const mergeError = errorFactory(MergeErrorCode);
