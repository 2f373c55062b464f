import { describe, expect, it } from 'vitest';
import { hasCode } from '@lattice/errors';
import {
  compileMutation,
  evaluate,
  explainStatement,
  MISSING,
  parseExpression,
  resolveUpdate,
  validateSubscription,
} from '@lattice/dql';
import type { JsonValue } from '@lattice/dql';
import { run } from './helpers.js';

const cars = [
  { _id: 'a', make: 'Volvo', year: 2001, color: 'blue', tags: ['x', 'y'], owner: { name: 'Ann' } },
  { _id: 'b', make: 'Saab', year: 1999, color: null, tags: [] },
  { _id: 'c', make: 'volvo', year: '2005', color: 'red', tags: ['y'], owner: { name: 'Bo' } },
  { _id: 'd', make: 'Audi', year: 2010, color: 'blue', tags: ['z'] },
];

type Row = [string, Record<string, JsonValue>, JsonValue[] | string];

// statement (+ args) → expected items, or the expected error code.
const table: Row[] = [
  ['SELECT * FROM cars WHERE _id = :id', { id: 'b' }, [cars[1]!]],
  ['SELECT make FROM cars WHERE year > 2000', {}, [{ make: 'Volvo' }, { make: 'Audi' }]],
  // cross-type comparison yields MISSING: '2005' is not > 2000
  [
    'SELECT _id FROM cars WHERE year >= 1999 ORDER BY year DESC',
    {},
    [{ _id: 'd' }, { _id: 'a' }, { _id: 'b' }],
  ],
  // IN :arr tests membership in the argument; IN (:arr) in a one-element list
  ['SELECT _id FROM cars WHERE make IN :m', { m: ['Saab', 'Audi'] }, [{ _id: 'b' }, { _id: 'd' }]],
  ['SELECT _id FROM cars WHERE make IN (:m)', { m: ['Saab', 'Audi'] }, []],
  ["SELECT _id FROM cars WHERE make NOT IN ('Saab', 'Audi')", {}, [{ _id: 'a' }, { _id: 'c' }]],
  ['SELECT _id FROM cars WHERE color IS NULL', {}, [{ _id: 'b' }]],
  [
    'SELECT _id FROM cars WHERE color IS NOT MISSING',
    {},
    [{ _id: 'a' }, { _id: 'b' }, { _id: 'c' }, { _id: 'd' }],
  ],
  ['SELECT _id FROM cars WHERE owner IS MISSING', {}, [{ _id: 'b' }, { _id: 'd' }]],
  ["SELECT _id FROM cars WHERE make ILIKE 'VOL%'", {}, [{ _id: 'a' }, { _id: 'c' }]],
  ["SELECT _id FROM cars WHERE make LIKE '_aab'", {}, [{ _id: 'b' }]],
  ['SELECT _id FROM cars WHERE year BETWEEN 2000 AND 2005', {}, [{ _id: 'a' }]],
  [
    "SELECT _id FROM cars WHERE ANY t IN tags SATISFIES t = 'y' END",
    {},
    [{ _id: 'a' }, { _id: 'c' }],
  ],
  [
    "SELECT _id FROM cars WHERE EVERY t IN tags SATISFIES t = 'y' END",
    {},
    [{ _id: 'b' }, { _id: 'c' }],
  ],
  [
    "SELECT owner.name AS n, owner['name'] FROM cars WHERE owner.name = 'Bo'",
    {},
    [{ n: 'Bo', name: 'Bo' }],
  ],
  ["SELECT tags[0] AS t FROM cars USE IDS 'a', 'c'", {}, [{ t: 'x' }, { t: 'y' }]],
  [
    'SELECT _id FROM cars USE IDS LIST :ids',
    { ids: ['d', 'zz', 'a'] },
    [{ _id: 'a' }, { _id: 'd' }],
  ],
  [
    'SELECT DISTINCT color FROM cars WHERE color IS NOT NULL ORDER BY color',
    {},
    [{ color: 'blue' }, { color: 'red' }],
  ],
  [
    'SELECT color, COUNT(*) AS n FROM cars GROUP BY color ORDER BY n DESC, color',
    {},
    [
      { color: 'blue', n: 2 },
      { color: 'red', n: 1 },
      { color: null, n: 1 },
    ],
  ],
  [
    'SELECT COUNT(*) AS n, SUM(year) AS s, AVG(year) AS a, MIN(make) AS lo, MAX(make) AS hi FROM cars',
    {},
    [{ n: 4, s: 6010, a: 6010 / 3, lo: 'Audi', hi: 'volvo' }],
  ],
  ["SELECT COUNT(owner) AS n FROM cars WHERE _id = 'zz'", {}, [{ n: 0 }]],
  ['SELECT color FROM cars GROUP BY color HAVING COUNT(*) > 1', {}, [{ color: 'blue' }]],
  ['SELECT _id FROM cars ORDER BY _id LIMIT 2 OFFSET 1', {}, [{ _id: 'b' }, { _id: 'c' }]],
  ['SELECT _id FROM cars ORDER BY _id LIMIT :n', { n: 1 }, [{ _id: 'a' }]],
  ["SELECT c.make FROM cars AS c WHERE c._id = 'd'", {}, [{ make: 'Audi' }]],
  ['SELECT `make` FROM `cars` WHERE `year` = 1999', {}, [{ make: 'Saab' }]],
  [
    "SELECT CASE WHEN year > 2005 THEN 'new' ELSE 'old' END AS age FROM cars USE IDS 'd'",
    {},
    [{ age: 'new' }],
  ],
  [
    "SELECT year + 1 AS y, year * 2 AS z, year / 0 AS inf FROM cars USE IDS 'a'",
    {},
    [{ y: 2002, z: 4002, inf: null }],
  ],
  ["SELECT * FROM COLLECTION cars (owner MAP, n COUNTER) WHERE make = 'Audi'", {}, [cars[3]!]],
  // errors
  ['SELECT * FROM cars WHERE make = :nope', {}, 'DQL_UNKNOWN_PARAMETER'],
  ['SELECT * FROM cars LIMIT :n', { n: -1 }, 'DQL_INVALID_PARAMETER'],
  ['SELECT * FROM cars WHERE COUNT(*) > 1', {}, 'DQL_INVALID_QUERY'],
  ['SELECT *, COUNT(*) FROM cars', {}, 'DQL_INVALID_QUERY'],
  ['SELECT nope(1) FROM cars', {}, 'DQL_UNKNOWN_FUNCTION'],
  ['SELECT lower(1, 2) FROM cars', {}, 'DQL_UNKNOWN_FUNCTION'],
  ['SELECT * FROM cars JOIN boats', {}, 'DQL_UNSUPPORTED'],
  ['SELECT * FORM cars', {}, 'DQL_SYNTAX'],
  ['SELECT * FROM cars WHERE a = "x"', {}, 'DQL_SYNTAX'],
  ["SELECT _id FROM cars WHERE regexp_like(make, '(a+)+$')", {}, 'DQL_INVALID_REGEX'],
];

