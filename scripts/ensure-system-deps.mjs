// Checks for the programs the test suite starts (Debian's nats-server and socat). When one is
// missing and this runs as root on a Debian-like system, it installs it with apt-get, as the
// README promises for a fresh machine; otherwise it fails with the command to run.
import { execFileSync, spawnSync } from 'node:child_process';

const needed = { 'nats-server': 'nats-server', socat: 'socat' };
const missing = Object.keys(needed).filter(
  (bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0,
);
if (missing.length === 0) process.exit(0);

const packages = missing.map((bin) => needed[bin]);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
if (!isRoot || !hasApt || process.env.LATTICE_NO_AUTO_INSTALL === '1') {
  console.error(
    `The tests need ${missing.join(' and ')}. Install with: sudo apt-get install -y ${packages.join(' ')}`,
  );
  process.exit(1);
}
console.error(`Installing ${packages.join(', ')} with apt-get (the tests start them)…`);
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
execFileSync('apt-get', ['install', '-y', '-qq', ...packages], {
  stdio: 'inherit',
  env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
});
