import fc from 'fast-check';
import { RESERVED } from '@lattice/dql';
import type { Expr, OrderKey, ProjectionItem, SelectStatement, Statement } from '@lattice/dql';

const word = fc
  .stringMatching(/^[a-z_][a-z0-9_]{0,6}$/)
  .filter((w) => !RESERVED.has(w.toUpperCase()));
export const name = fc.oneof(
  { weight: 4, arbitrary: word },
  { weight: 1, arbitrary: fc.constantFrom('select', 'a b', 'x`y', 'Order', '_id2') },
);
const paramName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,5}$/);
const fieldPath = fc.array(name, { minLength: 1, maxLength: 3 }).filter((p) => p[0] !== '_id');

const literal: fc.Arbitrary<Expr> = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }).map((v) => ({ kind: 'literal' as const, value: v })),
  fc.constantFrom(0.5, -2.25, 1e21, 1.5e-7).map((v) => ({ kind: 'literal' as const, value: v })),
  fc.string({ maxLength: 6 }).map((v) => ({ kind: 'literal' as const, value: v })),
  fc.constantFrom(null, true, false).map((v) => ({ kind: 'literal' as const, value: v })),
  fc.constant({ kind: 'missing' as const }),
);

const fnNames = ['lower', 'upper', 'coalesce', 'length', 'type', 'array_length', 'abs'] as const;

/** Random expressions the parser can produce. */
export const expr: fc.Arbitrary<Expr> = fc.letrec<{ e: Expr; postfix: Expr }>((tie) => ({
  postfix: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    paramName.map((n) => ({ kind: 'param' as const, name: n })),
    name.map((n) => ({ kind: 'ident' as const, name: n })),
    fc.record({ object: tie('postfix'), name }).map((r) => ({ kind: 'field' as const, ...r })),
    fc
      .record({ object: tie('postfix'), index: tie('e') })
      .map((r) => ({ kind: 'index' as const, ...r })),
    fc.array(tie('e'), { maxLength: 3 }).map((items) => ({ kind: 'array' as const, items })),
    fc
      .record({
        name: fc.constantFrom(...fnNames),
        args: fc.array(tie('e'), { minLength: 1, maxLength: 1 }),
      })
      .map((r) => ({ kind: 'call' as const, ...r, distinct: false, star: false })),
  ),
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    literal,
    tie('postfix'),
    fc
      .array(fc.record({ key: fc.string({ maxLength: 4 }), value: tie('e') }), { maxLength: 2 })
      .map((entries) => ({ kind: 'object' as const, entries })),
    fc
      .record({ op: fc.constantFrom('NOT' as const, '-' as const), operand: tie('e') })
      .map((r) => ({ kind: 'unary' as const, ...r })),
    fc
      .record({
        op: fc.constantFrom(
          'OR',
          'AND',
          '=',
          '!=',
          '<',
          '<=',
          '>',
          '>=',
          '||',
          '+',
          '-',
          '*',
          '/',
          '%' as const,
        ),
        left: tie('e'),
        right: tie('e'),
      })
      .map((r) => ({ kind: 'binary' as const, ...r }) as Expr),
    fc
      .record({ not: fc.boolean(), operand: tie('e'), items: fc.array(tie('e'), { maxLength: 3 }) })
      .map((r) => ({
        kind: 'in' as const,
        not: r.not,
        operand: r.operand,
        target: { kind: 'list' as const, items: r.items },
      })),
    fc.record({ not: fc.boolean(), operand: tie('e'), t: tie('postfix') }).map((r) => ({
      kind: 'in' as const,
      not: r.not,
      operand: r.operand,
      target: { kind: 'expr' as const, expr: r.t },
    })),
    fc
      .record({ not: fc.boolean(), operand: tie('e'), low: tie('e'), high: tie('e') })
      .map((r) => ({ kind: 'between' as const, ...r })),
    fc
      .record({
        not: fc.boolean(),
        caseInsensitive: fc.boolean(),
        operand: tie('e'),
        pattern: tie('e'),
      })
      .map((r) => ({ kind: 'like' as const, ...r })),
    fc
      .record({
        not: fc.boolean(),
        test: fc.constantFrom('NULL' as const, 'MISSING' as const),
        operand: tie('e'),
      })
      .map((r) => ({ kind: 'is' as const, ...r })),
    fc
      .record({
        whens: fc.array(fc.record({ when: tie('e'), then: tie('e') }), {
          minLength: 1,
          maxLength: 2,
        }),
        subject: fc.option(tie('e'), { nil: undefined }),
        other: fc.option(tie('e'), { nil: undefined }),
      })
      .map((r): Expr => ({
        kind: 'case',
        whens: r.whens,
        ...(r.subject ? { subject: r.subject } : {}),
        ...(r.other ? { else: r.other } : {}),
      })),
    fc
      .record({
        quantifier: fc.constantFrom('ANY' as const, 'EVERY' as const),
        variable: name,
        source: tie('e'),
        satisfies: tie('e'),
      })
      .map((r) => ({ kind: 'quantified' as const, ...r })),
  ),
})).e;

