// The service's bus wiring, checked the way the multiplexer consumes it: a `BusLinkDriver` on
// each side of a pty pair runs the link-driver contract suite through two transport-usb services.
import { describe, expect, it } from 'vitest';
import { LocalBus } from '@lattice/bus';
import { BusLinkDriver } from '@lattice/multiplexer';
import { runLinkDriverContractTests } from '@lattice/multiplexer/testing';
import { Subjects } from '@lattice/proto';
import { createLogger, loadConfig } from '@lattice/service';
import { socatPtyPair } from '@lattice/testing';
import { startTransportUsbService, transportUsbConfigSchema } from '../src/index.js';
import { FAST, waitFor } from './harness.js';

let run = 0;

runLinkDriverContractTests('transport-usb service over the bus', async () => {
  const pair = await socatPtyPair();
  const bus = new LocalBus();
  const logger = createLogger('silent', 'transport-usb');
  const side = async (path: string) => {
    const subjects = new Subjects(`usb-svc-${process.pid}-${run++}`);
    const driver = new BusLinkDriver({ bus, subjects, transports: ['transport-usb'] });
    await driver.ready();
    const config = transportUsbConfigSchema.parse({ ports: path, baud: '115200' });
    const service = await startTransportUsbService({ bus, config, subjects, logger }, FAST);
    return { driver, service };
  };
  const a = await side(pair.a);
  const b = await side(pair.b);
  return {
    a: a.driver,
    b: b.driver,
    open: async () => {
      await waitFor(
        () => a.service.driver.links.length === 1 && b.service.driver.links.length === 1,
        {
          what: 'ports open',
        },
      );
    },
    cut: () => pair.unplug(),
    waitFor: async (condition, what) => {
      await waitFor(condition, { what, intervalMs: 5 });
    },
    close: async () => {
      await Promise.all([a.service.stop(), b.service.stop()]);
      await Promise.all([a.driver.close(), b.driver.close()]);
      await pair.stop();
      await bus.close();
    },
  };
});

describe('transport-usb config', () => {
  it('reads ports, baud, flow control and watching from flags', () => {
    const config = loadConfig(transportUsbConfigSchema, {
      argv: ['--ports', '/dev/ttyUSB0, /dev/ttyACM0', '--baud', '921600', '--rtscts', 'true'],
      env: { LATTICE_WATCH: 'true' },
    });
    expect(config).toMatchObject({
      ports: ['/dev/ttyUSB0', '/dev/ttyACM0'],
      baud: 921_600,
      rtscts: true,
      watch: true,
      keepaliveMs: 1_000,
    });
    expect(() =>
      loadConfig(transportUsbConfigSchema, { argv: ['--baud', 'fast'], env: {} }),
    ).toThrow(expect.objectContaining({ code: 'SERVICE_CONFIG_INVALID' }) as Error);
  });
});
