/**
 * The peer identity kept in a file, so that the processes of one peer (its multiplexer, its merge
 * service) share one identity and keep it across restarts.
 *
 * @remarks The file holds the 32-byte ed25519 seed as 64 hex digits and a newline, readable by
 * its owner only. Processes that start at once may both find it missing: each writes a temporary
 * file and links it into place, which fails for all but the first, and the others read the winner.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { v1 } from '@lattice/proto';
import {
  peekRevocations,
  verifyCertificate,
  verifyRevocations,
  type Revocations,
} from './certificate.js';
import { muxError } from './errors.js';

/**
 * Reads the identity seed from `path`, creating the file with a new random seed if it is missing.
 * @throws MuxError MUX_BAD_REQUEST when the file exists but holds no seed.
 */
export function identitySeedFromFile(path: string): Uint8Array {
  try {
    return parseSeed(readFileSync(path, 'utf8'), path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temporary, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temporary, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(temporary);
  }
  return parseSeed(readFileSync(path, 'utf8'), path);
}

function parseSeed(text: string, path: string): Uint8Array {
  const hex = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw muxError('MUX_BAD_REQUEST', `identity file ${path} must hold 64 hex digits`, { path });
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/**
 * Reads a mesh's shared key from `path` (hex digits, at least 32: 128 bits; `openssl rand -hex
 * 32` makes one). Unlike an identity, a mesh key is never created here: every peer of the mesh
 * must hold the same one.
 * @throws MuxError MUX_BAD_REQUEST when the file is missing or holds no key.
 */
export function meshKeyFromFile(path: string): Uint8Array {
  const text = readSetting(path, 'the mesh key file');
  const hex = text.trim();
  if (!/^([0-9a-fA-F]{2}){16,}$/.test(hex)) {
    throw muxError(
      'MUX_BAD_REQUEST',
      `mesh key file ${path} must hold at least 32 hex digits (an even number), e.g. from \`openssl rand -hex 32\``,
      { path },
    );
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/**
 * Reads this peer's identity certificate from `path` (the base64 text `lattice identity issue`
 * writes) and checks that it is for `peerId` and not expired, so a wrong file fails at start
 * rather than on every link.
 * @throws MuxError MUX_BAD_REQUEST (unreadable) or MUX_CERTIFICATE_INVALID (not for this peer).
 */
export function certificateFromFile(path: string, peerId: string, nowMs = Date.now()): Uint8Array {
  const text = readSetting(path, 'the certificate file');
  const bytes = new Uint8Array(Buffer.from(text.trim(), 'base64'));
  let issuer: Uint8Array;
  try {
    issuer = v1.IdentityCertificate.decode(bytes).authorityKey;
  } catch (err) {
    throw muxError('MUX_BAD_REQUEST', `${path} holds no identity certificate`, { path }, err);
  }
  verifyCertificate(bytes, peerId, [issuer], nowMs);
  return bytes;
}

/** Parses authority public keys: 64 hex digits each, separated by commas. */
export function parseAuthorityKeys(text: string): Uint8Array[] {
  return text
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0)
    .map((k) => {
      if (!/^[0-9a-fA-F]{64}$/.test(k)) {
        throw muxError(
          'MUX_BAD_REQUEST',
          `an authority key is 64 hex digits, got ${JSON.stringify(k)}`,
        );
      }
      return new Uint8Array(Buffer.from(k, 'hex'));
    });
}

/**
 * Reads the revocation lists in `path`: one encoded `SignedRevocations` per line, in base64, at
 * most one per authority (`lattice identity revoke` writes its authority's line, and a
 * multiplexer keeps there the later lists it learns from its peers). A missing file holds none.
 * The lists are not verified here: {@link Multiplexer.adoptRevocations} does that.
 * @throws MuxError MUX_BAD_REQUEST when the file cannot be read or a line is not base64.
 */
export function readRevocationLists(path: string): Uint8Array[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw muxError('MUX_BAD_REQUEST', `cannot read the revocations file ${path}`, { path }, err);
  }
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line, i) => {
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(line)) {
        throw muxError('MUX_BAD_REQUEST', `line ${i + 1} of ${path} is not base64`, { path });
      }
      return new Uint8Array(Buffer.from(line, 'base64'));
    });
}

/**
 * Writes revocation lists to `path` in the format {@link readRevocationLists} reads, atomically
 * (a temporary file renamed into place), readable by all (the lists are public).
 */
export function writeRevocationLists(path: string, lists: readonly Uint8Array[]): void {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temporary, lists.map((l) => `${Buffer.from(l).toString('base64')}\n`).join(''), {
    mode: 0o644,
  });
  renameSync(temporary, path);
}

/**
 * The list of the authority `authority` in `path` (verified against it), when there is one.
 * @throws MuxError MUX_BAD_REQUEST (unreadable) or MUX_CERTIFICATE_INVALID (its line is bad).
 */
export function revocationsFromFile(path: string, authority: Uint8Array): Revocations | undefined {
  const key = Buffer.from(authority).toString('hex');
  const line = readRevocationLists(path).find((bytes) => peekRevocations(bytes)?.authority === key);
  return line === undefined ? undefined : verifyRevocations(line, [authority]);
}

/** Reads a settings file this service needs (it is never created here). */
function readSetting(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw muxError('MUX_BAD_REQUEST', `cannot read ${what} ${path}`, { path }, err);
  }
}

/**
 * The identity seed in `path`, which must exist (tools that name a peer, not the peer itself).
 * @throws MuxError MUX_BAD_REQUEST when the file is missing or holds no seed.
 */
export function readIdentitySeed(path: string): Uint8Array {
  return parseSeed(readSetting(path, 'the identity file'), path);
}
