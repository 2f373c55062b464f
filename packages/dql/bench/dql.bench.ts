// `pnpm bench dql`: parse + plan of typical statements; filter evaluation over 100k in-memory
// documents (equality, range, LIKE, nested path) against a hand-written JavaScript filter over
// the same array (the anchor); incremental observer update against re-running the query.
import { BenchSuite } from '@lattice/bench';
import {
  compilePredicate,
  executePlan,
  LiveQuery,
  MemorySource,
  parse,
  parseExpression,
  planQuery,
} from '@lattice/dql';
import type { Document, SelectStatement } from '@lattice/dql';

const N = 100_000;

function makeDocs(): Document[] {
  const colors = ['red', 'blue', 'green', 'black', 'white'];
  return Array.from({ length: N }, (_, i) => ({
    _id: `car-${i}`,
    make: `make-${i % 97}`,
    color: colors[i % colors.length] as string,
    year: 1990 + (i % 35),
    owner: { address: { city: `city-${i % 1000}` } },
  }));
}

export default async function run(): Promise<BenchSuite> {
  const suite = new BenchSuite('dql');
  const statements = {
    select:
      'SELECT make, year FROM cars WHERE color = :c AND year > 2000 ORDER BY year DESC LIMIT 20',
    update: "UPDATE cars APPLY n INCREMENT BY 1 SET a.b = :v, c = 'x' UNSET d WHERE _id = :id",
    insert:
      "INSERT INTO cars DOCUMENTS ({'_id': 'x', 'a': 1, 'b': [1, 2, {'c': 'd'}]}) ON ID CONFLICT DO UPDATE",
  };
  const indexes = [{ name: 'by_color', collection: 'cars', path: ['color'] }];
  await suite.measure(
    'parse+plan select',
    {
      lattice: () =>
        planQuery(parse(statements.select) as SelectStatement, { args: { c: 'red' }, indexes }),
      'json-parse': () =>
        JSON.parse(
          '{"select":["make","year"],"where":{"color":"red","year":{"$gt":2000}},"order":"year","limit":20}',
        ),
    },
    { anchor: 'json-parse' },
  );
  await suite.measure(
    'parse update',
    {
      lattice: () => parse(statements.update),
      'json-parse': () =>
        JSON.parse('{"apply":{"n":1},"set":{"a.b":1,"c":"x"},"unset":["d"],"id":"x"}'),
    },
    { anchor: 'json-parse' },
  );

  const docs = makeDocs();
  const filters: [string, string, (d: Document) => boolean][] = [
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
        ((d['owner'] as { address?: { city?: unknown } } | undefined)?.address?.city ??
          undefined) === 'city-7',
    ],
  ];
  for (const [name, dql, hand] of filters) {
    const pred = compilePredicate(parseExpression(dql));
    await suite.measure(
      `filter 100k: ${name}`,
      { lattice: () => docs.filter(pred).length, 'hand-written': () => docs.filter(hand).length },
      { anchor: 'hand-written', opsPerCall: N, timeMs: 2_000 },
    );
  }

  const src = new MemorySource();
  for (const d of docs.slice(0, 10_000)) src.put('cars', d);
  const plan = planQuery(
    parse("SELECT * FROM cars WHERE color = 'red' ORDER BY year DESC LIMIT 50") as SelectStatement,
  );
  const live = new LiveQuery(plan);
  live.load(src);
  let year = 2000;
  await suite.measure(
    'observer update (10k docs, LIMIT 50)',
    {
      lattice: () => {
        const before = { _id: 'car-5', color: 'red', year };
        year = year === 2000 ? 2030 : 2000;
        return live.apply({ before, after: { _id: 'car-5', color: 'red', year } });
      },
      requery: () => executePlan(plan, src).items.length,
    },
    { anchor: 'requery' },
  );
  return suite;
}
