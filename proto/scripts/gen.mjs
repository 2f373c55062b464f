// Generates static protobufjs code and its TypeScript declarations from every .proto under
// lattice/. The output in generated/ is never edited by hand and never committed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'generated');
const bin = (name) => join(root, 'node_modules', '.bin', name);

function protoFiles(dir) {
  return readdirSync(dir)
    .flatMap((name) => {
      const p = join(dir, name);
      return statSync(p).isDirectory() ? protoFiles(p) : name.endsWith('.proto') ? [p] : [];
    })
    .sort();
}

const files = protoFiles(join(root, 'lattice')).map((f) => relative(root, f));
const hash = createHash('sha256');
for (const f of files) hash.update(f).update(readFileSync(join(root, f)));
const digest = hash.digest('hex');
const stamp = join(outDir, '.stamp');
if (
  existsSync(stamp) &&
  readFileSync(stamp, 'utf8') === digest &&
  existsSync(join(outDir, 'lattice.d.ts'))
) {
  process.exit(0); // contracts unchanged since the last generation
}
mkdirSync(outDir, { recursive: true });
const js = join(outDir, 'lattice.js');
execFileSync(
  bin('pbjs'),
  ['-t', 'static-module', '-w', 'es6', '--es6', '--force-number', '-o', js, ...files],
  { cwd: root, stdio: 'inherit' },
);
// protobufjs emits `import * as $protobuf from "protobufjs/minimal"`, which Node's ESM resolver
// only accepts with an explicit extension.
writeFileSync(
  js,
  readFileSync(js, 'utf8').replace(/from "protobufjs\/minimal"/g, 'from "protobufjs/minimal.js"'),
);
execFileSync(bin('pbts'), ['-o', join(outDir, 'lattice.d.ts'), js], {
  cwd: root,
  stdio: 'inherit',
});
writeFileSync(stamp, digest);
console.log(`proto: generated ${files.length} files into generated/`);
