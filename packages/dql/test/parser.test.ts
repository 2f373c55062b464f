import { describe, expect, it } from 'vitest';
import { hasCode } from '@lattice/errors';
import { fc, test } from '@fast-check/vitest';
import { parse, positionOf, print } from '@lattice/dql';
import type { SelectStatement } from '@lattice/dql';
import { statement } from './arbitraries.js';

function errorOf(
  text: string,
  limits = {},
): { code: string; details: Record<string, string>; message: string } {
  try {
    parse(text, limits);
  } catch (e) {
    if (hasCode(e)) return { code: e.code, details: { ...e.details }, message: e.message };
    throw e;
  }
  throw new Error(`parsed: ${text}`);
}

describe('parser', () => {
  it('parses every statement kind', () => {
    const kinds = [
      "SELECT DISTINCT a, b.c AS x, * FROM COLLECTION cars (meta MAP, stock COUNTER, photo ATTACHMENT, address REGISTER) AS c USE IDS 'a' WHERE x = 1 GROUP BY a HAVING COUNT(*) > 1 ORDER BY a DESC, b LIMIT 1 OFFSET 2",
      "INSERT INTO cars DOCUMENTS (:doc1), ({'_id': 'x', 'a': 1}) ON ID CONFLICT DO UPDATE_LOCAL_DIFF",
      'INSERT INTO cars INITIAL DOCUMENTS (:seed)',
      'UPDATE cars APPLY n INCREMENT BY 1, m RESTART, k RESTART WITH 5, p PN_INCREMENT BY -1 SET a = 1, b.c = :v UNSET d, e.f WHERE _id = 1',
      'DELETE FROM cars WHERE a = 1',
      'EVICT FROM cars',
      'CREATE INDEX IF NOT EXISTS ix ON cars (a.b)',
      'DROP INDEX IF EXISTS ix',
      'EXPLAIN SELECT * FROM cars',
      'SELECT * FROM system:data_sync_info;',
    ];
    for (const k of kinds) {
      const s = parse(k);
      expect(parse(print(s))).toEqual(s);
    }
    expect((parse('SELECT * FROM system:data_sync_info') as SelectStatement).from.name).toBe(
      'system:data_sync_info',
    );
  });
  it('names are case-sensitive, keywords are not', () => {
    const s = parse('select * from Cars where :Id = A') as SelectStatement;
    expect(s.from.name).toBe('Cars');
    expect(s.where).toEqual({
      kind: 'binary',
      op: '=',
      left: { kind: 'param', name: 'Id' },
      right: { kind: 'ident', name: 'A' },
    });
  });
  it('reports position, expected and found', () => {
    const e = errorOf('SELECT *\nFORM cars');
    expect(e.code).toBe('DQL_SYNTAX');
    expect(e.details).toMatchObject({
      line: '2',
      column: '1',
      expected: 'FROM',
      found: 'identifier "FORM"',
    });
    expect(e.message).toBe(
      'syntax error at line 2, column 1: expected FROM, found identifier "FORM"',
    );
    expect(errorOf('SELECT * FROM c WHERE').details).toMatchObject({
      expected: 'an expression',
      found: 'end of input',
    });
    expect(errorOf("SELECT * FROM c WHERE a = 'x").details).toMatchObject({
      found: 'end of input',
    });
    expect(errorOf('SELECT * FROM c WHERE a IS 1').details).toMatchObject({
      expected: 'NOT, NULL or MISSING',
      found: 'number 1',
    });
    expect(errorOf('UPDATE c SET _id = 1')).toMatchObject({
      code: 'DQL_IMMUTABLE_ID',
      details: { line: '1', column: '14' },
    });
    expect(errorOf('SELECT * FROM c WHERE a = 1 b')).toMatchObject({
      code: 'DQL_SYNTAX',
      details: { expected: 'end of statement' },
    });
    expect(errorOf('SELECT * FROM c WHERE nope(1)')).toMatchObject({
      code: 'DQL_UNKNOWN_FUNCTION',
      details: { name: 'nope' },
    });
  });
  it('records positions beside the tree', () => {
    const s = parse('SELECT *\n  FROM c WHERE  a = 1') as SelectStatement;
    expect(positionOf(s.where as object)).toEqual({ offset: 25, line: 2, column: 17 });
  });
  it('enforces length, token and depth limits', () => {
    expect(errorOf('SELECT * FROM c', { maxLength: 5 })).toMatchObject({
      code: 'DQL_LIMIT',
      details: { limit: 'maxLength' },
    });
    expect(errorOf('SELECT a, b, c FROM c', { maxTokens: 4 })).toMatchObject({
      code: 'DQL_LIMIT',
      details: { limit: 'maxTokens' },
    });
    expect(errorOf(`SELECT * FROM c WHERE ${'('.repeat(5000)}1${')'.repeat(5000)}`)).toMatchObject({
      code: 'DQL_LIMIT',
      details: { limit: 'maxDepth' },
    });
    expect(errorOf(`SELECT * FROM c WHERE ${'NOT '.repeat(5000)}a`)).toMatchObject({
      code: 'DQL_LIMIT',
    });
    expect(errorOf(`SELECT * FROM c WHERE ${Array(3000).fill('a').join(' + ')} = 1`)).toMatchObject(
      { code: 'DQL_LIMIT' },
    );
    expect(errorOf(`SELECT * FROM c WHERE a${'.b'.repeat(3000)} = 1`)).toMatchObject({
      code: 'DQL_LIMIT',
    });
    expect(errorOf(`SELECT * FROM c WHERE ${'['.repeat(3000)}`)).toMatchObject({
      code: 'DQL_LIMIT',
    });
  });
});

