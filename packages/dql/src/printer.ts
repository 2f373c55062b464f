/**
 * The DQL printer: AST to canonical DQL text.
 *
 * @remarks
 * `parse(print(ast))` deep-equals `ast` for every AST the parser can produce (a property test
 * checks it). Parentheses are added only where precedence needs them; identifiers that are
 * reserved words or not plain words are quoted with backticks. Bound values that have no DQL
 * literal (binary) print as `<binary N bytes>`, which is for EXPLAIN only and does not parse.
 */
import type { Expr, Statement, CollectionRef, SelectStatement } from './ast.js';
import { RESERVED } from './parser.js';
import { isObject } from './values.js';
import type { JsonValue } from './values.js';

const PLAIN = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** An identifier as DQL text, backtick-quoted when needed. */
export function printIdentifier(name: string): string {
  if (PLAIN.test(name) && !RESERVED.has(name.toUpperCase())) return name;
  return '`' + name.replaceAll('`', '``') + '`';
}

function printFieldName(name: string): string {
  return PLAIN.test(name) ? name : '`' + name.replaceAll('`', '``') + '`';
}

/** A string as a single-quoted DQL literal. */
export function printString(s: string): string {
  let out = "'";
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch === "'") out += "\\'";
    else if (ch === '\\') out += '\\\\';
    else if (c < 0x20 || c === 0x7f) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += ch;
  }
  return out + "'";
}

function printPath(path: readonly string[]): string {
  return path.map((p, i) => (i === 0 ? printIdentifier(p) : '.' + printFieldName(p))).join('');
}

/** A value as a DQL literal (objects and arrays as constructors). */
export function printValue(v: JsonValue): string {
  if (v === null) return 'NULL';
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return printString(v);
  if (v instanceof Uint8Array) return `<binary ${v.length} bytes>`;
  if (Array.isArray(v)) return '[' + (v as readonly JsonValue[]).map(printValue).join(', ') + ']';
  if (isObject(v)) {
    return (
      '{' +
      Object.entries(v)
        .map(([k, x]) => `${printString(k)}: ${printValue(x)}`)
        .join(', ') +
      '}'
    );
  }
  return 'NULL';
}

const BINARY_LEVEL: Readonly<Record<string, number>> = {
  OR: 1,
  AND: 2,
  '=': 4,
  '!=': 4,
  '<': 4,
  '<=': 4,
  '>': 4,
  '>=': 4,
  '||': 5,
  '+': 6,
  '-': 6,
  '*': 7,
  '/': 7,
  '%': 7,
};

function level(e: Expr): number {
  switch (e.kind) {
    case 'binary':
      return BINARY_LEVEL[e.op] ?? 10;
    case 'unary':
      return e.op === 'NOT' ? 3 : 8;
    case 'in':
    case 'between':
    case 'like':
    case 'is':
      return 4;
    case 'literal':
      return typeof e.value === 'number' && (e.value < 0 || Object.is(e.value, -0)) ? 8 : 10;
    case 'field':
    case 'index':
      return 9;
    default:
      return 10;
  }
}

function at(e: Expr, min: number): string {
  const s = printExpression(e);
  return level(e) < min ? `(${s})` : s;
}

/** An expression as DQL text. */
export function printExpression(e: Expr): string {
  switch (e.kind) {
    case 'literal':
      return printValue(e.value);
    case 'missing':
      return 'MISSING';
    case 'param':
      return ':' + e.name;
    case 'ident':
      return printIdentifier(e.name);
    case 'field':
      return at(e.object, 9) + '.' + printFieldName(e.name);
    case 'index':
      return at(e.object, 9) + '[' + printExpression(e.index) + ']';
    case 'array':
      return '[' + e.items.map(printExpression).join(', ') + ']';
    case 'object':
      return (
        '{' +
        e.entries.map((x) => `${printString(x.key)}: ${printExpression(x.value)}`).join(', ') +
        '}'
      );
    case 'unary': {
      if (e.op === 'NOT') return 'NOT ' + at(e.operand, 3);
      const o = e.operand;
      const wrap = level(o) < 9 || (o.kind === 'literal' && typeof o.value === 'number');
      return '-' + (wrap ? `(${printExpression(o)})` : printExpression(o));
    }
    case 'binary': {
      const l = BINARY_LEVEL[e.op] ?? 10;
      if (l === 4) return `${at(e.left, 5)} ${e.op} ${at(e.right, 5)}`;
      return `${at(e.left, l)} ${e.op} ${at(e.right, l + 1)}`;
    }
    case 'in': {
      const not = e.not ? ' NOT' : '';
      const target =
        e.target.kind === 'list'
          ? '(' + e.target.items.map(printExpression).join(', ') + ')'
          : at(e.target.expr, 8);
      return `${at(e.operand, 5)}${not} IN ${target}`;
    }
    case 'between':
      return `${at(e.operand, 5)}${e.not ? ' NOT' : ''} BETWEEN ${at(e.low, 5)} AND ${at(e.high, 5)}`;
    case 'like':
      return `${at(e.operand, 5)}${e.not ? ' NOT' : ''} ${e.caseInsensitive ? 'ILIKE' : 'LIKE'} ${at(e.pattern, 5)}`;
    case 'is':
      return `${at(e.operand, 5)} IS${e.not ? ' NOT' : ''} ${e.test}`;
    case 'case': {
      const parts = ['CASE'];
      if (e.subject) parts.push(printExpression(e.subject));
      for (const w of e.whens)
        parts.push(`WHEN ${printExpression(w.when)} THEN ${printExpression(w.then)}`);
      if (e.else) parts.push(`ELSE ${printExpression(e.else)}`);
      parts.push('END');
      return parts.join(' ');
    }
    case 'quantified':
      return `${e.quantifier} ${printIdentifier(e.variable)} IN ${at(e.source, 5)} SATISFIES ${printExpression(e.satisfies)} END`;
    case 'call':
      if (e.star) return `${e.name}(*)`;
      return `${e.name}(${e.distinct ? 'DISTINCT ' : ''}${e.args.map(printExpression).join(', ')})`;
  }
}