describe('conformance table', () => {
  it.each(table)('%s %j', (text, args, expected) => {
    if (typeof expected === 'string') {
      let err: unknown;
      try {
        run(text, cars, args);
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, expected), String(err)).toBe(true);
    } else {
      expect(run(text, cars, args)).toEqual(expected);
    }
  });
});

// The same table with an index on every field it queries: index scans, unions (OR) and index
// order (ORDER BY … LIMIT) must not change a single result.
const everyIndex = ['make', 'year', 'color', 'tags', 'owner.name', 'v'].map((p) => ({
  name: `by_${p}`,
  collection: 'cars',
  path: p.split('.'),
}));

describe('conformance table with indexes', () => {
  it.each(table.filter((r) => typeof r[2] !== 'string'))('%s %j', (text, args, expected) => {
    expect(run(text, cars, args, everyIndex)).toEqual(expected);
  });
  it.each([
    ["SELECT _id FROM cars WHERE make = 'Saab' OR year > 2005", [{ _id: 'b' }, { _id: 'd' }]],
    [
      "SELECT _id FROM cars WHERE color = 'red' OR owner.name = 'Ann'",
      [{ _id: 'a' }, { _id: 'c' }],
    ],
    ['SELECT _id FROM cars ORDER BY year DESC LIMIT 2', [{ _id: 'c' }, { _id: 'd' }]],
    [
      'SELECT _id FROM cars ORDER BY owner.name LIMIT 3',
      [{ _id: 'a' }, { _id: 'c' }, { _id: 'b' }],
    ],
  ] as const)('%s', (text, expected) => {
    expect(run(text, cars, {}, everyIndex)).toEqual(expected);
    expect(run(text, cars)).toEqual(expected);
  });
});

