/**
 * `deploy/compose/` and `deploy/docker/`: no Docker engine runs here, so the files are parsed and
 * checked against what the services really accept (their config schemas, through `loadConfig`),
 * and the compose file's NATS configuration is started for real.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { tempDir, type TempDir } from '@lattice/testing';
import {
  loadServiceConfig,
  parseEnvFile,
  serviceSchemas,
  unknownLatticeVariables,
  envNamesOf,
} from './service-config.js';
import {
  DEPLOY_DIR,
  freePorts,
  readDeployFile,
  REPO_ROOT,
  startConfiguredNats,
  template,
} from './support.js';

const COMPOSE_DIR = join(DEPLOY_DIR, 'compose');

/** What compose would take from the shell when the file says `${…}`. */
const SHELL_ENV: Readonly<Record<string, string>> = {
  LATTICE_API_KEY: 'compose-test-key',
  LATTICE_PEERS: 'tcp://peer2.example:4040',
};

/** Compose's variable interpolation: `${X}`, `${X:-default}`, `${X-default}`, `${X:?error}`, `$$`. */
function interpolate(value: string, env: Readonly<Record<string, string>>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g,
    (whole, name: string | undefined, op: string | undefined, arg: string | undefined) => {
      if (whole === '$$') return '$';
      const v = env[name as string];
      const unset = op?.startsWith(':') ? v === undefined || v === '' : v === undefined;
      if (!unset) return v as string;
      if (op?.endsWith('?')) throw new Error(`compose: ${name} is required: ${arg ?? ''}`);
      return arg ?? '';
    },
  );
}

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  env_file?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, unknown> | string[];
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

async function readCompose(): Promise<ComposeFile> {
  const doc = parseDocument(await readDeployFile('compose/docker-compose.yml'), { merge: true });
  expect(doc.errors.map((e) => e.message)).toEqual([]);
  expect(doc.warnings.map((e) => e.message)).toEqual([]);
  return doc.toJS({ maxAliasCount: 100 }) as ComposeFile;
}

/** A service's environment (compose's map or list form), interpolated. */
function environmentOf(service: ComposeService): Record<string, string> {
  const env: Record<string, string> = {};
  const raw = service.environment ?? {};
  const entries = Array.isArray(raw)
    ? raw.map((line) => {
        const eq = line.indexOf('=');
        return [line.slice(0, eq), line.slice(eq + 1)] as const;
      })
    : Object.entries(raw);
  for (const [name, value] of entries) env[name] = interpolate(String(value ?? ''), SHELL_ENV);
  return env;
}

async function envFileOf(service: ComposeService): Promise<Record<string, string>> {
  const files = service.env_file === undefined ? [] : [service.env_file].flat();
  const env: Record<string, string> = {};
  for (const file of files) {
    Object.assign(env, parseEnvFile(await readFile(join(COMPOSE_DIR, file), 'utf8')));
  }
  return env;
}

/** `[ip:]host:container[/proto]` → the container port. */
function containerPort(mapping: string): number {
  const last = mapping.split(':').pop() as string;
  return Number(last.split('/')[0]);
}

