/**
 * Bearer tokens: `Authorization: Bearer <token>` on HTTP and the WebSocket upgrade,
 * `authorization: Bearer <token>` metadata on gRPC.
 *
 * @remarks
 * Two kinds of token: plain API keys (`--api-key`), which may do everything and never expire,
 * and the entries of a keys file (`--keys-file`, {@link keysFileSchema}), each with its
 * permissions (`./permissions.ts`) and an optional expiry. With neither configured the gateway
 * runs in playground mode and accepts every request as full access; that is allowed only when
 * every listener is bound to loopback ({@link assertPlaygroundAllowed}).
 *
 * Tokens are compared by their SHA-256 digests in constant time (one length whatever the token),
 * so a keys file may hold `tokenSha256` instead of the token itself.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { compileAccess, parseCondition } from '@lattice/dql';
import { hasCode } from '@lattice/errors';
import { z } from 'zod';
import { gatewayError } from './errors.js';
import { fullAccess } from './permissions.js';
import type { Principal } from './permissions.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

const conditionList = z.array(z.string().min(1)).superRefine((queries, ctx) => {
  queries.forEach((q, i) => {
    try {
      parseCondition(q);
    } catch (error) {
      if (!hasCode(error)) throw error;
      ctx.addIssue({ code: 'custom', path: [i], message: `${error.code}: ${error.message}` });
    }
  });
});

const permissionSpec = z
  .object({
    everything: z.boolean().default(false),
    queriesByCollection: z.record(z.string().min(1), conditionList).default({}),
  })
  .strict();

/** One entry of a keys file. */
export const keyEntrySchema = z
  .object({
    /** A name for messages and logs. */
    name: z.string().min(1).max(128),
    /** The bearer token itself (at least 16 characters)… */
    token: z.string().min(16, 'a token must have at least 16 characters').optional(),
    /** …or its SHA-256 digest in hex, so the file holds no secret. */
    tokenSha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits')
      .optional(),
    /** When the token stops being accepted (ISO-8601 with a time zone); absent: never. */
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    permission: z
      .object({ read: permissionSpec.optional(), write: permissionSpec.optional() })
      .strict(),
  })
  .strict()
  .refine((e) => (e.token === undefined) !== (e.tokenSha256 === undefined), {
    message: 'give exactly one of token and tokenSha256',
  });

/** A keys file: `{"keys": [ … ]}` (see the README). */
export const keysFileSchema = z
  .object({ keys: z.array(keyEntrySchema) })
  .strict()
  .superRefine((file, ctx) => {
    const seen = new Map<string, number>();
    file.keys.forEach((k, i) => {
      const d = k.tokenSha256?.toLowerCase() ?? digest(k.token ?? '').toString('hex');
      const before = seen.get(d);
      if (before !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['keys', i],
          message: `same token as keys[${before}]`,
        });
      }
      seen.set(d, i);
    });
  });

/** One validated key of a keys file. */
export type KeyEntry = z.infer<typeof keyEntrySchema>;

/** The input shape of a key entry (what a user writes). */
export type KeyEntryInput = z.input<typeof keyEntrySchema>;

