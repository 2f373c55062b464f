/**
 * Errors of the multiplexer, each with a stable code.
 *
 * @remarks Callers branch on `code` with `hasCode(error, 'MUX_PEER_UNREACHABLE')`.
 */
import { errorFactory, ErrorKind } from '@lattice/errors';
import type { LatticeError } from '@lattice/errors';

/** Error codes of the multiplexer and their kinds. */
export const MuxErrorCode = {
  /** A frame is larger than the link carries or the decoder accepts. */
  MUX_FRAME_TOO_LARGE: ErrorKind.INVALID_ARGUMENT,
  /** A frame could not be decoded (bad version, truncated, bad checksum, unknown type). */
  MUX_FRAME_MALFORMED: ErrorKind.INVALID_ARGUMENT,
  /** A message exceeds the peer's or our maximum message size. */
  MUX_MESSAGE_TOO_LARGE: ErrorKind.RESOURCE_EXHAUSTED,
  /** No authenticated link reaches the peer. */
  MUX_PEER_UNREACHABLE: ErrorKind.UNAVAILABLE,
  /** A link turned out to reach ourselves. */
  MUX_SELF_LINK: ErrorKind.FAILED_PRECONDITION,
  /** The remote side speaks a protocol version we do not. */
  MUX_VERSION_MISMATCH: ErrorKind.FAILED_PRECONDITION,
  /** The remote side failed to prove its identity. */
  MUX_AUTH_FAILED: ErrorKind.UNAUTHENTICATED,
  /** The remote proved no membership of this peer's mesh (no mesh key, or another one). */
  MUX_NOT_IN_MESH: ErrorKind.PERMISSION_DENIED,
  /** The remote showed an identity certificate that does not hold (signature, issuer, peer, expiry). */
  MUX_CERTIFICATE_INVALID: ErrorKind.PERMISSION_DENIED,
  /** The peer is on a revocation list of a trusted authority: refused, its links closed. */
  MUX_PEER_REVOKED: ErrorKind.PERMISSION_DENIED,
  /** The certificate that admitted a peer expired: its links were closed. */
  MUX_CERTIFICATE_EXPIRED: ErrorKind.PERMISSION_DENIED,
  /** The multiplexer already has as many peers as it accepts. */
  MUX_TOO_MANY_PEERS: ErrorKind.RESOURCE_EXHAUSTED,
  /** A second link of a connected peer that claims other permissions than its first link. */
  MUX_PERMISSIONS_MISMATCH: ErrorKind.PERMISSION_DENIED,
  /** The handshake did not finish before its deadline. */
  MUX_HANDSHAKE_TIMEOUT: ErrorKind.DEADLINE_EXCEEDED,
  /** A wait was aborted by its signal. */
  MUX_CANCELLED: ErrorKind.CANCELLED,
  /** The multiplexer or peer session is closed. */
  MUX_CLOSED: ErrorKind.UNAVAILABLE,
  /** An unknown link id was used. */
  MUX_UNKNOWN_LINK: ErrorKind.NOT_FOUND,
  /** A link closed because the peer on it started over on another link. */
  MUX_SESSION_RESET: ErrorKind.UNAVAILABLE,
  /** A transport stopped answering: its links are gone. */
  MUX_TRANSPORT_GONE: ErrorKind.UNAVAILABLE,
  /** A transport no longer lists a link. */
  MUX_LINK_GONE: ErrorKind.UNAVAILABLE,
  /** A malformed request on the bus API. */
  MUX_BAD_REQUEST: ErrorKind.INVALID_ARGUMENT,
} as const;

/** One multiplexer error code. */
export type MuxErrorCode = keyof typeof MuxErrorCode;

/** A multiplexer failure: a `LatticeError` with one of {@link MuxErrorCode}. */
export type MuxError = LatticeError;

/** Builds a multiplexer error. */
export const muxError = errorFactory(MuxErrorCode);
