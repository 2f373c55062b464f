/**
 * Errors of the LAN transport, each with a stable code.
 *
 * @remarks Callers branch on `code` (`hasCode(error, 'LAN_CONNECTION_LIMIT')`). The codes also
 * travel as the `reasonCode` of a link going down and in the REFUSE / BYE records of the wire
 * format (see `lan-codec.ts`), so the remote side learns why.
 */
import { errorFactory, ErrorKind } from '@lattice/errors';
import type { LatticeError } from '@lattice/errors';

/** Error codes of the LAN transport and their kinds. */
export const LanErrorCode = {
  /** The remote side already has as many connections as it accepts. */
  LAN_CONNECTION_LIMIT: ErrorKind.RESOURCE_EXHAUSTED,
  /** A record's length prefix exceeds the decoder's limit (the connection is dropped). */
  LAN_FRAME_TOO_LARGE: ErrorKind.INVALID_ARGUMENT,
  /** Bytes that are not our framing: unknown record type, bad magic, malformed HELLO. */
  LAN_FRAME_MALFORMED: ErrorKind.INVALID_ARGUMENT,
  /** The remote side speaks another link-protocol version. */
  LAN_VERSION_MISMATCH: ErrorKind.FAILED_PRECONDITION,
  /** Nothing arrived for the idle timeout (no data, no ping): the peer is gone. */
  LAN_IDLE_TIMEOUT: ErrorKind.DEADLINE_EXCEEDED,
  /** The HELLO exchange did not finish in time. */
  LAN_HELLO_TIMEOUT: ErrorKind.DEADLINE_EXCEEDED,
  /** Another connection to the same remote instance was kept (simultaneous dial). */
  LAN_DUPLICATE_LINK: ErrorKind.ALREADY_EXISTS,
  /** The connection reached ourselves (discovery sees its own announcement). */
  LAN_SELF_CONNECTION: ErrorKind.FAILED_PRECONDITION,
  /** The socket failed or the remote side closed it without a BYE. */
  LAN_CONNECTION_LOST: ErrorKind.UNAVAILABLE,
  /** The driver is closing. */
  LAN_CLOSED: ErrorKind.UNAVAILABLE,
  /** A peer address is not `tcp://host:port`. */
  LAN_BAD_ADDRESS: ErrorKind.INVALID_ARGUMENT,
  /** The listener could not bind, or the TLS files could not be read. */
  LAN_LISTEN_FAILED: ErrorKind.UNAVAILABLE,
} as const;

/** One LAN transport error code. */
export type LanErrorCode = keyof typeof LanErrorCode;

/** A LAN transport failure: a `LatticeError` with one of {@link LanErrorCode}. */
export type LanError = LatticeError;

/** Builds a LAN transport error. */
export const lanError = errorFactory(LanErrorCode);
