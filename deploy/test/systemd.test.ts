/**
 * The systemd units of `deploy/systemd/`: accepted by `systemd-analyze verify`, ordered and
 * hardened as deploy/README.md says, and configured only with settings the services accept.
 */
import { spawnSync } from 'node:child_process';

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requireProgram, tempDir, type TempDir } from '@lattice/testing';
import {
  envNamesOf,
  loadServiceConfig,
  parseEnvFile,
  serviceSchemas,
  unknownLatticeVariables,
} from './service-config.js';
import { DEPLOY_DIR } from './support.js';

const SYSTEMD_DIR = join(DEPLOY_DIR, 'systemd');
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';

/** The Lattice services an edge gateway runs, one unit each. */
const SERVICES = [
  'merge',
  'multiplexer',
  'transport-lan',
  'transport-usb',
  'transport-ble',
  'gateway',
] as const;
const TRANSPORTS_AND_GATEWAY = ['transport-lan', 'transport-usb', 'transport-ble', 'gateway'];
const COMMAND = '/usr/bin/node /opt/lattice/packages/cli/dist/main.js';

/** A unit file: section → key → values in order (a key may repeat). */
type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string, name: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.endsWith('\\')) throw new Error(`${name}:${i + 1}: no line continuations, please`);
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      section = new Map();
      unit.set(header[1] as string, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (section === undefined || eq <= 0) throw new Error(`${name}:${i + 1}: not key=value`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

async function readUnit(file: string): Promise<Unit> {
  return parseUnit(await readFile(join(SYSTEMD_DIR, file), 'utf8'), file);
}

/** Every value of `key` in `section`, each split on spaces (systemd's list syntax). */
function list(unit: Unit, section: string, key: string): string[] {
  return (unit.get(section)?.get(key) ?? []).flatMap((v) => v.split(/\s+/).filter(Boolean));
}

/** The single value of `key`; throws when it is absent. */
function one(unit: Unit, section: string, key: string): string {
  const values = unit.get(section)?.get(key);
  if (values === undefined) throw new Error(`[${section}] has no ${key}`);
  return values[values.length - 1] as string;
}

async function readEnv(path: string): Promise<Record<string, string>> {
  return parseEnvFile(await readFile(join(SYSTEMD_DIR, path), 'utf8'));
}

/** The flags in a unit's ExecStart after `main.js <service>`. */
function execFlags(unit: Unit, service: string): string[] {
  const exec = one(unit, 'Service', 'ExecStart');
  const prefix = `${COMMAND} ${service}`;
  expect(exec === prefix || exec.startsWith(`${prefix} `), `ExecStart: ${exec}`).toBe(true);
  return exec.slice(prefix.length).split(/\s+/).filter(Boolean);
}

describe('deploy/systemd', () => {
  let dir: TempDir;
  beforeEach(async () => {
    dir = await tempDir('lattice-deploy-systemd-');
  });
  afterEach(async () => {
    await dir.remove();
  });

  /** Runs `systemd-analyze verify` on copies of the given files; returns its exit status and output. */
  async function verify(
    files: readonly string[],
  ): Promise<{ status: number | null; output: string }> {
    for (const file of files) {
      // verify checks that ExecStart's program exists: point the copies at this machine's node
      // and nats-server when they live elsewhere than on Debian (/usr/bin, /usr/sbin).
      const text = await readFile(join(SYSTEMD_DIR, file), 'utf8');
      await writeFile(
        join(dir.path, file),
        text
          .replaceAll('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `)
          .replaceAll(
            'ExecStart=/usr/sbin/nats-server ',
            `ExecStart=${requireProgram('nats-server')} `,
          ),
      );
    }
    const result = spawnSync(
      SYSTEMD_ANALYZE,
      ['verify', '--man=no', ...files.map((f) => join(dir.path, f))],
      { cwd: dir.path, encoding: 'utf8', timeout: 60_000 },
    );
    return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
  }

  async function unitFiles(): Promise<string[]> {
    return (await readdir(SYSTEMD_DIR)).filter((f) => /\.(service|target)$/.test(f)).sort();
  }

  it('ships one unit per service, the NATS server and the target', async () => {
    expect(await unitFiles()).toEqual(
      [
        'lattice.target',
        'lattice-nats.service',
        ...SERVICES.map((s) => `lattice-${s}.service`),
      ].sort(),
    );
  });

  // systemd-analyze is part of Debian's systemd package (`pnpm test` installs it).
  it('systemd-analyze verify accepts every unit with no warning', async () => {
    // The units' binaries are /usr/bin/node and /usr/sbin/nats-server (Debian's): verify checks
    // that they exist.
    const { status, output } = await verify(await unitFiles());
    expect(output).toBe('');
    expect(status).toBe(0);
  }, 60_000);

  it('systemd-analyze verify reports a misspelt setting (the check above can fail)', async () => {
    const text = await readFile(join(SYSTEMD_DIR, 'lattice-merge.service'), 'utf8');
    await writeFile(
      join(dir.path, 'lattice-broken.service'),
      text.replace('ProtectSystem=strict', 'ProtectSytem=strict'),
    );
    const result = spawnSync(
      SYSTEMD_ANALYZE,
      ['verify', '--man=no', join(dir.path, 'lattice-broken.service')],
      { cwd: dir.path, encoding: 'utf8', timeout: 60_000 },
    );
    expect(`${result.stdout}${result.stderr}`).toContain("Unknown key 'ProtectSytem'");
  }, 60_000);

  it('orders the units: NATS first, then merge and multiplexer, then transports and gateway', async () => {
    for (const service of ['merge', 'multiplexer']) {
      const unit = await readUnit(`lattice-${service}.service`);
      expect(list(unit, 'Unit', 'Requires')).toContain('lattice-nats.service');
      expect(list(unit, 'Unit', 'After')).toContain('lattice-nats.service');
    }
    for (const service of TRANSPORTS_AND_GATEWAY) {
      const unit = await readUnit(`lattice-${service}.service`);
      expect(list(unit, 'Unit', 'Requires')).toContain('lattice-multiplexer.service');
      expect(list(unit, 'Unit', 'After')).toContain('lattice-multiplexer.service');
    }
    const target = await readUnit('lattice.target');
    expect(list(target, 'Unit', 'Wants')).toEqual([
      'lattice-nats.service',
      'lattice-merge.service',
      'lattice-multiplexer.service',
    ]);
    expect(list(target, 'Install', 'WantedBy')).toEqual(['multi-user.target']);
    for (const file of (await unitFiles()).filter((f) => f.endsWith('.service'))) {
      const unit = await readUnit(file);
      expect(list(unit, 'Unit', 'PartOf'), file).toEqual(['lattice.target']);
      expect(list(unit, 'Install', 'WantedBy'), file).toEqual(['lattice.target']);
    }
  });

  it('restarts on failure with a delay and a limit, and hardens every unit', async () => {
    for (const file of (await unitFiles()).filter((f) => f.endsWith('.service'))) {
      const unit = await readUnit(file);
      const service = unit.get('Service');
      expect(service?.get('Restart'), file).toEqual(['on-failure']);
      expect(one(unit, 'Service', 'RestartSec'), file).toMatch(/^[1-9]\d*s$/);
      expect(Number(one(unit, 'Unit', 'StartLimitBurst')), file).toBeGreaterThan(1);
      expect(one(unit, 'Unit', 'StartLimitIntervalSec'), file).toMatch(/^\d+$/);
      for (const [key, value] of [
        ['NoNewPrivileges', 'yes'],
        ['ProtectSystem', 'strict'],
        ['ProtectHome', 'yes'],
        ['PrivateTmp', 'yes'],
        ['ProtectKernelModules', 'yes'],
        ['RestrictSUIDSGID', 'yes'],
      ] as const) {
        expect(service?.get(key), `${file} ${key}`).toEqual([value]);
      }
      const capabilities = list(unit, 'Service', 'CapabilityBoundingSet');
      const ambient = list(unit, 'Service', 'AmbientCapabilities');
      if (file === 'lattice-transport-ble.service') {
        expect(capabilities.sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
        expect(ambient.sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
        expect(list(unit, 'Service', 'RestrictAddressFamilies')).toContain('AF_BLUETOOTH');
      } else {
        // Present and empty: no capability at all.
        expect(service?.get('CapabilityBoundingSet'), file).toEqual(['']);
        expect(ambient, file).toEqual([]);
        expect(list(unit, 'Service', 'RestrictAddressFamilies'), file).not.toContain(
          'AF_BLUETOOTH',
        );
      }
      if (file === 'lattice-transport-usb.service') {
        expect(one(unit, 'Service', 'PrivateDevices')).toBe('no');
        expect(one(unit, 'Service', 'DevicePolicy')).toBe('closed');
        expect(unit.get('Service')?.get('DeviceAllow')).toEqual([
          'char-ttyUSB rw',
          'char-ttyACM rw',
        ]);
        expect(list(unit, 'Service', 'SupplementaryGroups')).toEqual(['dialout']);
      } else {
        expect(one(unit, 'Service', 'PrivateDevices'), file).toBe('yes');
        expect(unit.get('Service')?.get('DeviceAllow'), file).toBeUndefined();
      }
    }
  });

  it('runs each service as the lattice user with the shared env file and its own', async () => {
    for (const service of SERVICES) {
      const unit = await readUnit(`lattice-${service}.service`);
      expect(one(unit, 'Service', 'User')).toBe('lattice');
      expect(unit.get('Service')?.get('EnvironmentFile')).toEqual([
        '/etc/lattice/lattice.env',
        `-/etc/lattice/${service}.env`,
      ]);
      execFlags(unit, service);
    }
    const nats = await readUnit('lattice-nats.service');
    expect(one(nats, 'Service', 'ExecStart')).toBe(
      '/usr/sbin/nats-server -c /etc/lattice/nats-server.conf',
    );
    expect(one(nats, 'Service', 'DynamicUser')).toBe('yes');
    const sysusers = await readFile(join(SYSTEMD_DIR, 'lattice.sysusers.conf'), 'utf8');
    expect(sysusers).toMatch(/^u lattice - .* \/var\/lib\/lattice /m);
  });

  it('sets only flags and LATTICE_* variables the services accept, with valid values', async () => {
    const common = await readEnv('lattice.env.example');
    // Each shared variable is read by at least one service.
    const everyName = new Set([...serviceSchemas().keys()].flatMap((s) => [...envNamesOf(s)]));
    for (const name of Object.keys(common)) {
      if (name.startsWith('LATTICE_')) expect(everyName, name).toContain(name);
    }
    const configs = new Map<string, Record<string, unknown>>();
    for (const service of SERVICES) {
      const unit = await readUnit(`lattice-${service}.service`);
      const own = await readEnv(`env/${service}.env.example`);
      expect(unknownLatticeVariables(service, own), `env/${service}.env.example`).toEqual([]);
      configs.set(
        service,
        loadServiceConfig(service, { argv: execFlags(unit, service), env: { ...common, ...own } }),
      );
    }
    // Merge and multiplexer share one identity file, inside the folder their units may write.
    const merge = configs.get('merge') ?? {};
    const multiplexer = configs.get('multiplexer') ?? {};
    expect(merge['identityFile']).toBe(multiplexer['identityFile']);
    for (const service of ['merge', 'multiplexer']) {
      const unit = await readUnit(`lattice-${service}.service`);
      const writable = list(unit, 'Service', 'ReadWritePaths');
      expect(writable).toEqual(['/var/lib/lattice']);
      expect(String(configs.get(service)?.['identityFile'])).toMatch(/^\/var\/lib\/lattice\//);
    }
    expect(String(merge['data'])).toMatch(/^\/var\/lib\/lattice(\/|$)/);
    expect(merge['engine']).toBe('rocksdb');
    // The multiplexer uses the links of every transport unit and of the gateway.
    expect(multiplexer['transports']).toEqual(TRANSPORTS_AND_GATEWAY);
    // Every service talks to the local NATS server of lattice-nats.service.
    for (const [service, config] of configs) {
      expect(config['natsUrl'], service).toBe('nats://127.0.0.1:4222');
    }
  });

  it('the settings check catches a renamed variable and a bad value', () => {
    expect(unknownLatticeVariables('merge', { LATTICE_STORAGE_ENGINE: 'rocksdb' })).toEqual([
      'LATTICE_STORAGE_ENGINE',
    ]);
    expect(() =>
      loadServiceConfig('transport-lan', { argv: ['--listen-port', '4040'], env: {} }),
    ).toThrow(/listen-port/);
    expect(() =>
      loadServiceConfig('transport-ble', { argv: [], env: { LATTICE_BLE_ROLES: 'observer' } }),
    ).toThrow(/--ble-roles/);
  });
});
