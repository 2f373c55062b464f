/**
 * Error codes of `@lattice/store`.
 *
 * @remarks
 * Codes are stable within a major version; callers branch on them with `hasCode` from
 * `@lattice/errors`. Programmer mistakes (a negative page size in library code) throw
 * `TypeError`/`RangeError` instead.
 */
import { errorFactory, ErrorKind } from '@lattice/errors';

/** Every error code this package throws, with its kind. */
export const StoreErrorCode = {
  /** The store is not open (closed, or opening failed). */
  STORE_NOT_OPEN: ErrorKind.UNAVAILABLE,
  /** The engine failed to read or write (disk full, I/O error, corruption). */
  STORE_IO: ErrorKind.INTERNAL,
  /** A commit stated the versions it read and one of them changed meanwhile. */
  STORE_CONFLICT: ErrorKind.ABORTED,
  /** A document, request or result is larger than the configured limit. */
  STORE_TOO_LARGE: ErrorKind.RESOURCE_EXHAUSTED,
  /** A request is malformed (bad protobuf, bad `_id` bytes, bad value encoding, bad name). */
  STORE_INVALID_ARGUMENT: ErrorKind.INVALID_ARGUMENT,
  /** The collection name is not a valid identifier, or the collection holds no such index. */
  STORE_UNKNOWN_COLLECTION: ErrorKind.NOT_FOUND,
  /** No index of that name exists in the collection. */
  STORE_UNKNOWN_INDEX: ErrorKind.NOT_FOUND,
  /** An index of that name already exists with a different path. */
  STORE_INDEX_EXISTS: ErrorKind.ALREADY_EXISTS,
  /** The index path cannot be indexed (empty, too deep, `_id`). */
  STORE_INVALID_INDEX: ErrorKind.INVALID_ARGUMENT,
  /** The change log no longer holds commits that old; read the collection instead. */
  STORE_LOG_TRUNCATED: ErrorKind.OUT_OF_RANGE,
  /** A query cursor expired or never existed. */
  STORE_CURSOR_EXPIRED: ErrorKind.NOT_FOUND,
  /** Too many open query cursors; finish or drop some. */
  STORE_TOO_MANY_CURSORS: ErrorKind.RESOURCE_EXHAUSTED,
  /** A statement that is not a query was sent to `query` (mutations go through merge). */
  STORE_NOT_A_QUERY: ErrorKind.INVALID_ARGUMENT,
  /**
   * The database was written in a store format this version cannot read (a newer one, or an
   * unreadable format marker); nothing was changed.
   */
  STORE_UNSUPPORTED_FORMAT: ErrorKind.FAILED_PRECONDITION,
} as const;

/** One error code of this package. */
export type StoreErrorCode = keyof typeof StoreErrorCode;

/** Creates a `LatticeError` with one of this package's codes. */
export const storeError = errorFactory(StoreErrorCode);
