/**
 * The `DocumentSource` contract as test cases any implementation can run
 * (`@lattice/dql/testing`): `MemorySource` runs them in this package, a store runs them over
 * its engine, so both are held to the same rules — including the unbounded `range` requests
 * that index order sends.
 *
 * @remarks
 * Framework-agnostic: {@link documentSourceContract} returns named cases whose `run` throws an
 * `Error` describing the first violation; a vitest file does
 * `for (const c of documentSourceContract(open)) it(c.name, c.run)`. Results are compared with
 * `MemorySource` over the same documents: as sequences when the source declares the order, as
 * sets otherwise. Documents compare by value ({@link valueKey}).
 */
import { parse } from './parser.js';
import { executePlan, executePlanAsync, inIndexRange, MemorySource, planQuery } from './planner.js';
import type {
  AsyncDocumentSource,
  DocumentSource,
  IndexInfo,
  IndexRange,
  IndexScanRequest,
} from './planner.js';
import type { SelectStatement } from './ast.js';
import { getField, valueAtPath, valueKey } from './values.js';
import type { Document, JsonValue, ValueType } from './values.js';

/** A source under test, holding {@link CONTRACT_DOCUMENTS} in collection `collection`. */
export interface SourceFixture {
  readonly source: DocumentSource | AsyncDocumentSource;
  close?(): Promise<void> | void;
}

/** One case of the contract. */
export interface ContractCase {
  readonly name: string;
  run(): Promise<void>;
}

/** The collection the fixture must hold the documents in. */
export const CONTRACT_COLLECTION = 'contract';

/** The indexes the fixture must have (ready) on {@link CONTRACT_COLLECTION}. */
export const CONTRACT_INDEXES: readonly IndexInfo[] = [
  { name: 'by_v', collection: CONTRACT_COLLECTION, path: ['v'] },
  { name: 'by_n_k', collection: CONTRACT_COLLECTION, path: ['n', 'k'] },
];

/** Documents with a value of every type at `v` (and none), and nested values at `n.k`. */
export const CONTRACT_DOCUMENTS: readonly Document[] = [
  { _id: 1, v: false },
  { _id: 2, v: true, n: { k: 'x' } },
  { _id: 3, v: -1.5 },
  { _id: 4, v: 0, n: { k: 2 } },
  { _id: 5, v: 7, n: { k: 'y' } },
  { _id: 6, v: new Uint8Array([1]) },
  { _id: 7, v: '' },
  { _id: 8, v: 'a', n: { k: 'x' } },
  { _id: 9, v: 'ab' },
  { _id: 10, v: 'b', n: 1 },
  { _id: 11, v: [1] },
  { _id: 12, v: [1, 2], n: { k: null } },
  { _id: 13, v: { k: 1 } },
  { _id: 14, v: null },
  { _id: 15, n: { k: 'y' } },
  { _id: 'a', v: 7 },
  { _id: 'b', v: 'a', n: { k: 2 } },
  { _id: 'c' },
];

const TYPES: readonly ValueType[] = [
  'boolean',
  'number',
  'binary',
  'string',
  'array',
  'object',
  'null',
];

const RANGES: readonly IndexRange[] = [
  { kind: 'eq', values: [7] },
  { kind: 'eq', values: [false, 0, 'a', [1]] },
  { kind: 'eq', values: ['zz'] },
  { kind: 'range', type: 'number', lower: { value: 0, inclusive: true } },
  {
    kind: 'range',
    type: 'number',
    lower: { value: -1.5, inclusive: false },
    upper: { value: 7, inclusive: true },
  },
  {
    kind: 'range',
    type: 'string',
    lower: { value: 'a', inclusive: true },
    upper: { value: 'b', inclusive: false },
  },
  { kind: 'range', type: 'string', upper: { value: 'ab', inclusive: true } },
  ...TYPES.map((type): IndexRange => ({ kind: 'range', type })),
];

async function collect(docs: Iterable<Document> | AsyncIterable<Document>): Promise<Document[]> {
  const out: Document[] = [];
  for await (const d of docs) out.push(d);
  return out;
}

