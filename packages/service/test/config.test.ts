import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { baseConfigSchema, envName, flagName, loadConfig } from '@lattice/service';

describe('loadConfig', () => {
  const schema = baseConfigSchema.extend({
    lanPort: z.coerce.number().int().min(1).max(65535).default(4040),
  });

  it('reads flags over LATTICE_* variables over defaults', () => {
    const config = loadConfig(schema, {
      argv: ['--nats-url', 'nats://10.0.0.1:4222'],
      env: { LATTICE_NATS_URL: 'nats://ignored:1', LATTICE_LAN_PORT: '5000' },
    });
    expect(config).toEqual({
      namespace: 'default',
      natsUrl: 'nats://10.0.0.1:4222',
      logLevel: 'info',
      lanPort: 5000,
    });
    expect(flagName('natsUrl')).toBe('nats-url');
    expect(envName('natsUrl')).toBe('LATTICE_NATS_URL');
  });

  it('names the bad setting by flag and variable', () => {
    expect(() => loadConfig(schema, { argv: ['--lan-port', '70000'], env: {} })).toThrow(
      expect.objectContaining({
        code: 'SERVICE_CONFIG_INVALID',
        message: expect.stringContaining('--lan-port (LATTICE_LAN_PORT)') as unknown,
        details: expect.objectContaining({ setting: 'lanPort' }) as unknown,
      }),
    );
    expect(() => loadConfig(schema, { argv: [], env: { LATTICE_NAMESPACE: 'has.dot' } })).toThrow(
      /--namespace \(LATTICE_NAMESPACE\)/,
    );
  });

  it('refuses unknown flags, listing the known ones', () => {
    expect(() => loadConfig(schema, { argv: ['--nats', 'x'], env: {} })).toThrow(
      /known flags: .*--nats-url/,
    );
  });
});