const orderKey: fc.Arbitrary<OrderKey> = fc.record({
  expr,
  direction: fc.constantFrom('ASC' as const, 'DESC' as const),
});
const projection: fc.Arbitrary<ProjectionItem[]> = fc.oneof(
  fc.constant<ProjectionItem[]>([{ kind: 'star' }]),
  fc.array(
    fc
      .record({ expr, alias: fc.option(name, { nil: undefined }) })
      .map((r): ProjectionItem =>
        r.alias === undefined
          ? { kind: 'expr', expr: r.expr }
          : { kind: 'expr', expr: r.expr, alias: r.alias },
      ),
    { minLength: 1, maxLength: 3 },
  ),
);
const typedefs = fc.array(
  fc.record({
    path: fieldPath,
    type: fc.constantFrom(
      'MAP' as const,
      'COUNTER' as const,
      'REGISTER' as const,
      'ATTACHMENT' as const,
      'PN_COUNTER' as const,
    ),
  }),
  { maxLength: 2 },
);
const collection = fc.record({ name, typedefs });
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

export const select: fc.Arbitrary<SelectStatement> = fc
  .record({
    distinct: fc.boolean(),
    projection,
    from: collection,
    alias: opt(name),
    where: opt(expr),
    orderBy: fc.array(orderKey, { maxLength: 2 }),
    limit: opt(expr),
    offset: opt(expr),
    useIds: opt(fc.array(literal, { minLength: 1, maxLength: 2 })),
  })
  .map((r) => ({
    kind: 'select' as const,
    distinct: r.distinct,
    projection: r.projection,
    from: r.from,
    ...(r.alias === undefined ? {} : { alias: r.alias }),
    ...(r.useIds === undefined ? {} : { useIds: { kind: 'ids' as const, ids: r.useIds } }),
    ...(r.where === undefined ? {} : { where: r.where }),
    groupBy: [],
    orderBy: r.orderBy,
    ...(r.limit === undefined ? {} : { limit: r.limit }),
    ...(r.offset === undefined ? {} : { offset: r.offset }),
  }));

/** Random statements of every kind. */
export const statement: fc.Arbitrary<Statement> = fc.oneof(
  select,
  fc
    .record({
      into: collection,
      initial: fc.boolean(),
      documents: fc.array(expr, { minLength: 1, maxLength: 2 }),
      mode: fc.constantFrom(
        undefined,
        'FAIL' as const,
        'DO_NOTHING' as const,
        'DO_UPDATE' as const,
        'DO_UPDATE_LOCAL_DIFF' as const,
      ),
    })
    .map((r): Statement => ({
      kind: 'insert',
      into: r.into,
      initial: r.initial,
      documents: r.documents,
      ...(r.mode === undefined || r.initial ? {} : { onConflict: r.mode }),
    })),
  fc
    .record({
      collection,
      set: fc.array(fc.record({ path: fieldPath, value: expr }), { minLength: 1, maxLength: 2 }),
      unset: fc.array(fieldPath, { maxLength: 2 }),
      by: expr,
      where: opt(expr),
    })
    .map((r): Statement => ({
      kind: 'update',
      collection: r.collection,
      apply: [
        { op: 'INCREMENT', path: ['n'], by: r.by },
        { op: 'RESTART', path: ['m'] },
      ],
      set: r.set,
      unset: r.unset,
      ...(r.where ? { where: r.where } : {}),
    })),
  fc
    .record({
      kind: fc.constantFrom('delete' as const, 'evict' as const),
      collection: name,
      where: opt(expr),
    })
    .map((r): Statement => ({
      kind: r.kind,
      collection: r.collection,
      ...(r.where ? { where: r.where } : {}),
    })),
  fc
    .record({ name, collection: name, path: fieldPath, ifNotExists: fc.boolean() })
    .map((r): Statement => ({ kind: 'createIndex', ...r })),
  fc.record({ name, ifExists: fc.boolean() }).map((r): Statement => ({ kind: 'dropIndex', ...r })),
  select.map((s): Statement => ({ kind: 'explain', statement: s })),
);
