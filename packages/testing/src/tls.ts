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

/** Makes a {@link SelfSignedPair} with openssl (EC P-256, valid one day) in a temp folder. */
export async function selfSignedPair(): Promise<SelfSignedPair> {
  const dir = await tempDir('lattice-tls-');
  const keyPath = join(dir.path, 'key.pem');
  const certPath = join(dir.path, 'cert.pem');
  try {
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
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
    ]);
  } catch (error) {
    await dir.remove();
    throw new Error(
      'openssl could not make a self-signed certificate (install it: apt-get install -y openssl)',
      { cause: error },
    );
  }
  return {
    cert: await readFile(certPath),
    key: await readFile(keyPath),
    certPath,
    keyPath,
    remove: () => dir.remove(),
  };
}
