/**
 * Identity certificates: an authority (an ed25519 key kept off the mesh) signs what one peer is
 * and may do — its peer id, its permissions (SEMANTICS.md § Permissions) and an expiry — and the
 * peer shows the certificate in every handshake (`MuxAuth.certificate`).
 *
 * @remarks
 * A multiplexer that trusts the authority (`MultiplexerOptions.authorities`) admits a peer on a
 * valid certificate (signed by a trusted key, for the peer id the handshake proved, not expired)
 * and gives the peer the certificate's permissions, which the sync protocol enforces as it does
 * for an app's key at the gateway. A certificate that is shown but not valid refuses the link
 * (`MUX_CERTIFICATE_INVALID`); an expired one ends the peer's links when it expires.
 *
 * Signature: ed25519 over `"lattice-identity/1" 0x00 | claims`, where `claims` are the encoded
 * `lattice.v1.IdentityClaims` bytes carried in the certificate (verified as they came, never
 * re-encoded).
 *
 * Revocation: the authority signs a list of peer ids it no longer vouches for, with the time it
 * signed it (`SignedRevocations`, over `"lattice-revocations/1" 0x00 | revocations`); a
 * multiplexer that adopts the list refuses those peers' links and closes the ones that are up
 * (`MUX_PEER_REVOKED`). Of two lists of one authority the later one holds, so a list also lifts
 * revocations. Multiplexers pass the lists they hold to each other (`MuxControl` on stream 0,
 * at the start of every peer session and whenever they adopt a later one), so a list given to
 * one peer (`--revocations-file`, `SIGHUP`) reaches every peer that trusts the authority and is
 * connected through others that trust it too — and each keeps it in its revocations file.
 */
import { sign, verify } from 'node:crypto';
import { v1 } from '@lattice/proto';
import { muxError } from './errors.js';
import { ed25519PublicKey, type Identity } from './handshake.js';

const CONTEXT = Buffer.from('lattice-identity/1\0');
/** Largest certificate accepted (permissions are a handful of conditions). */
export const MAX_CERTIFICATE_BYTES = 16 * 1024;

/** What a certificate says, once verified. */
export interface CertifiedIdentity {
  readonly peerId: string;
  /** Undefined: everything. */
  readonly permissions: v1.IPermissions | undefined;
  readonly notAfterMs: number;
  readonly name: string;
  /** The issuing authority's public key (hex). */
  readonly authority: string;
}

/** What an authority certifies. */
export interface CertificateRequest {
  readonly peerId: string;
  readonly permissions?: v1.IPermissions | undefined;
  readonly notAfterMs: number;
  readonly name?: string;
  readonly issuedAtMs?: number;
}

/** Signs a certificate with the authority's identity; returns the encoded `IdentityCertificate`. */
export function issueCertificate(authority: Identity, request: CertificateRequest): Uint8Array {
  if (!/^[0-9a-f]{32}$/.test(request.peerId)) {
    throw new RangeError(`a peer id is 32 hex digits, got ${JSON.stringify(request.peerId)}`);
  }
  if (!Number.isSafeInteger(request.notAfterMs) || request.notAfterMs <= 0) {
    throw new RangeError('a certificate needs an expiry (notAfterMs, Unix ms)');
  }
  const claims = v1.IdentityClaims.encode({
    peerId: request.peerId,
    ...(request.permissions === undefined ? {} : { permissions: request.permissions }),
    notAfterMs: request.notAfterMs,
    issuedAtMs: request.issuedAtMs ?? Date.now(),
    name: request.name ?? '',
  }).finish();
  const signature = sign(null, Buffer.concat([CONTEXT, claims]), authority.privateKey);
  return v1.IdentityCertificate.encode({
    claims,
    signature,
    authorityKey: authority.publicKey,
  }).finish();
}

/**
 * Verifies a certificate for `peerId` at `nowMs` against the trusted authority keys.
 * @throws MuxError MUX_CERTIFICATE_INVALID naming what is wrong.
 */
