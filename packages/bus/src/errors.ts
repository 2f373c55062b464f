/**
 * Errors of the bus, and the codec that carries any Lattice error across it.
 *
 * @remarks
 * Wire format of an error reply: the header `lattice-error: 1` and a body that is a protobuf
 * `lattice.v1.Error` (code, message, details, service, kind). The caller rebuilds a
 * {@link LatticeError} with the same code, kind and details: no text is ever parsed.
 */
import { errorFactory, ErrorKind, hasCode, isErrorCode, LatticeError } from '@lattice/errors';
import { v1 } from '@lattice/proto';

/** Error codes of the bus and their kinds. */
export const BusErrorCode = {
  /** No reply before the deadline. */
  BUS_TIMEOUT: ErrorKind.DEADLINE_EXCEEDED,
  /** Nobody listens on the subject. */
  BUS_NO_RESPONDERS: ErrorKind.UNAVAILABLE,
  /** The bus was closed or is draining. */
  BUS_CLOSED: ErrorKind.UNAVAILABLE,
  /** The connection to the NATS server is down. */
  BUS_DISCONNECTED: ErrorKind.UNAVAILABLE,
  /** The caller aborted the request. */
  BUS_CANCELLED: ErrorKind.CANCELLED,
  /** A message is larger than the bus accepts. */
  BUS_PAYLOAD_TOO_LARGE: ErrorKind.RESOURCE_EXHAUSTED,
  /** A subject or queue name is not valid. */
  BUS_INVALID_SUBJECT: ErrorKind.INVALID_ARGUMENT,
  /** A reply could not be decoded. */
  BUS_BAD_REPLY: ErrorKind.INTERNAL,
  /** A handler failed with something that is not a Lattice error. */
  BUS_HANDLER_FAILED: ErrorKind.INTERNAL,
} as const;

/** One bus error code. */
export type BusErrorCode = keyof typeof BusErrorCode;

/** Creates a bus error. */
export const busError = errorFactory(BusErrorCode);

/** The header that marks a reply as an error. */
export const ERROR_HEADER = 'lattice-error';

/** Encodes any thrown value as a `lattice.v1.Error`; non-Lattice errors become BUS_HANDLER_FAILED. */
export function encodeError(error: unknown, service: string): Uint8Array {
  const coded = hasCode(error)
    ? error
    : busError('BUS_HANDLER_FAILED', error instanceof Error ? error.message : String(error));
  return v1.Error.encode({
    code: coded.code,
    message: coded.message,
    details: { ...coded.details },
    kind: coded.kind,
    service: (coded as { service?: string }).service ?? service,
  }).finish();
}

/** Rebuilds the error a remote handler threw; a body that does not decode is BUS_BAD_REPLY. */
export function decodeError(bytes: Uint8Array): LatticeError {
  let decoded: v1.Error;
  try {
    decoded = v1.Error.decode(bytes);
  } catch (cause) {
    return busError('BUS_BAD_REPLY', 'error reply is not a lattice.v1.Error', {}, cause);
  }
  const kind = decoded.kind in ErrorKind ? (decoded.kind as ErrorKind) : ErrorKind.INTERNAL;
  const code = isErrorCode(decoded.code) ? decoded.code : 'BUS_BAD_REPLY';
  return new LatticeError(code, decoded.message, {
    kind,
    details: decoded.details,
    ...(decoded.service === '' ? {} : { service: decoded.service }),
  });
}
