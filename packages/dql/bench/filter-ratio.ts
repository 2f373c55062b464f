// `pnpm exec tsx packages/dql/bench/filter-ratio.ts [rounds]`: the filter cases of
// `pnpm bench dql`, measured interleaved (hand-written, DQL, hand-written, … per round) and
// reported as the ratio of the best times, so that load from other processes on a shared machine
// hits both sides alike. All four predicates are compiled before measuring, and a second pass
// repeats the cases after all of them ran, the state of a process that has run many queries.
import { compilePredicate, parseExpression } from '@lattice/dql';
import type { Document } from '@lattice/dql';

const N = 100_000;
const ROUNDS = Number(process.argv[2] ?? 30);

const colors = ['red', 'blue', 'green', 'black', 'white'];
const docs: Document[] = Array.from({ length: N }, (_, i) => ({
  _id: `car-${i}`,
  make: `make-${i % 97}`,
  color: colors[i % colors.length] as string,
  year: 1990 + (i % 35),
  owner: { address: { city: `city-${i % 1000}` } },
}));

const cases: [string, string, (d: Document) => boolean][] = [
  ['equality', "color = 'red'", (d) => d['color'] === 'red'],
  [
    'range',
    'year >= 2000 AND year < 2010',
    (d) => typeof d['year'] === 'number' && d['year'] >= 2000 && d['year'] < 2010,
  ],
  [
    'LIKE',
    "make LIKE 'make-1%'",
    (d) => typeof d['make'] === 'string' && d['make'].startsWith('make-1'),
  ],
  [
    'nested path',
    "owner.address.city = 'city-7'",
    (d) =>
      ((d['owner'] as { address?: { city?: unknown } } | undefined)?.address?.city ?? undefined) ===
      'city-7',
  ],
];

function once(f: (d: Document) => boolean): number {
  const t = performance.now();
  if (docs.filter(f).length < 0) throw new Error('unreachable');
  return performance.now() - t;
}

const compiled = cases.map(([name, dql, hand]) => ({
  name,
  dql,
  hand,
  lattice: compilePredicate(parseExpression(dql)),
}));
for (const pass of ['first run of each', 'after all ran']) {
  console.log(`\n${pass} (${ROUNDS} interleaved rounds, best times)`);
  for (const c of compiled) {
    let hand = Infinity;
    let lattice = Infinity;
    for (let r = 0; r < ROUNDS; r++) {
      hand = Math.min(hand, once(c.hand));
      lattice = Math.min(lattice, once(c.lattice));
    }
    console.log(
      `${c.name.padEnd(12)} ${c.dql.padEnd(32)} hand ${hand.toFixed(2)} ms  dql ${lattice.toFixed(2)} ms  ratio ${(hand / lattice).toFixed(2)}×`,
    );
  }
}
