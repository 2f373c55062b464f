/**
 * API keys: `Authorization: Bearer <key>` on HTTP, `authorization: Bearer <key>` metadata on gRPC.
 *
 * @remarks
 * With no keys configured the gateway runs in playground mode and accepts every request; that is
 * allowed only when every listener is bound to loopback ({@link assertPlaygroundAllowed}).
 * Per-collection permissions (issue #9's "read/write queries on `_id`") are not enforced yet:
 * a valid key may run every statement.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { gatewayError } from './errors.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Checks bearer tokens against the configured API keys. */
export class ApiKeys {
  readonly #keys: Buffer[];

  constructor(keys: readonly string[]) {
    // Digests have one length, so the comparison is constant-time whatever the key length.
    this.#keys = keys.filter((k) => k.length > 0).map(digest);
  }

  /** Whether no keys are configured (playground mode). */
  get playground(): boolean {
    return this.#keys.length === 0;
  }

  /**
   * Accepts an `Authorization` header value.
   * @throws `GATEWAY_UNAUTHENTICATED` when keys are configured and the header carries none of them.
   */
  check(authorization: string | undefined): void {
    if (this.playground) return;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) {
      throw gatewayError(
        'GATEWAY_UNAUTHENTICATED',
        'missing bearer token (Authorization: Bearer <key>)',
      );
    }
    const d = digest(m[1] as string);
    let ok = false;
    for (const k of this.#keys) ok = timingSafeEqual(k, d) || ok;
    if (!ok) throw gatewayError('GATEWAY_UNAUTHENTICATED', 'invalid API key');
  }
}

/** Whether `host` is a loopback address or `localhost`. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

/**
 * Refuses playground mode on a non-loopback listener.
 * @throws `GATEWAY_INSECURE_CONFIG`.
 */
export function assertPlaygroundAllowed(keys: ApiKeys, hosts: readonly string[]): void {
  if (!keys.playground) return;
  const exposed = hosts.filter((h) => !isLoopback(h));
  if (exposed.length > 0) {
    throw gatewayError(
      'GATEWAY_INSECURE_CONFIG',
      `no API keys configured (playground mode) but listening on ${exposed.join(', ')}; ` +
        'configure --api-key or bind to 127.0.0.1',
      { host: exposed.join(',') },
    );
  }
}