/** `source:target[:mode]`. */
function mount(spec: string): { source: string; target: string } {
  const [source, target] = spec.split(':') as [string, string];
  return { source, target };
}

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir.replace(/\/$/, '')}/`);
}

describe('deploy/compose/docker-compose.yml', () => {
  let dir: TempDir;
  beforeEach(async () => {
    dir = await tempDir('lattice-deploy-compose-');
  });
  afterEach(async () => {
    await dir.remove();
  });

  /** Each Lattice container's service name, configuration and environment, as its process reads them. */
  async function latticeServices(): Promise<
    Map<string, { spec: ComposeService; config: Record<string, unknown> }>
  > {
    const compose = await readCompose();
    const out = new Map<string, { spec: ComposeService; config: Record<string, unknown> }>();
    for (const [name, spec] of Object.entries(compose.services)) {
      if (name === 'nats') continue;
      const [service, ...flags] = spec.command ?? [];
      // A container is named after the service it runs.
      expect(service, `${name}: command`).toBe(name);
      const own = environmentOf(spec);
      expect(unknownLatticeVariables(name, own), `${name}: environment`).toEqual([]);
      const env = { ...(await envFileOf(spec)), ...own };
      out.set(name, { spec, config: loadServiceConfig(name, { argv: flags, env }) });
    }
    return out;
  }

  it('runs NATS and one peer: merge, multiplexer, transport-lan and gateway', async () => {
    const compose = await readCompose();
    expect(Object.keys(compose.services).sort()).toEqual(
      ['gateway', 'merge', 'multiplexer', 'nats', 'transport-lan'].sort(),
    );
    for (const [name, spec] of Object.entries(compose.services)) {
      for (const dependency of Object.keys(spec.depends_on ?? {})) {
        expect(Object.keys(compose.services), `${name} depends on ${dependency}`).toContain(
          dependency,
        );
      }
      if (name !== 'nats') {
        expect(Object.keys(spec.depends_on ?? {}), name).toContain('nats');
      }
    }
  });

  it('gives each service only settings it accepts, with valid values', async () => {
    const services = await latticeServices();
    expect([...services.keys()].sort()).toEqual(
      ['gateway', 'merge', 'multiplexer', 'transport-lan'].sort(),
    );
    const compose = await readCompose();
    // Every shared LATTICE_* variable is read by some service.
    const everyName = new Set([...serviceSchemas().keys()].flatMap((s) => [...envNamesOf(s)]));
    for (const name of Object.keys(await envFileOf(compose.services['merge'] ?? {}))) {
      if (name.startsWith('LATTICE_')) expect(everyName, name).toContain(name);
    }
    // The multiplexer uses the links of the transport and the gateway that run.
    expect(services.get('multiplexer')?.config['transports']).toEqual(['transport-lan', 'gateway']);
  });

  it('shares the identity file and the data through a declared volume', async () => {
    const compose = await readCompose();
    const declared = Object.keys(compose.volumes ?? {});
    for (const [name, spec] of Object.entries(compose.services)) {
      for (const { source } of (spec.volumes ?? []).map(mount)) {
        if (source.startsWith('.') || source.startsWith('/')) {
          expect(existsSync(resolve(COMPOSE_DIR, source)), `${name}: ${source}`).toBe(true);
        } else {
          expect(declared, `${name}: volume ${source}`).toContain(source);
        }
      }
    }
    const services = await latticeServices();
    const merge = services.get('merge');
    const multiplexer = services.get('multiplexer');
    const identity = String(merge?.config['identityFile']);
    expect(multiplexer?.config['identityFile']).toBe(identity);
    /** The named volume mounted over `path` in a service. */
    const volumeAt = (spec: ComposeService | undefined, path: string): string | undefined =>
      (spec?.volumes ?? [])
        .map(mount)
        .find((m) => declared.includes(m.source) && isUnder(path, m.target))?.source;
    const shared = volumeAt(merge?.spec, identity);
    expect(shared, 'identity file on a volume in merge').toBeDefined();
    expect(volumeAt(multiplexer?.spec, identity), 'the same volume in multiplexer').toBe(shared);
    expect(volumeAt(merge?.spec, String(merge?.config['data'])), 'data on a volume').toBeDefined();
  });

  it('publishes the ports the services listen on', async () => {
    const services = await latticeServices();
    const lan = services.get('transport-lan');
    expect((lan?.spec.ports ?? []).map(containerPort)).toEqual([lan?.config['port']]);
    const gateway = services.get('gateway');
    expect((gateway?.spec.ports ?? []).map(containerPort).sort()).toEqual(
      [gateway?.config['grpcPort'], gateway?.config['httpPort']].sort(),
    );
    // Reachable from outside the container, so not loopback, and therefore with an API key.
    expect(gateway?.config['host']).not.toMatch(/^(127\.|::1$|localhost$)/);
    expect(gateway?.config['apiKey']).toEqual([SHELL_ENV['LATTICE_API_KEY']]);
    expect(gateway?.config['syncEndpoint']).toBe('on');
  });

  it('points every service at the compose NATS server, which starts and allows 8 MB messages', async () => {
    const compose = await readCompose();
    const nats = compose.services['nats'];
    const conf = (nats?.volumes ?? []).map(mount).find((m) => m.target.endsWith('.conf'));
    expect(conf).toBeDefined();
    expect(nats?.command).toEqual(['-c', conf?.target]);
    const text = await readFile(resolve(COMPOSE_DIR, conf?.source ?? ''), 'utf8');
    const listen = /^listen:\s*(\S+):(\d+)\s*$/m.exec(text);
    expect(listen).not.toBeNull();
    for (const [name, { config }] of await latticeServices()) {
      const url = new URL(String(config['natsUrl']));
      expect(url.hostname, name).toBe('nats');
      expect(url.port, name).toBe(listen?.[2]);
    }
    const [client, monitor] = (await freePorts(2)) as [number, number];
    const server = await startConfiguredNats({
      dir: dir.path,
      name: 'compose',
      config: template(text, [
        ['listen: 0.0.0.0:4222', `listen: 127.0.0.1:${client}`],
        ['http: 0.0.0.0:8222', `http: 127.0.0.1:${monitor}`],
      ]),
      clientPort: client,
      monitorPort: monitor,
    });
    try {
      expect((await server.monitor<{ max_payload: number }>('/varz')).max_payload).toBe(
        8 * 1024 * 1024,
      );
    } finally {
      await server.stop();
    }
  });

  it('builds the image from deploy/docker/Dockerfile with the repository as context', async () => {
    const compose = await readCompose();
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      packageManager: string;
    };
    const images = new Set<string>();
    for (const [name, spec] of Object.entries(compose.services)) {
      if (name === 'nats') continue;
      expect(spec.build, name).toBeDefined();
      expect(resolve(COMPOSE_DIR, spec.build?.context ?? '')).toBe(REPO_ROOT);
      expect(resolve(REPO_ROOT, spec.build?.dockerfile ?? '')).toBe(
        join(DEPLOY_DIR, 'docker/Dockerfile'),
      );
      images.add(String(spec.image));
    }
    expect(images.size).toBe(1);
    const dockerfile = await readDeployFile('docker/Dockerfile');
    expect(dockerfile).toMatch(/^FROM node:20[-\w.]* AS build$/m);
    expect(dockerfile).toContain('pnpm install --frozen-lockfile && pnpm build');
    // The pnpm the repository pins.
    expect(dockerfile).toContain(`corepack prepare ${pkg.packageManager} --activate`);
    // The command the image runs exists in the repository (built by `pnpm build`).
    const entry = /^ENTRYPOINT \[.*"\/opt\/lattice\/([^"]+)"\]$/m.exec(dockerfile);
    expect(entry?.[1]).toBe('packages/cli/dist/main.js');
    expect(existsSync(join(REPO_ROOT, 'packages/cli/src/main.ts'))).toBe(true);
  });

  it('the checks catch a renamed flag, an unknown variable and a missing required variable', () => {
    expect(() =>
      loadServiceConfig('transport-lan', { argv: ['--lan-port', '4040'], env: {} }),
    ).toThrow(/lan-port/);
    expect(unknownLatticeVariables('gateway', { LATTICE_GRPC_LISTEN: '50051' })).toEqual([
      'LATTICE_GRPC_LISTEN',
    ]);
    expect(() => interpolate('${NOT_SET:?needed}', {})).toThrow(/NOT_SET is required/);
    expect(interpolate('${NOT_SET:-x}-$${y}', {})).toBe('x-${y}');
  });
});