function printCollection(c: CollectionRef): string {
  const name = printIdentifier(c.name);
  if (c.typedefs.length === 0) return name;
  return `COLLECTION ${name} (${c.typedefs.map((t) => `${printPath(t.path)} ${t.type}`).join(', ')})`;
}

function printSelect(s: SelectStatement): string {
  const parts = ['SELECT'];
  if (s.distinct) parts.push('DISTINCT');
  parts.push(
    s.projection
      .map((p) =>
        p.kind === 'star'
          ? '*'
          : printExpression(p.expr) +
            (p.alias === undefined ? '' : ` AS ${printIdentifier(p.alias)}`),
      )
      .join(', '),
  );
  parts.push('FROM', printCollection(s.from));
  if (s.alias !== undefined) parts.push('AS', printIdentifier(s.alias));
  if (s.useIds) {
    parts.push(
      s.useIds.kind === 'list'
        ? `USE IDS LIST ${printExpression(s.useIds.expr)}`
        : `USE IDS ${s.useIds.ids.map(printExpression).join(', ')}`,
    );
  }
  if (s.where) parts.push('WHERE', printExpression(s.where));
  if (s.groupBy.length > 0) parts.push('GROUP BY', s.groupBy.map(printExpression).join(', '));
  if (s.having) parts.push('HAVING', printExpression(s.having));
  if (s.orderBy.length > 0) {
    parts.push(
      'ORDER BY',
      s.orderBy.map((k) => `${printExpression(k.expr)} ${k.direction}`).join(', '),
    );
  }
  if (s.limit) parts.push('LIMIT', printExpression(s.limit));
  if (s.offset) parts.push('OFFSET', printExpression(s.offset));
  return parts.join(' ');
}

/** A statement as canonical DQL text. */
export function print(s: Statement): string {
  switch (s.kind) {
    case 'select':
      return printSelect(s);
    case 'insert': {
      const docs = s.documents.map((d) => `(${printExpression(d)})`).join(', ');
      const conflict =
        s.onConflict === undefined
          ? ''
          : ` ON ID CONFLICT ${s.onConflict === 'FAIL' ? 'FAIL' : s.onConflict.replace('DO_', 'DO ')}`;
      return `INSERT INTO ${printCollection(s.into)} ${s.initial ? 'INITIAL ' : ''}DOCUMENTS ${docs}${conflict}`;
    }
    case 'update': {
      const parts = ['UPDATE', printCollection(s.collection)];
      if (s.apply.length > 0) {
        parts.push(
          'APPLY',
          s.apply
            .map((a) =>
              a.op === 'RESTART'
                ? `${printPath(a.path)} RESTART${a.with === undefined ? '' : ` WITH ${printExpression(a.with)}`}`
                : `${printPath(a.path)} ${a.op} BY ${printExpression(a.by)}`,
            )
            .join(', '),
        );
      }
      if (s.set.length > 0)
        parts.push(
          'SET',
          s.set.map((x) => `${printPath(x.path)} = ${printExpression(x.value)}`).join(', '),
        );
      if (s.unset.length > 0) parts.push('UNSET', s.unset.map(printPath).join(', '));
      if (s.where) parts.push('WHERE', printExpression(s.where));
      return parts.join(' ');
    }
    case 'delete':
    case 'evict':
      return `${s.kind.toUpperCase()} FROM ${printIdentifier(s.collection)}${s.where ? ' WHERE ' + printExpression(s.where) : ''}`;
    case 'createIndex':
      return `CREATE INDEX ${s.ifNotExists ? 'IF NOT EXISTS ' : ''}${printIdentifier(s.name)} ON ${printIdentifier(s.collection)} (${printPath(s.path)})`;
    case 'dropIndex':
      return `DROP INDEX ${s.ifExists ? 'IF EXISTS ' : ''}${printIdentifier(s.name)}`;
    case 'explain':
      return `EXPLAIN ${print(s.statement)}`;
  }
}
