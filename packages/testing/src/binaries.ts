import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { LatticeTestError } from './errors.js';

/** How to install each external program the tests rely on (Debian package names). */
export const INSTALL_HINTS = {
  'nats-server': 'apt-get install -y nats-server',
  socat: 'apt-get install -y socat',
} as const;

/** A program the test helpers start. */
export type ExternalProgram = keyof typeof INSTALL_HINTS;

/**
 * The absolute path of an external program, from `PATH`.
 * @throws LatticeTestError `TESTING_MISSING_PROGRAM` naming the install command when it is absent.
 */
export function requireProgram(name: ExternalProgram): string {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory; keep looking
    }
  }
  throw new LatticeTestError(
    'TESTING_MISSING_PROGRAM',
    `${name} is not installed; the tests need it. Install it with: ${INSTALL_HINTS[name]}`,
  );
}
