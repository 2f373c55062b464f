/**
 * Checks settings written in deployment files (flags, `LATTICE_*` variables) against the config
 * schemas the services really use, through the same `loadConfig` their processes run.
 */
import { PEER_SERVICES } from '@lattice/cli';
import { mergeConfigSchema } from '@lattice/merge';
import type { ServiceName } from '@lattice/proto';
import { envName, loadConfig } from '@lattice/service';

/** A service's config schema, as `loadConfig` takes it. */
export type ConfigSchema = Parameters<typeof loadConfig>[0];

function isObjectSchema(schema: unknown): schema is ConfigSchema {
  return typeof schema === 'object' && schema !== null && 'shape' in schema;
}

/** Every runnable service's config schema, by service name (from the `lattice` command itself). */
export function serviceSchemas(): ReadonlyMap<ServiceName, ConfigSchema> {
  const schemas = new Map<ServiceName, ConfigSchema>();
  for (const definition of PEER_SERVICES) {
    const schema: unknown = definition.configSchema;
    if (!isObjectSchema(schema)) throw new TypeError(`${definition.name}: not an object schema`);
    schemas.set(definition.name, schema);
  }
  // The command runs the very schema the merge package exports.
  if (schemas.get('merge') !== (mergeConfigSchema as unknown)) {
    throw new Error('lattice merge does not use mergeConfigSchema');
  }
  return schemas;
}

/** The schema of `service`. @throws Error naming the service when the command has no such service. */
export function schemaOf(service: string): ConfigSchema {
  const schema = serviceSchemas().get(service as ServiceName);
  if (schema === undefined) {
    throw new Error(
      `lattice has no service "${service}" (it has ${[...serviceSchemas().keys()].join(', ')})`,
    );
  }
  return schema;
}

/** The `LATTICE_*` variables `service` reads. */
export function envNamesOf(service: string): ReadonlySet<string> {
  return new Set(Object.keys(schemaOf(service).shape).map(envName));
}

/**
 * Loads `service`'s configuration from `argv` and `env` exactly as its process would.
 * @throws LatticeError SERVICE_CONFIG_INVALID naming a bad or unknown flag, or a bad value.
 */
export function loadServiceConfig(
  service: string,
  source: { readonly argv: readonly string[]; readonly env: Readonly<Record<string, string>> },
): Record<string, unknown> {
  return loadConfig(schemaOf(service), source) as Record<string, unknown>;
}

/**
 * The `LATTICE_*` names in `env` that `service` does not read: a process silently ignores them, so
 * a renamed setting would go unnoticed without this check.
 */
export function unknownLatticeVariables(
  service: string,
  env: Readonly<Record<string, string>>,
): string[] {
  const known = envNamesOf(service);
  return Object.keys(env).filter((name) => name.startsWith('LATTICE_') && !known.has(name));
}

/** Parses a systemd/compose style env file: `KEY=VALUE` lines, `#` comments. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match === null) throw new Error(`line ${i + 1} is not KEY=VALUE: ${line}`);
    env[match[1] as string] = match[2] as string;
  }
  return env;
}
