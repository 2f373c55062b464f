import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { parse, parseExpression, print, printExpression } from '@lattice/dql';
import { expr, statement } from './arbitraries.js';

describe('print → parse is the identity', () => {
  test.prop([expr], { numRuns: 400 })('expressions', (e) => {
    expect(parseExpression(printExpression(e))).toEqual(e);
  });
  test.prop([statement], { numRuns: 400 })('statements', (s) => {
    expect(parse(print(s))).toEqual(s);
  });
  it('keeps precedence, negative numbers and quoting', () => {
    for (const t of [
      '(a + b) * c',
      'a - -1',
      '-(1)',
      'NOT (a AND b) OR c',
      '`select`.`from`',
      'x IN (:arr)',
      'x IN :arr',
      "'it''s'",
      '(a = b) = c',
    ]) {
      const e = parseExpression(t);
      expect(parseExpression(printExpression(e))).toEqual(e);
    }
    expect(printExpression(parseExpression('(a + b) * c'))).toBe('(a + b) * c');
    expect(printExpression(parseExpression("'it''s'"))).toBe("'it\\'s'");
  });
  it('prints canonical statements', () => {
    expect(
      print(
        parse(
          "select distinct a as x from cars c use ids 'a' where b = 1 order by x desc limit 2 offset 1",
        ),
      ),
    ).toBe(
      "SELECT DISTINCT a AS x FROM cars AS c USE IDS 'a' WHERE b = 1 ORDER BY x DESC LIMIT 2 OFFSET 1",
    );
    expect(fc).toBeDefined();
  });
});