function describeIssues(error: z.ZodError, json: unknown): string {
  return error.issues
    .map((issue) => {
      const [first, index] = issue.path;
      let where = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`));
      if (first === 'keys' && typeof index === 'number') {
        const name = (json as { keys?: { name?: unknown }[] }).keys?.[index]?.name;
        if (typeof name === 'string') where = [`keys[${index}] ("${name}")`, ...where.slice(2)];
      }
      return `${where.join('').replace(/^\./, '') || '(file)'}: ${issue.message}`;
    })
    .join('; ');
}

/**
 * Validates a keys file's parsed JSON.
 * @throws `GATEWAY_BAD_CONFIG` naming each bad entry (index and name) and field.
 */
export function parseKeys(json: unknown, source = 'keys file'): KeyEntry[] {
  const r = keysFileSchema.safeParse(json);
  if (!r.success) {
    throw gatewayError('GATEWAY_BAD_CONFIG', `${source}: ${describeIssues(r.error, json)}`, {
      source,
    });
  }
  return r.data.keys;
}

/**
 * Reads and validates a keys file.
 * @throws `GATEWAY_BAD_CONFIG` for an unreadable file, bad JSON or a bad entry.
 */
export function readKeysFile(path: string): KeyEntry[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw gatewayError(
      'GATEWAY_BAD_CONFIG',
      `keys file ${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { source: path },
      cause,
    );
  }
  return parseKeys(json, `keys file ${path}`);
}

interface Known {
  readonly digest: Buffer;
  readonly principal: Principal;
  /** What the principal was made from: a reload keeps a principal whose source is unchanged. */
  readonly source: string;
}

/** What {@link ApiKeys.replace} changed. */
export interface KeysReload {
  readonly added: number;
  readonly removed: number;
  readonly kept: number;
}

function knownKeys(keys: readonly string[], entries: readonly KeyEntry[]): Known[] {
  return [
    ...keys
      .filter((k) => k.length > 0)
      .map((k, i) => ({
        digest: digest(k),
        principal: fullAccess(`api-key-${i + 1}`),
        source: `api-key-${i + 1}`,
      })),
    ...entries.map((e) => ({
      digest:
        e.tokenSha256 === undefined ? digest(e.token ?? '') : Buffer.from(e.tokenSha256, 'hex'),
      principal: {
        name: e.name,
        read: compileAccess(e.permission.read),
        write: compileAccess(e.permission.write),
        expiresAt: e.expiresAt === undefined ? undefined : Date.parse(e.expiresAt),
        spec: e.permission,
      },
      source: JSON.stringify([e.name, e.expiresAt ?? null, e.permission]),
    })),
  ];
}

/** Checks bearer tokens against the configured keys and answers who the caller is. */
export class ApiKeys {
  #keys: Known[];
  readonly #now: () => number;
  readonly #watchers = new Set<{ principal: Principal; end: (error: Error) => void }>();

  /**
   * @param keys plain API keys: full access, no expiry.
   * @param entries keys with permissions and expiry (from a keys file).
   * @param now the clock expiry is checked against (tests).
   */
  constructor(
    keys: readonly string[],
    entries: readonly KeyEntry[] = [],
    now: () => number = Date.now,
  ) {
    this.#now = now;
    this.#keys = knownKeys(keys, entries);
  }

  /**
   * Replaces the configured keys (a reload of the keys file). A key whose token, name,
   * permission and expiry are unchanged keeps its principal, so its open streams and sync links
   * go on; those of a key that was removed or changed end with `GATEWAY_KEY_REVOKED` (clients
   * reconnect under the new rules).
   * @throws `GATEWAY_BAD_CONFIG` when the reload would leave no key at all (that would turn
   * authentication off: playground mode is chosen at start, never by a reload).
   */
  replace(keys: readonly string[], entries: readonly KeyEntry[]): KeysReload {
    const next = knownKeys(keys, entries);
    if (next.length === 0 && !this.playground) {
      throw gatewayError(
        'GATEWAY_BAD_CONFIG',
        'a reload may not remove every key (that would turn authentication off)',
      );
    }
    const before = new Map(this.#keys.map((k) => [`${k.digest.toString('hex')} ${k.source}`, k]));
    let kept = 0;
    this.#keys = next.map((k) => {
      const same = before.get(`${k.digest.toString('hex')} ${k.source}`);
      if (same === undefined) return k;
      kept++;
      return same;
    });
    const live = new Set(this.#keys.map((k) => k.principal));
    if (this.playground) live.add(PLAYGROUND);
    for (const w of [...this.#watchers]) {
      if (live.has(w.principal)) continue;
      this.#watchers.delete(w);
      w.end(
        gatewayError('GATEWAY_KEY_REVOKED', `key "${w.principal.name}" was revoked or changed`, {
          key: w.principal.name,
        }),
      );
    }
    return { added: next.length - kept, removed: before.size - kept, kept };
  }

  /**
   * Calls `end` once when `p` expires or a reload revokes it (a stream or link outliving its key
   * would outlive the check).
   * @returns a function that stops watching.
   */
  watch(p: Principal, end: (error: Error) => void): () => void {
    const watcher = {
      principal: p,
      end: (error: Error) => {
        stop();
        end(error);
      },
    };
    // A timer may fire a little before the clock reaches the expiry (or the expiry may lie
    // beyond the longest timeout): then it is armed again for what is left.
    const arm = (): NodeJS.Timeout | undefined => {
      const left = this.remainingMs(p);
      if (left === Infinity) return undefined;
      return setTimeout(
        () => {
          try {
            this.assertLive(p);
            timer = arm();
          } catch (error) {
            watcher.end(error as Error);
          }
        },
        Math.min(Math.max(left, 0), 2 ** 31 - 1),
      );
    };
    let timer = arm();
    const stop = (): void => {
      clearTimeout(timer);
      this.#watchers.delete(watcher);
    };
    this.#watchers.add(watcher);
    return stop;
  }

  /** Whether no keys are configured (playground mode). */
  get playground(): boolean {
    return this.#keys.length === 0;
  }

  /**
   * Accepts an `Authorization` header value and answers whose it is.
   * @throws `GATEWAY_UNAUTHENTICATED` when keys are configured and the header carries none of
   * them; `GATEWAY_TOKEN_EXPIRED` for a key past its expiry.
   */
  check(authorization: string | undefined): Principal {
    if (this.playground) return PLAYGROUND;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) {
      throw gatewayError(
        'GATEWAY_UNAUTHENTICATED',
        'missing bearer token (Authorization: Bearer <key>)',
      );
    }
    const d = digest(m[1] as string);
    let found: Principal | undefined;
    for (const k of this.#keys) if (timingSafeEqual(k.digest, d)) found ??= k.principal;
    if (!found) throw gatewayError('GATEWAY_UNAUTHENTICATED', 'invalid API key');
    this.assertLive(found);
    return found;
  }

  /**
   * Refuses a principal past its expiry (long calls check again while they run).
   * @throws `GATEWAY_TOKEN_EXPIRED`.
   */
  assertLive(p: Principal): void {
    if (p.expiresAt !== undefined && this.#now() >= p.expiresAt) {
      throw gatewayError(
        'GATEWAY_TOKEN_EXPIRED',
        `key "${p.name}" expired at ${new Date(p.expiresAt).toISOString()}`,
        { key: p.name, expiresAt: new Date(p.expiresAt).toISOString() },
      );
    }
  }

  /** Milliseconds until `p` expires (Infinity: never). */
  remainingMs(p: Principal): number {
    return p.expiresAt === undefined ? Infinity : p.expiresAt - this.#now();
  }
}

const PLAYGROUND = fullAccess('playground');

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
        'configure --api-key or --keys-file, or bind to 127.0.0.1',
      { host: exposed.join(',') },
    );
  }
}