describe('fuzzing', () => {
  const check = (text: string) => {
    try {
      parse(text);
    } catch (e) {
      if (!hasCode(e) || !e.code.startsWith('DQL_')) throw e;
      // No parser internals (class or #private names, stack frames) in the message; the quoted
      // text that was found is the user's own and may hold anything.
      const own = e.message
        .replace(/found (string )?"(?:[^"\\]|\\.)*"/g, 'found <text>')
        .replace(/found identifier `(?:[^`]|``)*`/g, 'found <identifier>');
      expect(own).not.toMatch(/Parser|#|at .*\.ts/);
    }
  };
  test.prop([fc.string({ maxLength: 200 })], { numRuns: 500 })(
    'random text gives a statement or a typed error',
    check,
  );
  test.prop(
    [
      statement.map(print),
      fc.array(
        fc.tuple(
          fc.nat(),
          fc.constantFrom(
            '',
            '(',
            ')',
            "'",
            ',',
            'AND',
            ':',
            '`',
            '[',
            '{',
            '-',
            '.',
            ' ',
            'SELECT',
            '*',
          ),
        ),
        { minLength: 1, maxLength: 4 },
      ),
    ],
    { numRuns: 400 },
  )('mutated statements give a statement or a typed error', (text, edits) => {
    let t = text;
    for (const [at, ins] of edits) {
      const i = at % (t.length + 1);
      t = t.slice(0, i) + ins + t.slice(i + (ins === '' ? 1 : 0));
    }
    check(t);
  });
  it('does not mistake a # in the found text for a leaked internal (regression, seed 732490753)', () => {
    check("SELECT CASE WHEN a '#     ' END FROM c");
  });
  it('does not mistake a # in a quoted identifier for a leaked internal (regression, seed -1345001554)', () => {
    check('`#`');
  });
  it('stays fast on long inputs', () => {
    const deep =
      'SELECT * FROM c WHERE ' +
      Array.from({ length: 20000 }, (_, i) => `a${i} = ${i}`).join(' OR ');
    const wide =
      'SELECT * FROM c WHERE a IN (' +
      Array.from({ length: 20000 }, (_, i) => `'v${i}'`).join(', ') +
      ')';
    const t0 = performance.now();
    expect(() => parse(deep)).toThrow(expect.objectContaining({ code: 'DQL_LIMIT' }));
    const s = parse(wide) as SelectStatement;
    expect(s.where?.kind).toBe('in');
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(() => parse('x'.repeat(2_000_000))).toThrow(
      expect.objectContaining({ code: 'DQL_LIMIT' }),
    );
  });
});