describe('sort order across types', () => {
  it('false < true < numbers < binary < strings < arrays < objects < null < missing; DESC reverses', () => {
    const docs = [
      { _id: 1, v: null },
      { _id: 2, v: 'a' },
      { _id: 3, v: [1] },
      { _id: 4 },
      { _id: 5, v: true },
      { _id: 6, v: { k: 1 } },
      { _id: 7, v: 3 },
      { _id: 8, v: false },
      { _id: 9, v: new Uint8Array([1]) },
    ];
    const asc = run('SELECT _id FROM t ORDER BY v', docs).map((r) => (r as { _id: number })._id);
    expect(asc).toEqual([8, 5, 7, 9, 2, 3, 6, 1, 4]);
    const desc = run('SELECT _id FROM t ORDER BY v DESC', docs).map(
      (r) => (r as { _id: number })._id,
    );
    expect(desc).toEqual([...asc].reverse());
  });
});

describe('MISSING vs NULL and three-valued logic', () => {
  const ev = (s: string, doc = {}) => evaluate(parseExpression(s), doc);
  it('distinguishes MISSING from NULL', () => {
    expect(ev('a', { a: null })).toBe(null);
    expect(ev('a')).toBe(MISSING);
    expect(ev('a = 1')).toBe(MISSING);
    expect(ev('a = 1', { a: null })).toBe(null);
    expect(ev('a IS NULL')).toBe(MISSING);
    expect(ev('a IS MISSING')).toBe(true);
    expect(ev("1 = '1'")).toBe(MISSING);
  });
  it('AND/OR/NOT', () => {
    expect(ev('FALSE AND MISSING')).toBe(false);
    expect(ev('TRUE AND MISSING')).toBe(MISSING);
    expect(ev('TRUE AND NULL')).toBe(null);
    expect(ev('MISSING AND NULL')).toBe(MISSING);
    expect(ev('TRUE OR MISSING')).toBe(true);
    expect(ev('NULL OR MISSING')).toBe(null);
    expect(ev('FALSE OR MISSING')).toBe(MISSING);
    expect(ev('NOT NULL')).toBe(null);
    expect(ev('NOT MISSING')).toBe(MISSING);
    expect(ev('NOT FALSE')).toBe(true);
  });
  it('arithmetic, concatenation, objects and arrays', () => {
    expect(ev('1 + 2 * 3 - 4 / 2 % 3')).toBe(5);
    expect(ev('-a', { a: 2 })).toBe(-2);
    expect(ev("'a' || 'b'")).toBe('ab');
    expect(ev("1 + 'a'")).toBe(null);
    expect(ev('1 + MISSING')).toBe(MISSING);
    expect(ev("{'a': x, 'b': 1}", { x: 2 })).toEqual({ a: 2, b: 1 });
    expect(ev("{'a': x}")).toEqual({});
    expect(ev('[1, x, 2][-1]')).toBe(2);
    expect(ev("CASE x WHEN 1 THEN 'one' END", { x: 2 })).toBe(null);
  });
});

