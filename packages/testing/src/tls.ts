import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './temp.js';

const run = promisify(execFile);

/** A self-signed certificate and key for 127.0.0.1 / localhost, as PEM bytes and files. */
export interface SelfSignedPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly certPath: string;
  readonly keyPath: string;
  /** Deletes the files. */
  remove(): Promise<void>;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: readonly string[], remove: () => Promise<void>): Promise<void> {
  try {
    await run('openssl', args);
  } catch (error) {
    await remove();
    throw new Error(
      'openssl could not make a certificate (install it: apt-get install -y openssl)',
      { cause: error },
    );
  }
}

/** Makes a {@link SelfSignedPair} with openssl (EC P-256, valid one day) in a temp folder. */
export async function selfSignedPair(): Promise<SelfSignedPair> {
  const dir = await tempDir('lattice-tls-');
  const keyPath = join(dir.path, 'key.pem');
  const certPath = join(dir.path, 'cert.pem');
  await openssl(
    [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    () => dir.remove(),
  );
  return {
    cert: await readFile(certPath),
    key: await readFile(keyPath),
    certPath,
    keyPath,
    remove: () => dir.remove(),
  };
}

/** A throwaway certificate authority that signs client certificates (for mutual TLS tests). */
export interface TestAuthority {
  /** The CA certificate (PEM), what a server trusts. */
  readonly cert: Buffer;
  readonly certPath: string;
  /** Issues a client certificate with common name `name`, signed by this CA. */
  issue(name: string): Promise<Omit<SelfSignedPair, 'remove'>>;
  /** Deletes the files. */
  remove(): Promise<void>;
}

/** Makes a {@link TestAuthority} with openssl (EC P-256, valid one day) in a temp folder. */
export async function testAuthority(): Promise<TestAuthority> {
  const dir = await tempDir('lattice-ca-');
  const remove = () => dir.remove();
  const caKey = join(dir.path, 'ca.key');
  const certPath = join(dir.path, 'ca.pem');
  await openssl(
    [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      caKey,
      '-out',
      certPath,
      '-days',
      '1',
      '-subj',
      '/CN=test-ca',
    ],
    remove,
  );
  let serial = 0;
  return {
    cert: await readFile(certPath),
    certPath,
    async issue(name) {
      const n = ++serial;
      const keyPath = join(dir.path, `client-${n}.key`);
      const csr = join(dir.path, `client-${n}.csr`);
      const clientCert = join(dir.path, `client-${n}.pem`);
      await openssl(
        ['req', ...EC, '-keyout', keyPath, '-out', csr, '-subj', `/CN=${name}`],
        remove,
      );
      await openssl(
        [
          'x509',
          '-req',
          '-in',
          csr,
          '-CA',
          certPath,
          '-CAkey',
          caKey,
          '-set_serial',
          String(n),
          '-out',
          clientCert,
          '-days',
          '1',
        ],
        remove,
      );
      return {
        cert: await readFile(clientCert),
        key: await readFile(keyPath),
        certPath: clientCert,
        keyPath,
      };
    },
    remove,
  };
}
