// Checks for the programs the test suite starts: Debian's nats-server and socat, protoc and
// Python's grpcio (a gRPC client not written in this repository), curl, openssl (a self-signed TLS
// pair), iproute2 (network namespaces, tc). When one is missing and this runs as root on a
// Debian-like system, it installs it with apt-get, as the README promises for a fresh machine;
// otherwise it fails with the command to run.
import { execFileSync, spawnSync } from 'node:child_process';

/** A check (shell command that succeeds when present) → the Debian package providing it. */
const needed = {
  'command -v nats-server': 'nats-server',
  'command -v socat': 'socat',
  'command -v protoc': 'protobuf-compiler',
  'cd / && /usr/bin/python3 -c "import grpc"': 'python3-grpcio',
  'command -v curl': 'curl',
  'command -v openssl': 'openssl',
  'command -v ip && command -v tc': 'iproute2',
  'test -x /usr/bin/systemd-analyze': 'systemd',
};
const missing = Object.keys(needed).filter(
  (check) => spawnSync('sh', ['-c', `${check} >/dev/null 2>&1`]).status !== 0,
);
if (missing.length === 0) process.exit(0);

const packages = [...new Set(missing.map((check) => needed[check]))];
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
if (!isRoot || !hasApt || process.env.LATTICE_NO_AUTO_INSTALL === '1') {
  console.error(
    `The tests need ${packages.join(', ')}. Install with: sudo apt-get install -y ${packages.join(' ')}`,
  );
  process.exit(1);
}
console.error(`Installing ${packages.join(', ')} with apt-get (the tests start them)…`);
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
execFileSync('apt-get', ['install', '-y', '-qq', ...packages], {
  stdio: 'inherit',
  env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
});