function describeDocs(docs: readonly Document[]): string {
  return `[${docs.map((d) => valueKey(getField(d, '_id'))).join(', ')}]`;
}

function expectSame(
  what: string,
  got: readonly Document[],
  want: readonly Document[],
  ordered: boolean,
): void {
  const keys = (ds: readonly Document[]): string[] => {
    const ks = ds.map((d) => valueKey(d));
    return ordered ? ks : ks.sort();
  };
  const g = keys(got);
  const w = keys(want);
  if (g.length !== w.length || g.some((k, i) => k !== w[i])) {
    throw new Error(
      `${what}: got ${describeDocs(got)}, want ${describeDocs(want)}${ordered ? ' (in this order)' : ' (any order)'}`,
    );
  }
}

/** The contract's cases for the source `open` builds (called once per case). */
export function documentSourceContract(
  open: () => Promise<SourceFixture> | SourceFixture,
): ContractCase[] {
  const reference = new MemorySource();
  for (const d of CONTRACT_DOCUMENTS) reference.put(CONTRACT_COLLECTION, d);
  const withSource =
    (body: (source: DocumentSource | AsyncDocumentSource) => Promise<void>) =>
    async (): Promise<void> => {
      const fixture = await open();
      try {
        await body(fixture.source);
      } finally {
        await fixture.close?.();
      }
    };
  const c = CONTRACT_COLLECTION;
  const cases: ContractCase[] = [
    {
      name: 'scan yields every document, in ascending _id order when orderedScan',
      run: withSource(async (s) => {
        expectSame(
          'scan',
          await collect(s.scan(c)),
          [...reference.scan(c)],
          s.capabilities.orderedScan,
        );
      }),
    },
    {
      name: 'get yields the documents of existing ids and skips absent ones',
      run: withSource(async (s) => {
        const ids: JsonValue[] = [3, 'zz', 'a', 99];
        expectSame('get', await collect(s.get(c, ids)), [...reference.get(c, ids)], false);
      }),
    },
  ];
  for (const ix of CONTRACT_INDEXES) {
    for (const range of RANGES) {
      for (const direction of ['asc', 'desc'] as const) {
        const request: IndexScanRequest = {
          collection: c,
          index: ix.name,
          path: ix.path,
          range,
          direction,
        };
        cases.push({
          name: `indexScan ${ix.path.join('.')} ${JSON.stringify(range, (_, v: unknown) => (v instanceof Uint8Array ? [...v] : v))} ${direction}`,
          run: withSource(async (s) => {
            const got = await collect(s.indexScan(request));
            const want = [...reference.indexScan(request)];
            // The reference must itself agree with the definition.
            const all = CONTRACT_DOCUMENTS.filter((d) =>
              inIndexRange(valueAtPath(d, ix.path), range),
            );
            expectSame('reference', want, all, false);
            expectSame('indexScan', got, want, s.capabilities.orderedIndex);
          }),
        });
      }
    }
  }
  const queries = [
    'SELECT * FROM contract WHERE v = 7 OR n.k = 2 OR v IN (false, [1])',
    "SELECT * FROM contract WHERE (v >= 0 AND v < 8) OR n.k = 'x' OR _id = 'c'",
    'SELECT * FROM contract ORDER BY v LIMIT 100',
    'SELECT * FROM contract ORDER BY v DESC LIMIT 100',
    'SELECT * FROM contract ORDER BY n.k LIMIT 4 OFFSET 2',
    "SELECT * FROM contract WHERE v != 'zz' ORDER BY n.k DESC LIMIT 5",
  ];
  for (const text of queries) {
    cases.push({
      name: `executes ${text} with indexes as without`,
      run: withSource(async (s) => {
        const stmt = parse(text) as SelectStatement;
        const want = executePlan(planQuery(stmt), reference).items as Document[];
        const plan = planQuery(stmt, { indexes: CONTRACT_INDEXES });
        const got = (await executePlanAsync(plan, s)).items as Document[];
        expectSame(text, got, want, true);
      }),
    });
  }
  return cases;
}
