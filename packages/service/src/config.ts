/**
 * Service configuration from command-line flags and `LATTICE_*` environment variables, validated
 * by a zod schema. A key `natsUrl` is the flag `--nats-url` and the variable `LATTICE_NATS_URL`;
 * a flag wins over the variable, and both over the schema's default.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { serviceError } from './errors.js';

/** Settings every service has. */
export const baseConfigSchema = z.object({
  namespace: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,128}$/, 'must be 1-128 characters of [A-Za-z0-9_-]')
    .default('default')
    .describe("the peer's namespace: every subject starts with it"),
  natsUrl: z
    .string()
    .min(1)
    .default('nats://127.0.0.1:4222')
    .describe('NATS server URL(s), comma-separated'),
  natsToken: z
    .string()
    .min(1)
    .optional()
    .describe('NATS token (better set by LATTICE_NATS_TOKEN than on the command line)'),
  natsUser: z.string().min(1).optional().describe('NATS user name'),
  natsPass: z
    .string()
    .min(1)
    .optional()
    .describe('NATS password (better set by LATTICE_NATS_PASS)'),
  logLevel: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .default('info')
    .describe('log level'),
});

/** The settings of {@link baseConfigSchema}. */
export type BaseConfig = z.infer<typeof baseConfigSchema>;

/** `natsUrl` → `nats-url`. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `natsUrl` → `LATTICE_NATS_URL`. */
export function envName(key: string): string {
  return `LATTICE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/**
 * The help text of a service's settings: one line per flag with its variable, default and
 * description (from the schema's `.describe`).
 */
export function configHelp(schema: z.ZodObject, command: string): string {
  const lines = Object.entries(schema.shape as Record<string, z.ZodType>).map(([key, field]) => {
    const fallback = field.safeParse(undefined);
    const shown =
      fallback.success && fallback.data !== undefined && fallback.data !== ''
        ? ` (default ${Array.isArray(fallback.data) ? fallback.data.join(',') : String(fallback.data)})`
        : '';
    return `  --${flagName(key)} <value>\n      ${field.description ?? ''}${shown} [env ${envName(key)}]`;
  });
  return [
    `Usage: ${command} [flags]`,
    '',
    'Every flag can also be set by its LATTICE_* environment variable; a flag wins.',
    '',
    'Flags:',
    ...lines,
    '  --help\n      this text',
  ].join('\n');
}

/**
 * Reads and validates a service's configuration.
 * @throws LatticeError SERVICE_CONFIG_INVALID naming the bad setting's flag and variable.
 */
export function loadConfig<S extends z.ZodObject>(
  schema: S,
  source: {
    readonly argv: readonly string[];
    readonly env: Readonly<Record<string, string | undefined>>;
  },
): z.infer<S> {
  const keys = Object.keys(schema.shape);
  const options = Object.fromEntries(keys.map((k) => [flagName(k), { type: 'string' as const }]));
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...source.argv],
      options,
      strict: true,
      allowPositionals: false,
    }));
  } catch (cause) {
    throw serviceError(
      'SERVICE_CONFIG_INVALID',
      `${cause instanceof Error ? cause.message : String(cause)}; known flags: ${keys.map((k) => `--${flagName(k)}`).join(', ')}`,
      {},
      cause,
    );
  }
  const raw: Record<string, unknown> = {};
  for (const key of keys) {
    const value = values[flagName(key)] ?? source.env[envName(key)];
    if (value !== undefined) raw[key] = value;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? '');
    throw serviceError(
      'SERVICE_CONFIG_INVALID',
      `invalid setting --${flagName(key)} (${envName(key)}): ${issue?.message ?? 'invalid'}`,
      { setting: key, flag: `--${flagName(key)}`, env: envName(key) },
    );
  }
  return parsed.data;
}