describe('mutations', () => {
  it('INSERT carries documents and the conflict mode, FAIL by default', () => {
    const i = compileMutation("INSERT INTO cars DOCUMENTS (:d), ({'_id': 'x', 'a': 1})", {
      args: { d: { _id: 'y' } },
    });
    expect(i).toMatchObject({
      kind: 'insert',
      collection: 'cars',
      conflict: 'FAIL',
      initial: false,
      documents: [{ _id: 'y' }, { _id: 'x', a: 1 }],
    });
    for (const [mode, want] of [
      ['FAIL', 'FAIL'],
      ['DO NOTHING', 'DO_NOTHING'],
      ['DO UPDATE', 'DO_UPDATE'],
      ['DO UPDATE_LOCAL_DIFF', 'DO_UPDATE_LOCAL_DIFF'],
    ]) {
      expect(
        compileMutation(`INSERT INTO c DOCUMENTS ({'_id': 1}) ON ID CONFLICT ${mode}`),
      ).toMatchObject({ conflict: want });
    }
    expect(compileMutation("INSERT INTO c INITIAL DOCUMENTS ({'_id': 1})")).toMatchObject({
      initial: true,
      conflict: 'DO_NOTHING',
    });
  });
  it('INSERT refuses non-objects and bad ids', () => {
    expect(() => compileMutation('INSERT INTO c DOCUMENTS (1)')).toThrow(
      expect.objectContaining({ code: 'DQL_INVALID_DOCUMENT' }),
    );
    expect(() => compileMutation("INSERT INTO c DOCUMENTS ({'_id': [1]})")).toThrow(
      expect.objectContaining({ code: 'DQL_INVALID_DOCUMENT' }),
    );
    expect(() =>
      compileMutation("INSERT INTO c INITIAL DOCUMENTS ({'_id': 1}) ON ID CONFLICT FAIL"),
    ).toThrow(expect.objectContaining({ code: 'DQL_INVALID_QUERY' }));
  });
  it('UPDATE compiles to APPLY/SET/UNSET with a selection plan', () => {
    const u = compileMutation(
      "UPDATE COLLECTION orders (stock COUNTER) APPLY stock INCREMENT BY :n, hits RESTART WITH 0 SET meta.a = 1, meta['b c'] = x + 1 UNSET old.k WHERE _id = 'o1'",
      { args: { n: 2 } },
    );
    expect(u).toMatchObject({
      kind: 'update',
      collection: 'orders',
      typedefs: [{ path: ['stock'], type: 'COUNTER' }],
      unset: [['old', 'k']],
    });
    if (u.kind !== 'update') throw new Error('kind');
    expect(u.selection.access).toEqual({ kind: 'ids', ids: ['o1'] });
  });
  it('SET _id is refused, array elements cannot be assigned, overlapping paths are refused', () => {
    expect(() => compileMutation('UPDATE c SET _id = 1')).toThrow(
      expect.objectContaining({ code: 'DQL_IMMUTABLE_ID' }),
    );
    expect(() => compileMutation('UPDATE c UNSET _id.x')).toThrow(
      expect.objectContaining({ code: 'DQL_IMMUTABLE_ID' }),
    );
    expect(() => compileMutation('UPDATE c SET a[0] = 1')).toThrow(
      expect.objectContaining({ code: 'DQL_INVALID_UPDATE' }),
    );
    expect(() => compileMutation('UPDATE c SET a = 1, a.b = 2')).toThrow(
      expect.objectContaining({ code: 'DQL_INVALID_UPDATE' }),
    );
    expect(() => compileMutation('UPDATE c SET a = 1 APPLY n INCREMENT BY 1')).toThrow(
      expect.objectContaining({ code: 'DQL_SYNTAX' }),
    );
  });
  it('DELETE and EVICT select with a plan', () => {
    expect(compileMutation('DELETE FROM c WHERE a = 1')).toMatchObject({
      kind: 'delete',
      collection: 'c',
    });
    expect(compileMutation('EVICT FROM c')).toMatchObject({
      kind: 'evict',
      selection: { access: { kind: 'fullScan' } },
    });
  });
});