export function verifyCertificate(
  bytes: Uint8Array,
  peerId: string,
  authorities: readonly Uint8Array[],
  nowMs: number,
): CertifiedIdentity {
  const invalid = (reason: string): never => {
    throw muxError('MUX_CERTIFICATE_INVALID', `identity certificate of ${peerId}: ${reason}`, {
      peerId,
    });
  };
  if (bytes.length > MAX_CERTIFICATE_BYTES) invalid('too large');
  let cert: v1.IdentityCertificate;
  let claims: v1.IdentityClaims;
  try {
    cert = v1.IdentityCertificate.decode(bytes);
    claims = v1.IdentityClaims.decode(cert.claims);
  } catch {
    return invalid('malformed');
  }
  const problem = signatureProblem(CONTEXT, cert.claims, cert, authorities);
  if (problem !== undefined) invalid(problem);
  if (claims.peerId !== peerId) invalid(`issued to another peer (${claims.peerId})`);
  const notAfterMs = Number(claims.notAfterMs);
  if (!(notAfterMs > nowMs)) invalid(`expired at ${new Date(notAfterMs).toISOString()}`);
  return {
    peerId,
    permissions: claims.permissions ?? undefined,
    notAfterMs,
    name: claims.name,
    authority: Buffer.from(cert.authorityKey).toString('hex'),
  };
}

const REVOCATIONS_CONTEXT = Buffer.from('lattice-revocations/1\0');

/** Signs a revocation list; returns the encoded `SignedRevocations`. */
export function issueRevocations(
  authority: Identity,
  peerIds: readonly string[],
  issuedAtMs = Date.now(),
): Uint8Array {
  for (const id of peerIds) {
    if (!/^[0-9a-f]{32}$/.test(id)) {
      throw new RangeError(`a peer id is 32 hex digits, got ${JSON.stringify(id)}`);
    }
  }
  const revocations = v1.IdentityRevocations.encode({
    peerIds: [...new Set(peerIds)].sort(),
    issuedAtMs,
  }).finish();
  return v1.SignedRevocations.encode({
    revocations,
    signature: sign(null, Buffer.concat([REVOCATIONS_CONTEXT, revocations]), authority.privateKey),
    authorityKey: authority.publicKey,
  }).finish();
}

/** A verified revocation list. */
export interface Revocations {
  readonly peerIds: readonly string[];
  readonly issuedAtMs: number;
  /** The authority's public key (hex). */
  readonly authority: string;
}

/**
 * Verifies a revocation list against the trusted authority keys.
 * @throws MuxError MUX_CERTIFICATE_INVALID naming what is wrong.
 */
export function verifyRevocations(
  bytes: Uint8Array,
  authorities: readonly Uint8Array[],
): Revocations {
  const invalid = (reason: string): never => {
    throw muxError('MUX_CERTIFICATE_INVALID', `revocation list: ${reason}`);
  };
  let signed: v1.SignedRevocations;
  let list: v1.IdentityRevocations;
  try {
    signed = v1.SignedRevocations.decode(bytes);
    list = v1.IdentityRevocations.decode(signed.revocations);
  } catch {
    return invalid('malformed');
  }
  const problem = signatureProblem(REVOCATIONS_CONTEXT, signed.revocations, signed, authorities);
  if (problem !== undefined) invalid(problem);
  return {
    peerIds: list.peerIds,
    issuedAtMs: Number(list.issuedAtMs),
    authority: Buffer.from(signed.authorityKey).toString('hex'),
  };
}

/**
 * Who signed a revocation list (the authority's key in hex) and when, as the list claims — not
 * verified — or undefined when it does not decode.
 */
export function peekRevocations(
  bytes: Uint8Array,
): { readonly authority: string; readonly issuedAtMs: number } | undefined {
  try {
    const signed = v1.SignedRevocations.decode(bytes);
    return {
      authority: Buffer.from(signed.authorityKey).toString('hex'),
      issuedAtMs: Number(v1.IdentityRevocations.decode(signed.revocations).issuedAtMs),
    };
  } catch {
    return undefined;
  }
}

/**
 * Why `context | body` does not hold as signed by `authorityKey` under the trusted
 * `authorities`, or undefined when it does.
 */
function signatureProblem(
  context: Uint8Array,
  body: Uint8Array,
  signed: { readonly signature: Uint8Array; readonly authorityKey: Uint8Array },
  authorities: readonly Uint8Array[],
): string | undefined {
  const key = signed.authorityKey;
  if (key.length !== 32 || !authorities.some((k) => Buffer.compare(k, key) === 0))
    return 'signed by an authority not trusted here';
  return verify(null, Buffer.concat([context, body]), ed25519PublicKey(key), signed.signature)
    ? undefined
    : 'bad signature';
}
