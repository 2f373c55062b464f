// `pnpm bench <suite> [--json FILE]`: runs `<package>/bench/<suite>.bench.ts` from every package
// and service (all suites when none is named), prints each table, and writes the rows as JSON.
import { readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchRow, BenchSuite } from '@lattice/bench';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values, positionals } = parseArgs({
  options: { json: { type: 'string' } },
  allowPositionals: true,
});

const files = ['packages', 'services'].flatMap((area) =>
  readdirSync(join(root, area)).flatMap((pkg) => {
    const dir = join(root, area, pkg, 'bench');
    return existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => f.endsWith('.bench.ts'))
          .map((f) => ({ suite: f.replace(/\.bench\.ts$/, ''), path: join(dir, f) }))
      : [];
  }),
);
const wanted =
  positionals.length === 0 ? files : files.filter((f) => positionals.includes(f.suite));
if (wanted.length === 0) {
  console.error(
    `no benchmark suite named ${positionals.join(', ')}; available: ${files.map((f) => f.suite).join(', ')}`,
  );
  process.exit(2);
}
const rows: BenchRow[] = [];
for (const file of wanted) {
  console.error(`running ${file.suite}…`);
  const module = (await import(pathToFileURL(file.path).href)) as {
    default: () => Promise<BenchSuite>;
  };
  const suite = await module.default();
  console.log(`${suite.format()}\n`);
  rows.push(...suite.rows);
}
if (values.json !== undefined) {
  writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
  console.error(`wrote ${rows.length} rows to ${values.json}`);
}
process.exit(0);
