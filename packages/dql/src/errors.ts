/**
 * Error codes of the DQL package.
 *
 * @remarks
 * Every failure caused by a statement, its arguments or the data it reads is a `LatticeError`
 * with one of these codes and string details (`line`, `column`, `expected`, `found`, …). Callers
 * branch on the code with `hasCode`, never on the message. Programmer mistakes (calling an API
 * with a value of the wrong type) throw `TypeError`/`RangeError` instead.
 */
import { errorFactory } from '@lattice/errors';
import type { ErrorDetails, LatticeError } from '@lattice/errors';

/** The codes this package throws, with the class of failure each maps to. */
export const DqlErrorCode = {
  /** The text is not a DQL statement; details: line, column, offset, expected, found. */
  DQL_SYNTAX: 'INVALID_ARGUMENT',
  /** Input length, token count, nesting depth or value depth exceeded; details: limit, max, actual. */
  DQL_LIMIT: 'RESOURCE_EXHAUSTED',
  /** A `:name` parameter has no argument; details: name. */
  DQL_UNKNOWN_PARAMETER: 'INVALID_ARGUMENT',
  /** An argument has the wrong shape for where it is used (e.g. `LIMIT :n` not an integer). */
  DQL_INVALID_PARAMETER: 'INVALID_ARGUMENT',
  /** A function name that does not exist, or the wrong number of arguments; details: name. */
  DQL_UNKNOWN_FUNCTION: 'INVALID_ARGUMENT',
  /** A well-formed statement that makes no sense (aggregate in WHERE, `*` with GROUP BY, …). */
  DQL_INVALID_QUERY: 'INVALID_ARGUMENT',
  /** A statement used as a subscription that cannot be one; details: reason. */
  DQL_INVALID_SUBSCRIPTION: 'INVALID_ARGUMENT',
  /** `SET _id`, `UNSET _id` or `APPLY` on `_id`: the id of a document never changes. */
  DQL_IMMUTABLE_ID: 'INVALID_ARGUMENT',
  /** An UPDATE that cannot be applied: array element assignment, overlapping paths. */
  DQL_INVALID_UPDATE: 'INVALID_ARGUMENT',
  /** An INSERT document that is not an object, or whose `_id` is not a string, number or object. */
  DQL_INVALID_DOCUMENT: 'INVALID_ARGUMENT',
  /** A `regexp_like` pattern that does not compile or is refused as too costly. */
  DQL_INVALID_REGEX: 'INVALID_ARGUMENT',
  /** A permission condition that tests more than `_id`, or a permission beyond its limits. */
  DQL_INVALID_PERMISSION: 'INVALID_ARGUMENT',
  /** Something the language reserves but this engine does not do (JOIN, UNION, …). */
  DQL_UNSUPPORTED: 'UNIMPLEMENTED',
} as const;

/** One of the DQL error codes. */
export type DqlErrorCode = keyof typeof DqlErrorCode;

const make = errorFactory(DqlErrorCode);

/** Builds a DQL `LatticeError` with the given code, message and details. */
export function dqlError(
  code: DqlErrorCode,
  message: string,
  details?: ErrorDetails,
  cause?: unknown,
): LatticeError {
  return make(code, message, details, cause);
}

/** A position in the statement text (1-based line and column, 0-based offset). */
export interface SourcePosition {
  readonly offset: number;
  readonly line: number;
  readonly column: number;
}

/** Details of an error at a position: line, column and offset as strings. */
export function positionDetails(pos: SourcePosition): Record<string, string> {
  return { line: String(pos.line), column: String(pos.column), offset: String(pos.offset) };
}
