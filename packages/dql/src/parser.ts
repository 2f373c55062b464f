/**
 * The DQL parser: a hand-written recursive-descent parser from tokens to the AST.
 *
 * @remarks
 * Hand-written for error quality (every failure names the token found, what would have been
 * valid there, and its line and column) and for speed (one pass, no backtracking, no generated
 * tables). Limits: input length and token count (checked by the lexer), and nesting depth.
 * Semantic checks that need positions also live here: unknown functions and arities, aggregates
 * where none are allowed, `SET _id`, and assignment to array elements.
 */
import { AGGREGATES, containsAggregate } from './ast.js';
import type {
  BinaryOp,
  ApplyOp,
  CollectionRef,
  ConflictMode,
  Expr,
  ExplainableStatement,
  FieldType,
  OrderKey,
  ProjectionItem,
  SelectStatement,
  SetItem,
  Statement,
  TypeDef,
  UseIds,
} from './ast.js';
import { dqlError, positionDetails } from './errors.js';
import type { SourcePosition } from './errors.js';
import { AGGREGATE_ARITY, FUNCTIONS } from './functions.js';
import { DEFAULT_PARSE_LIMITS, describeText, tokenize } from './lexer.js';
import type { ParseLimits, Token } from './lexer.js';

/** Words that cannot be bare identifiers (quote them with backticks). */
export const RESERVED: ReadonlySet<string> = new Set([
  'SELECT',
  'DISTINCT',
  'FROM',
  'WHERE',
  'GROUP',
  'BY',
  'HAVING',
  'ORDER',
  'LIMIT',
  'OFFSET',
  'AS',
  'ASC',
  'DESC',
  'USE',
  'AND',
  'OR',
  'NOT',
  'IN',
  'IS',
  'NULL',
  'MISSING',
  'TRUE',
  'FALSE',
  'BETWEEN',
  'LIKE',
  'ILIKE',
  'CASE',
  'WHEN',
  'THEN',
  'ELSE',
  'END',
  'ANY',
  'EVERY',
  'SATISFIES',
  'INSERT',
  'INTO',
  'UPDATE',
  'SET',
  'UNSET',
  'APPLY',
  'DELETE',
  'EVICT',
  'CREATE',
  'DROP',
  'EXPLAIN',
  'ON',
  'JOIN',
  'UNION',
  'COLLECTION',
  'VALUES',
]);

const FIELD_TYPES: ReadonlySet<string> = new Set([
  'MAP',
  'REGISTER',
  'COUNTER',
  'PN_COUNTER',
  'ATTACHMENT',
]);

const positions = new WeakMap<object, SourcePosition>();

/** Where a node produced by {@link parse} started in the text, if known. */
export function positionOf(node: object): SourcePosition | undefined {
  return positions.get(node);
}

/** Parses one DQL statement (an optional trailing `;` is allowed). */
export function parse(text: string, limits: Partial<ParseLimits> = {}): Statement {
  if (typeof text !== 'string') throw new TypeError('parse: text must be a string');
  const full: ParseLimits = { ...DEFAULT_PARSE_LIMITS, ...limits };
  return new Parser(tokenize(text, full), full).statement();
}

/** Parses one expression (for tests and tools). */
export function parseExpression(text: string, limits: Partial<ParseLimits> = {}): Expr {
  const full: ParseLimits = { ...DEFAULT_PARSE_LIMITS, ...limits };
  const p = new Parser(tokenize(text, full), full);
  const e = p.expression();
  p.end();
  return e;
}

function describe(t: Token): string {
  switch (t.kind) {
    case 'eof':
      return 'end of input';
    case 'word':
      return RESERVED.has(t.text.toUpperCase())
        ? t.text.toUpperCase()
        : `identifier ${describeText(t.text)}`;
    case 'quoted':
      return `identifier \`${t.text.slice(0, 24)}\``;
    case 'string':
      return `string ${describeText(t.text)}`;
    case 'number':
      return `number ${t.text}`;
    case 'param':
      return `parameter :${t.text}`;
    case 'op':
      return `'${t.text}'`;
  }
}

