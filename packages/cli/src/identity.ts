/**
 * `lattice identity …`: peer ids, an authority's key, and the certificates it issues.
 *
 * An authority is an ed25519 key kept off the mesh (on an operator's machine). It certifies a
 * peer id with permissions and an expiry (`issue`); the peer shows the certificate on every link
 * (`--certificate-file`), and peers that trust the authority (`--authority-keys`) admit it under
 * those permissions. See `services/multiplexer/src/certificate.ts`.
 */
import { writeFileSync } from 'node:fs';
import { compilePermissions, type PermissionsSpec } from '@lattice/dql';
import { permissionsToProto } from '@lattice/merge';
import {
  createIdentity,
  identitySeedFromFile,
  issueCertificate,
  issueRevocations,
  readIdentitySeed,
  peekRevocations,
  readRevocationLists,
  revocationsFromFile,
  writeRevocationLists,
  verifyCertificate,
  type Identity,
} from '@lattice/multiplexer';

/** The identity of a seed file (64 hex digits), which must exist. */
export function readIdentityFile(path: string): Identity {
  return createIdentity(readIdentitySeed(path));
}

/** The authority of a key file, created (mode 0600) when missing; its public key in hex. */
export function authority(path: string): { identity: Identity; publicKey: string } {
  const identity = createIdentity(identitySeedFromFile(path));
  return { identity, publicKey: Buffer.from(identity.publicKey).toString('hex') };
}

/** How long a certificate lasts: `90d`, `12h`, `30m`. */
export function parseDuration(text: string): number {
  const m = /^(\d+)([dhm])$/.exec(text.trim());
  if (!m) throw new Error(`a duration is a number and d, h or m (like 90d), got ${text}`);
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'd' | 'h' | 'm'];
  return Number(m[1]) * unit;
}

/** What `lattice identity issue` takes. */
export interface IssueOptions {
  readonly authorityKeyFile: string;
  readonly peerId: string;
  /** Ditto-shaped permissions as JSON (as in the gateway's keys file); absent: everything. */
  readonly permissions?: string;
  readonly validFor: string;
  readonly name?: string;
  readonly out: string;
  readonly now?: number;
}

/**
 * Issues a certificate and writes it (base64) to `out`.
 * @returns what was certified, for the command to print.
 */
export function issue(options: IssueOptions): { peerId: string; notAfter: string; out: string } {
  const { identity } = authority(options.authorityKeyFile);
  let permissions;
  if (options.permissions !== undefined) {
    let spec: PermissionsSpec;
    try {
      spec = JSON.parse(options.permissions) as PermissionsSpec;
    } catch {
      throw new Error('--permissions must be JSON, like {"read":{"everything":true}}');
    }
    compilePermissions(spec); // refuses a condition that is not a valid `_id` query
    permissions = permissionsToProto(spec);
  }
  const now = options.now ?? Date.now();
  const notAfterMs = now + parseDuration(options.validFor);
  const bytes = issueCertificate(identity, {
    peerId: options.peerId,
    notAfterMs,
    issuedAtMs: now,
    ...(permissions === undefined ? {} : { permissions }),
    ...(options.name === undefined ? {} : { name: options.name }),
  });
  verifyCertificate(bytes, options.peerId, [identity.publicKey], now); // what a peer will check
  writeFileSync(options.out, `${Buffer.from(bytes).toString('base64')}\n`, { mode: 0o600 });
  return { peerId: options.peerId, notAfter: new Date(notAfterMs).toISOString(), out: options.out };
}

/**
 * Adds peers to the authority's revocation list in `file` (created when missing; other
 * authorities' lists in it are kept) and signs it again; peers that trust the authority and read
 * the file (`--revocations-file`, `SIGHUP`) refuse them and pass the list on to their peers.
 * @returns every revoked peer id.
 */
export function revoke(options: {
  readonly authorityKeyFile: string;
  readonly peerIds: readonly string[];
  readonly file: string;
}): string[] {
  const { identity } = authority(options.authorityKeyFile);
  const before = revocationsFromFile(options.file, identity.publicKey)?.peerIds ?? [];
  const all = [...new Set([...before, ...options.peerIds])].sort();
  const mine = Buffer.from(identity.publicKey).toString('hex');
  // Other authorities' lists in the file stay as they are.
  const others = readRevocationLists(options.file).filter(
    (l) => peekRevocations(l)?.authority !== mine,
  );
  writeRevocationLists(options.file, [...others, issueRevocations(identity, all)]);
  return all;
}
