// Writes generated/lattice-v1.binpb: a FileDescriptorSet (protoc --include_imports) of every
// .proto under proto/lattice/v1, which the gateway serves as gRPC server reflection.
// Run by `pnpm --filter @lattice/gateway gen`; skipped when the contracts are unchanged.
// The output is never edited by hand and never committed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoRoot = join(root, '..', '..', 'proto');
const outDir = join(root, 'generated');
const out = join(outDir, 'lattice-v1.binpb');
const stamp = join(outDir, '.stamp');

const files = readdirSync(join(protoRoot, 'lattice', 'v1'))
  .filter((f) => f.endsWith('.proto'))
  .sort()
  .map((f) => `lattice/v1/${f}`);
const hash = createHash('sha256');
for (const f of files) hash.update(f).update(readFileSync(join(protoRoot, f)));
const digest = hash.digest('hex');
if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) {
  process.exit(0); // contracts unchanged since the last generation
}
mkdirSync(outDir, { recursive: true });
try {
  execFileSync(
    'protoc',
    ['--include_imports', `--descriptor_set_out=${out}`, `-I${protoRoot}`, ...files],
    { stdio: 'inherit' },
  );
} catch (error) {
  if (error.code === 'ENOENT') {
    // No protoc (a fresh machine before `pnpm test` installed it): the gateway then starts
    // without reflection (`--reflection auto`) and says so; everything else works.
    console.warn(
      'gateway: protoc is not installed (apt-get install -y protobuf-compiler), so gRPC ' +
        'reflection is off; `pnpm test` installs it',
    );
    process.exit(0);
  }
  console.error('gateway: protoc failed building the descriptor set served as gRPC reflection');
  throw error;
}
writeFileSync(stamp, digest);
console.log(`gateway: descriptor set of ${files.length} files in generated/lattice-v1.binpb`);