class Parser {
  readonly #tokens: Token[];
  readonly #limits: ParseLimits;
  #i = 0;
  #depth = 0;

  constructor(tokens: Token[], limits: ParseLimits) {
    this.#tokens = tokens;
    this.#limits = limits;
  }

  // --- token helpers ---

  get #t(): Token {
    return this.#tokens[this.#i] ?? (this.#tokens[this.#tokens.length - 1] as Token);
  }
  #peek(k = 1): Token {
    return this.#tokens[this.#i + k] ?? (this.#tokens[this.#tokens.length - 1] as Token);
  }
  #next(): Token {
    const t = this.#t;
    if (t.kind !== 'eof') this.#i++;
    return t;
  }
  #isWord(w: string, t: Token = this.#t): boolean {
    return t.kind === 'word' && t.text.toUpperCase() === w;
  }
  #isOp(op: string, t: Token = this.#t): boolean {
    return t.kind === 'op' && t.text === op;
  }
  #acceptWord(w: string): boolean {
    if (!this.#isWord(w)) return false;
    this.#i++;
    return true;
  }
  #acceptOp(op: string): boolean {
    if (!this.#isOp(op)) return false;
    this.#i++;
    return true;
  }
  #fail(expected: string, t: Token = this.#t): never {
    const found = describe(t);
    throw dqlError(
      'DQL_SYNTAX',
      `syntax error at line ${t.start.line}, column ${t.start.column}: expected ${expected}, found ${found}`,
      { ...positionDetails(t.start), expected, found },
    );
  }
  #semantic(
    code:
      | 'DQL_INVALID_QUERY'
      | 'DQL_IMMUTABLE_ID'
      | 'DQL_INVALID_UPDATE'
      | 'DQL_UNKNOWN_FUNCTION'
      | 'DQL_UNSUPPORTED',
    message: string,
    at: SourcePosition,
    extra: Record<string, string> = {},
  ): never {
    throw dqlError(code, `${message} (line ${at.line}, column ${at.column})`, {
      ...positionDetails(at),
      ...extra,
    });
  }
  #expectWord(w: string): Token {
    if (!this.#isWord(w)) this.#fail(w);
    return this.#next();
  }
  #expectOp(op: string): Token {
    if (!this.#isOp(op)) this.#fail(`'${op}'`);
    return this.#next();
  }
  #enter(): void {
    if (++this.#depth > this.#limits.maxDepth) this.#tooDeep();
  }
  #tooDeep(): never {
    throw dqlError('DQL_LIMIT', `expression nested deeper than ${this.#limits.maxDepth}`, {
      limit: 'maxDepth',
      max: String(this.#limits.maxDepth),
      ...positionDetails(this.#t.start),
    });
  }
  #at<T extends object>(node: T, pos: SourcePosition): T {
    positions.set(node, pos);
    return node;
  }

  /** An identifier: a non-reserved word or a backtick-quoted name. */
  #identifier(what = 'an identifier'): string {
    const t = this.#t;
    if (t.kind === 'quoted' || (t.kind === 'word' && !RESERVED.has(t.text.toUpperCase()))) {
      this.#i++;
      return t.text;
    }
    return this.#fail(what);
  }

  end(): void {
    this.#acceptOp(';');
    if (this.#t.kind !== 'eof') this.#fail('end of statement');
  }

  // --- statements ---

  statement(): Statement {
    const s = this.#statementBody(true);
    this.end();
    return s;
  }

  #statementBody(allowExplain: boolean): Statement {
    const t = this.#t;
    if (this.#isWord('SELECT')) return this.#select();
    if (this.#isWord('INSERT')) return this.#insert();
    if (this.#isWord('UPDATE')) return this.#update();
    if (this.#isWord('DELETE') || this.#isWord('EVICT')) return this.#remove();
    if (this.#isWord('CREATE')) return this.#createIndex();
    if (this.#isWord('DROP')) return this.#dropIndex();
    if (allowExplain && this.#isWord('EXPLAIN')) {
      this.#next();
      const inner = this.#statementBody(false);
      if (inner.kind === 'createIndex' || inner.kind === 'dropIndex' || inner.kind === 'explain') {
        this.#semantic(
          'DQL_UNSUPPORTED',
          'EXPLAIN applies to SELECT, INSERT, UPDATE, DELETE and EVICT',
          t.start,
        );
      }
      return { kind: 'explain', statement: inner as ExplainableStatement };
    }
    return this.#fail(
      allowExplain
        ? 'a statement (SELECT, INSERT, UPDATE, DELETE, EVICT, CREATE, DROP, EXPLAIN)'
        : 'SELECT, INSERT, UPDATE, DELETE or EVICT',
    );
  }

  #collectionName(): string {
    const t = this.#t;
    const name = this.#identifier('a collection name');
    // `system:data_sync_info`: a word directly followed by a `:name` token.
    const p = this.#t;
    if (t.kind === 'word' && p.kind === 'param' && p.start.offset === t.end) {
      this.#i++;
      return `${name}:${p.text}`;
    }
    return name;
  }

  #collectionRef(): CollectionRef {
    this.#acceptWord('COLLECTION');
    const name = this.#collectionName();
    const typedefs: TypeDef[] = [];
    if (this.#acceptOp('(')) {
      do {
        const path = this.#plainPath();
        const tt = this.#t;
        const ty = tt.kind === 'word' ? tt.text.toUpperCase() : '';
        if (!FIELD_TYPES.has(ty))
          this.#fail('a type (MAP, REGISTER, COUNTER, PN_COUNTER, ATTACHMENT)');
        this.#next();
        typedefs.push({ path, type: ty as FieldType });
      } while (this.#acceptOp(','));
      this.#expectOp(')');
    }
    return { name, typedefs };
  }

  /** `a.b['c']` as field names; array indexes are refused. */
  #plainPath(): string[] {
    const path = [this.#identifier('a field name')];
    for (;;) {
      if (this.#acceptOp('.')) {
        path.push(this.#fieldName());
      } else if (this.#isOp('[')) {
        const open = this.#next();
        const t = this.#t;
        if (t.kind === 'string') {
          this.#next();
          path.push(t.text);
          this.#expectOp(']');
        } else if (t.kind === 'number') {
          this.#semantic(
            'DQL_INVALID_UPDATE',
            'array elements cannot be addressed here: an array is one value, assign it whole',
            open.start,
            { path: path.join('.') },
          );
        } else {
          this.#fail('a quoted field name');
        }
      } else {
        return path;
      }
    }
  }

  #fieldName(): string {
    const t = this.#t;
    if (t.kind === 'word' || t.kind === 'quoted') {
      this.#i++;
      return t.text;
    }
    return this.#fail('a field name');
  }

  #select(): SelectStatement {
    this.#expectWord('SELECT');
    const distinct = this.#acceptWord('DISTINCT');
    const projection: ProjectionItem[] = [];
    do {
      if (this.#acceptOp('*')) {
        projection.push({ kind: 'star' });
        continue;
      }
      const expr = this.expression();
      let alias: string | undefined;
      if (this.#acceptWord('AS')) alias = this.#identifier('an alias');
      else if (
        this.#t.kind === 'quoted' ||
        (this.#t.kind === 'word' && !RESERVED.has(this.#t.text.toUpperCase()))
      )
        alias = this.#identifier();
      projection.push(alias === undefined ? { kind: 'expr', expr } : { kind: 'expr', expr, alias });
    } while (this.#acceptOp(','));
    this.#expectWord('FROM');
    const from = this.#collectionRef();
    let alias: string | undefined;
    if (this.#acceptWord('AS')) alias = this.#identifier('an alias');
    else if (
      this.#t.kind === 'quoted' ||
      (this.#t.kind === 'word' && !RESERVED.has(this.#t.text.toUpperCase()))
    )
      alias = this.#identifier();
    if (this.#isWord('JOIN') || this.#isOp(',')) {
      this.#semantic(
        'DQL_UNSUPPORTED',
        'joins are not supported: a statement reads one collection',
        this.#t.start,
      );
    }
    let useIds: UseIds | undefined;
    if (this.#acceptWord('USE')) {
      if (!this.#isWord('IDS')) this.#fail('IDS');
      this.#next();
      if (this.#isWord('LIST')) {
        this.#next();
        useIds = { kind: 'list', expr: this.#noAggregate(this.expression(), 'USE IDS') };
      } else {
        const ids: Expr[] = [];
        do ids.push(this.#noAggregate(this.expression(), 'USE IDS'));
        while (this.#acceptOp(','));
        useIds = { kind: 'ids', ids };
      }
    }
    let where: Expr | undefined;
    if (this.#acceptWord('WHERE')) where = this.#noAggregate(this.expression(), 'WHERE');
    const groupBy: Expr[] = [];
    if (this.#acceptWord('GROUP')) {
      this.#expectWord('BY');
      do groupBy.push(this.#noAggregate(this.expression(), 'GROUP BY'));
      while (this.#acceptOp(','));
    }
    let having: Expr | undefined;
    if (this.#acceptWord('HAVING')) having = this.expression();
    const orderBy: OrderKey[] = [];
    if (this.#acceptWord('ORDER')) {
      this.#expectWord('BY');
      do {
        const expr = this.expression();
        let direction: 'ASC' | 'DESC' = 'ASC';
        if (this.#acceptWord('DESC')) direction = 'DESC';
        else this.#acceptWord('ASC');
        orderBy.push({ expr, direction });
      } while (this.#acceptOp(','));
    }
    let limit: Expr | undefined;
    let offset: Expr | undefined;
    if (this.#acceptWord('LIMIT')) limit = this.#noAggregate(this.expression(), 'LIMIT');
    if (this.#acceptWord('OFFSET')) offset = this.#noAggregate(this.expression(), 'OFFSET');
    if (this.#isWord('UNION'))
      this.#semantic('DQL_UNSUPPORTED', 'UNION is not supported', this.#t.start);
    return {
      kind: 'select',
      distinct,
      projection,
      from,
      ...(alias === undefined ? {} : { alias }),
      ...(useIds === undefined ? {} : { useIds }),
      ...(where === undefined ? {} : { where }),
      groupBy,
      ...(having === undefined ? {} : { having }),
      orderBy,
      ...(limit === undefined ? {} : { limit }),
      ...(offset === undefined ? {} : { offset }),
    };
  }

  #noAggregate(e: Expr, clause: string): Expr {
    if (containsAggregate(e)) {
      this.#semantic(
        'DQL_INVALID_QUERY',
        `aggregate functions are not allowed in ${clause}`,
        positionOf(e) ?? this.#t.start,
        { clause },
      );
    }
    return e;
  }

  #insert(): Statement {
    this.#expectWord('INSERT');
    this.#expectWord('INTO');
    const into = this.#collectionRef();
    const initialTok = this.#t;
    const initial = this.#acceptWord('INITIAL');
    if (!this.#isWord('DOCUMENTS'))
      this.#fail(initial ? 'DOCUMENTS' : 'DOCUMENTS or INITIAL DOCUMENTS');
    this.#next();
    const documents: Expr[] = [];
    do {
      this.#expectOp('(');
      documents.push(this.#noAggregate(this.expression(), 'DOCUMENTS'));
      this.#expectOp(')');
    } while (this.#acceptOp(','));
    let onConflict: ConflictMode | undefined;
    if (this.#isWord('ON')) {
      if (initial)
        this.#semantic(
          'DQL_INVALID_QUERY',
          'INITIAL DOCUMENTS never override existing data and take no ON ID CONFLICT',
          initialTok.start,
        );
      this.#next();
      if (!this.#isWord('ID')) this.#fail('ID');
      this.#next();
      if (!this.#isWord('CONFLICT')) this.#fail('CONFLICT');
      this.#next();
      if (this.#isWord('FAIL')) {
        this.#next();
        onConflict = 'FAIL';
      } else if (this.#isWord('DO')) {
        this.#next();
        if (this.#isWord('NOTHING')) onConflict = 'DO_NOTHING';
        else if (this.#isWord('UPDATE')) onConflict = 'DO_UPDATE';
        else if (this.#isWord('UPDATE_LOCAL_DIFF')) onConflict = 'DO_UPDATE_LOCAL_DIFF';
        else this.#fail('NOTHING, UPDATE or UPDATE_LOCAL_DIFF');
        this.#next();
      } else {
        this.#fail('FAIL or DO');
      }
    }
    return {
      kind: 'insert',
      into,
      initial,
      documents,
      ...(onConflict === undefined ? {} : { onConflict }),
    };
  }

  #mutablePath(): string[] {
    const t = this.#t;
    const path = this.#plainPath();
    if (path[0] === '_id') {
      this.#semantic('DQL_IMMUTABLE_ID', 'the _id of a document cannot be changed', t.start, {
        path: path.join('.'),
      });
    }
    return path;
  }

  #update(): Statement {
    this.#expectWord('UPDATE');
    const collection = this.#collectionRef();
    const apply: ApplyOp[] = [];
    const set: SetItem[] = [];
    const unset: string[][] = [];
    if (this.#acceptWord('APPLY')) {
      do {
        const path = this.#mutablePath();
        if (this.#isWord('INCREMENT') || this.#isWord('PN_INCREMENT')) {
          const op = this.#next().text.toUpperCase() as 'INCREMENT' | 'PN_INCREMENT';
          this.#expectWord('BY');
          apply.push({ op, path, by: this.#noAggregate(this.expression(), 'APPLY') });
        } else if (this.#isWord('RESTART')) {
          this.#next();
          if (this.#isWord('WITH')) {
            this.#next();
            apply.push({
              op: 'RESTART',
              path,
              with: this.#noAggregate(this.expression(), 'APPLY'),
            });
          } else {
            apply.push({ op: 'RESTART', path });
          }
        } else {
          this.#fail('INCREMENT, RESTART or PN_INCREMENT');
        }
      } while (this.#acceptOp(','));
    }
    if (this.#acceptWord('SET')) {
      do {
        const path = this.#mutablePath();
        this.#expectOp('=');
        set.push({ path, value: this.#noAggregate(this.expression(), 'SET') });
      } while (this.#acceptOp(','));
    }
    if (this.#acceptWord('UNSET')) {
      do unset.push(this.#mutablePath());
      while (this.#acceptOp(','));
    }
    if (apply.length + set.length + unset.length === 0) this.#fail('APPLY, SET or UNSET');
    let where: Expr | undefined;
    if (this.#acceptWord('WHERE')) where = this.#noAggregate(this.expression(), 'WHERE');
    else if (this.#isWord('SET') || this.#isWord('APPLY') || this.#isWord('UNSET')) {
      this.#fail('WHERE or end of statement (UPDATE clauses come in the order APPLY, SET, UNSET)');
    }
    return {
      kind: 'update',
      collection,
      apply,
      set,
      unset,
      ...(where === undefined ? {} : { where }),
    };
  }

  #remove(): Statement {
    const kind = this.#next().text.toUpperCase() === 'DELETE' ? 'delete' : 'evict';
    this.#expectWord('FROM');
    this.#acceptWord('COLLECTION');
    const collection = this.#collectionName();
    let where: Expr | undefined;
    if (this.#acceptWord('WHERE')) where = this.#noAggregate(this.expression(), 'WHERE');
    return { kind, collection, ...(where === undefined ? {} : { where }) };
  }

  #createIndex(): Statement {
    this.#expectWord('CREATE');
    if (!this.#isWord('INDEX')) this.#fail('INDEX');
    this.#next();
    let ifNotExists = false;
    if (this.#isWord('IF')) {
      this.#next();
      this.#expectWord('NOT');
      if (!this.#isWord('EXISTS')) this.#fail('EXISTS');
      this.#next();
      ifNotExists = true;
    }
    const name = this.#identifier('an index name');
    this.#expectWord('ON');
    this.#acceptWord('COLLECTION');
    const collection = this.#collectionName();
    this.#expectOp('(');
    const path = this.#plainPath();
    this.#expectOp(')');
    return { kind: 'createIndex', name, collection, path, ifNotExists };
  }

  #dropIndex(): Statement {
    this.#expectWord('DROP');
    if (!this.#isWord('INDEX')) this.#fail('INDEX');
    this.#next();
    let ifExists = false;
    if (this.#isWord('IF')) {
      this.#next();
      if (!this.#isWord('EXISTS')) this.#fail('EXISTS');
      this.#next();
      ifExists = true;
    }
    const name = this.#identifier('an index name');
    return { kind: 'dropIndex', name, ifExists };
  }

  // --- expressions, lowest precedence first ---

  expression(): Expr {
    this.#enter();
    const e = this.#or();
    this.#depth--;
    return e;
  }

  #chain(loops: number): void {
    if (this.#depth + loops > this.#limits.maxDepth) this.#tooDeep();
  }

  /**
   * One left-associative precedence level: `operand (op operand)*`, where `takeOp` consumes and
   * returns the next operator of this level, or undefined. Long chains count against the depth limit.
   */
  #leftAssociative(operand: () => Expr, takeOp: () => BinaryOp | undefined): Expr {
    const start = this.#t.start;
    let left = operand();
    let n = 0;
    for (let op = takeOp(); op !== undefined; op = takeOp()) {
      this.#chain(++n);
      left = this.#at({ kind: 'binary', op, left, right: operand() }, start);
    }
    return left;
  }

  #or(): Expr {
    return this.#leftAssociative(
      () => this.#and(),
      () => (this.#acceptWord('OR') ? 'OR' : undefined),
    );
  }

  #and(): Expr {
    return this.#leftAssociative(
      () => this.#not(),
      () => (this.#acceptWord('AND') ? 'AND' : undefined),
    );
  }

  #not(): Expr {
    const start = this.#t.start;
    if (this.#acceptWord('NOT')) {
      this.#enter();
      const operand = this.#not();
      this.#depth--;
      return this.#at({ kind: 'unary', op: 'NOT', operand }, start);
    }
    return this.#comparison();
  }

  #comparison(): Expr {
    const start = this.#t.start;
    const left = this.#concat();
    const t = this.#t;
    if (t.kind === 'op') {
      const map: Record<string, '=' | '!=' | '<' | '<=' | '>' | '>='> = {
        '=': '=',
        '==': '=',
        '!=': '!=',
        '<>': '!=',
        '<': '<',
        '<=': '<=',
        '>': '>',
        '>=': '>=',
      };
      const op = map[t.text];
      if (op !== undefined) {
        this.#next();
        return this.#at({ kind: 'binary', op, left, right: this.#concat() }, start);
      }
      return left;
    }
    if (this.#isWord('IS')) {
      this.#next();
      const not = this.#acceptWord('NOT');
      let test: 'NULL' | 'MISSING';
      if (this.#acceptWord('NULL')) test = 'NULL';
      else if (this.#acceptWord('MISSING')) test = 'MISSING';
      else return this.#fail(not ? 'NULL or MISSING' : 'NOT, NULL or MISSING');
      return this.#at({ kind: 'is', not, test, operand: left }, start);
    }
    let not = false;
    if (
      this.#isWord('NOT') &&
      (this.#isWord('IN', this.#peek()) ||
        this.#isWord('LIKE', this.#peek()) ||
        this.#isWord('ILIKE', this.#peek()) ||
        this.#isWord('BETWEEN', this.#peek()))
    ) {
      this.#next();
      not = true;
    }
    if (this.#acceptWord('IN')) {
      if (this.#isOp('(')) {
        this.#next();
        const items: Expr[] = [];
        if (!this.#isOp(')')) {
          do items.push(this.expression());
          while (this.#acceptOp(','));
        }
        this.#expectOp(')');
        return this.#at({ kind: 'in', not, operand: left, target: { kind: 'list', items } }, start);
      }
      return this.#at(
        { kind: 'in', not, operand: left, target: { kind: 'expr', expr: this.#unary() } },
        start,
      );
    }
    if (this.#isWord('LIKE') || this.#isWord('ILIKE')) {
      const caseInsensitive = this.#next().text.toUpperCase() === 'ILIKE';
      return this.#at(
        { kind: 'like', not, caseInsensitive, operand: left, pattern: this.#concat() },
        start,
      );
    }
    if (this.#acceptWord('BETWEEN')) {
      const low = this.#concat();
      this.#expectWord('AND');
      const high = this.#concat();
      return this.#at({ kind: 'between', not, operand: left, low, high }, start);
    }
    if (not) this.#fail('IN, LIKE, ILIKE or BETWEEN');
    return left;
  }

  #concat(): Expr {
    return this.#leftAssociative(
      () => this.#additive(),
      () => (this.#acceptOp('||') ? '||' : undefined),
    );
  }

  #additive(): Expr {
    return this.#leftAssociative(
      () => this.#multiplicative(),
      () => (this.#isOp('+') || this.#isOp('-') ? (this.#next().text as '+' | '-') : undefined),
    );
  }

  #multiplicative(): Expr {
    return this.#leftAssociative(
      () => this.#unary(),
      () =>
        this.#isOp('*') || this.#isOp('/') || this.#isOp('%')
          ? (this.#next().text as '*' | '/' | '%')
          : undefined,
    );
  }

  #unary(): Expr {
    const start = this.#t.start;
    if (this.#isOp('-')) {
      this.#next();
      const num = this.#t;
      if (
        num.kind === 'number' &&
        !this.#isOp('.', this.#peek()) &&
        !this.#isOp('[', this.#peek())
      ) {
        this.#next();
        return this.#at({ kind: 'literal', value: -num.num }, start);
      }
      this.#enter();
      const operand = this.#unary();
      this.#depth--;
      return this.#at({ kind: 'unary', op: '-', operand }, start);
    }
    return this.#postfix();
  }

  #postfix(): Expr {
    const start = this.#t.start;
    let e = this.#primary();
    let n = 0;
    for (;;) {
      if (this.#isOp('.')) {
        this.#next();
        this.#chain(++n);
        e = this.#at({ kind: 'field', object: e, name: this.#fieldName() }, start);
      } else if (this.#isOp('[')) {
        this.#next();
        this.#chain(++n);
        const index = this.expression();
        this.#expectOp(']');
        e = this.#at({ kind: 'index', object: e, index }, start);
      } else {
        return e;
      }
    }
  }

  #primary(): Expr {
    const t = this.#t;
    const start = t.start;
    switch (t.kind) {
      case 'number':
        this.#next();
        return this.#at({ kind: 'literal', value: t.num }, start);
      case 'string':
        this.#next();
        return this.#at({ kind: 'literal', value: t.text }, start);
      case 'param':
        this.#next();
        return this.#at({ kind: 'param', name: t.text }, start);
      case 'quoted':
        this.#next();
        return this.#at({ kind: 'ident', name: t.text }, start);
      case 'op':
        if (t.text === '(') {
          this.#next();
          const e = this.expression();
          this.#expectOp(')');
          return e;
        }
        if (t.text === '[') {
          this.#next();
          this.#enter();
          const items: Expr[] = [];
          if (!this.#isOp(']')) {
            do items.push(this.expression());
            while (this.#acceptOp(','));
          }
          this.#expectOp(']');
          this.#depth--;
          return this.#at({ kind: 'array', items }, start);
        }
        if (t.text === '{') {
          this.#next();
          this.#enter();
          const entries: { key: string; value: Expr }[] = [];
          if (!this.#isOp('}')) {
            do {
              const k = this.#t;
              if (k.kind !== 'string') this.#fail("a quoted key ('key')");
              this.#next();
              // `{'a':b}` lexes `:b` as a parameter; read it as `:` and the identifier `b`.
              const c = this.#t;
              if (c.kind === 'param' && c.start.offset === k.end) {
                this.#next();
                entries.push({
                  key: k.text,
                  value: this.#continuePostfix({ kind: 'ident', name: c.text }, c.start),
                });
                continue;
              }
              this.#expectOp(':');
              entries.push({ key: k.text, value: this.expression() });
            } while (this.#acceptOp(','));
          }
          this.#expectOp('}');
          this.#depth--;
          return this.#at({ kind: 'object', entries }, start);
        }
        return this.#fail('an expression');
      case 'word': {
        const w = t.text.toUpperCase();
        if (w === 'NULL' || w === 'TRUE' || w === 'FALSE') {
          this.#next();
          return this.#at({ kind: 'literal', value: w === 'NULL' ? null : w === 'TRUE' }, start);
        }
        if (w === 'MISSING') {
          this.#next();
          return this.#at({ kind: 'missing' }, start);
        }
        if (w === 'CASE') return this.#case();
        if (w === 'ANY' || w === 'EVERY') return this.#quantified();
        if (RESERVED.has(w)) return this.#fail('an expression');
        if (this.#isOp('(', this.#peek())) return this.#call();
        this.#next();
        return this.#at({ kind: 'ident', name: t.text }, start);
      }
      default:
        return this.#fail('an expression');
    }
  }

  #continuePostfix(e: Expr, start: SourcePosition): Expr {
    this.#at(e, start);
    let out = e;
    while (this.#isOp('.')) {
      this.#next();
      out = this.#at({ kind: 'field', object: out, name: this.#fieldName() }, start);
    }
    return out;
  }

  #call(): Expr {
    const t = this.#next();
    const name = t.text.toLowerCase();
    this.#expectOp('(');
    this.#enter();
    const isAgg = AGGREGATES.has(name);
    const arity = isAgg ? AGGREGATE_ARITY[name] : FUNCTIONS.get(name)?.arity;
    if (arity === undefined) {
      this.#semantic('DQL_UNKNOWN_FUNCTION', `unknown function ${t.text}()`, t.start, {
        name: t.text,
      });
    }
    let star = false;
    let distinct = false;
    const args: Expr[] = [];
    if (name === 'count' && this.#isOp('*')) {
      this.#next();
      star = true;
    } else {
      if (isAgg) distinct = this.#acceptWord('DISTINCT');
      if (!this.#isOp(')')) {
        do {
          const a = this.expression();
          if (isAgg && containsAggregate(a)) {
            this.#semantic(
              'DQL_INVALID_QUERY',
              'aggregate functions cannot be nested',
              positionOf(a) ?? t.start,
            );
          }
          args.push(a);
        } while (this.#acceptOp(','));
      }
    }
    const close = this.#t;
    this.#expectOp(')');
    this.#depth--;
    if (!star && (args.length < arity.min || args.length > arity.max)) {
      const want =
        arity.min === arity.max
          ? String(arity.min)
          : arity.max === Infinity
            ? `at least ${arity.min}`
            : `${arity.min} to ${arity.max}`;
      this.#semantic(
        'DQL_UNKNOWN_FUNCTION',
        `${name}() takes ${want} argument${want === '1' ? '' : 's'}, got ${args.length}`,
        close.start,
        { name, expected: want, found: String(args.length) },
      );
    }
    return this.#at({ kind: 'call', name, args, distinct, star }, t.start);
  }

  #case(): Expr {
    const start = this.#next().start;
    this.#enter();
    let subject: Expr | undefined;
    if (!this.#isWord('WHEN')) subject = this.expression();
    const whens: { when: Expr; then: Expr }[] = [];
    if (!this.#isWord('WHEN')) this.#fail('WHEN');
    while (this.#acceptWord('WHEN')) {
      const when = this.expression();
      this.#expectWord('THEN');
      whens.push({ when, then: this.expression() });
    }
    let otherwise: Expr | undefined;
    if (this.#acceptWord('ELSE')) otherwise = this.expression();
    this.#expectWord('END');
    this.#depth--;
    return this.#at(
      {
        kind: 'case',
        ...(subject === undefined ? {} : { subject }),
        whens,
        ...(otherwise === undefined ? {} : { else: otherwise }),
      },
      start,
    );
  }

  #quantified(): Expr {
    const t = this.#next();
    const quantifier = t.text.toUpperCase() as 'ANY' | 'EVERY';
    this.#enter();
    const variable = this.#identifier('a variable name');
    this.#expectWord('IN');
    const source = this.#concat();
    this.#expectWord('SATISFIES');
    const satisfies = this.expression();
    this.#expectWord('END');
    this.#depth--;
    return this.#at({ kind: 'quantified', quantifier, variable, source, satisfies }, t.start);
  }
}