describe('subscriptions', () => {
  it('accepts SELECT * with WHERE and arguments', () => {
    const s = validateSubscription('SELECT * FROM cars WHERE color = :c', { c: 'blue' });
    expect(s.collection).toBe('cars');
    expect(s.matches({ _id: 1, color: 'blue' })).toBe(true);
    expect(s.matches({ _id: 1 })).toBe(false);
  });
  it.each([
    ['SELECT make FROM cars', 'projection'],
    ['SELECT DISTINCT * FROM cars', 'distinct'],
    ['SELECT * FROM cars GROUP BY color', 'group_by'],
    ['DELETE FROM cars WHERE a = 1', 'statement'],
    ['SELECT * FROM cars ORDER BY a LIMIT 1', 'order_limit'],
    ['SELECT * FROM system:data_sync_info', 'system'],
  ])('refuses %s (%s)', (text, reason) => {
    expect(() => validateSubscription(text)).toThrow(
      expect.objectContaining({ code: 'DQL_INVALID_SUBSCRIPTION', details: { reason } }),
    );
  });
  it('refuses joins', () => {
    expect(() => validateSubscription('SELECT * FROM a JOIN b')).toThrow(
      expect.objectContaining({ code: 'DQL_UNSUPPORTED' }),
    );
  });
});

describe('EXPLAIN and update resolution', () => {
  it('explains SELECT and mutations', () => {
    expect(explainStatement("EXPLAIN SELECT * FROM cars WHERE _id = 'a'")).toBe(
      ['query cars', "  access: ids ['a']", '  project: *', '  order: _id ASC (sort)'].join('\n'),
    );
    expect(
      explainStatement("EXPLAIN DELETE FROM cars WHERE color = 'red'", {
        indexes: [{ name: 'ic', collection: 'cars', path: ['color'] }],
      }),
    ).toContain("access: index ic color = 'red'");
    expect(explainStatement("EXPLAIN INSERT INTO cars DOCUMENTS ({'_id': 1})")).toBe(
      'insert cars: 1 document(s), on id conflict FAIL',
    );
    expect(explainStatement('UPDATE cars APPLY n INCREMENT BY 1 SET a = 1 UNSET b')).toMatch(
      /^update cars: apply n INCREMENT, set a, unset b\n {2}query cars/,
    );
  });
  it('resolves SET values and APPLY amounts per document; SET obj = {...} keeps the object for the merge service', () => {
    const u = compileMutation(
      "UPDATE c APPLY n INCREMENT BY k * 2 SET total = total + :x, meta = {'a': 1}, gone = nothing",
      { args: { x: 5 } },
    );
    if (u.kind !== 'update') throw new Error('kind');
    expect(resolveUpdate(u, { _id: 1, k: 3, total: 10 })).toEqual({
      apply: [{ op: 'INCREMENT', path: ['n'], by: 6 }],
      set: [
        { path: ['total'], value: 15 },
        { path: ['meta'], value: { a: 1 } },
      ],
      unset: [],
    });
    expect(() => resolveUpdate(u, { _id: 1 })).toThrow(
      expect.objectContaining({ code: 'DQL_INVALID_UPDATE' }),
    );
  });
  it('refuses over-deep values', () => {
    let v: JsonValue = 1;
    for (let i = 0; i < 200; i++) v = { v };
    expect(() =>
      compileMutation('INSERT INTO c DOCUMENTS (:d)', { args: { d: { _id: 1, v } } }),
    ).toThrow(expect.objectContaining({ code: 'DQL_LIMIT' }));
  });
});
