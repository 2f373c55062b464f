/**
 * `@lattice/dql`: the DQL lexer, parser, printer, evaluator, planner, reference executor,
 * mutation intents and subscription validation. Pure: no I/O.
 */
export { containsAggregate, walkExpr, AGGREGATES, ConflictMode, FieldType } from './ast.js';
export type {
  ApplyOp,
  ArrayExpr,
  BetweenExpr,
  BinaryExpr,
  BinaryOp,
  CallExpr,
  CaseExpr,
  CollectionRef,
  CreateIndexStatement,
  DropIndexStatement,
  ExplainableStatement,
  ExplainStatement,
  Expr,
  FieldExpr,
  IdentExpr,
  IndexExpr,
  InExpr,
  InsertStatement,
  InTarget,
  IsExpr,
  LikeExpr,
  LiteralExpr,
  MissingExpr,
  ObjectExpr,
  OrderKey,
  ParamExpr,
  ProjectionItem,
  QuantifiedExpr,
  RemoveStatement,
  SelectStatement,
  SetItem,
  Statement,
  TypeDef,
  UnaryExpr,
  UpdateStatement,
  UseIds,
} from './ast.js';
export { DqlErrorCode, dqlError } from './errors.js';
export type { SourcePosition } from './errors.js';
export {
  compileExpr,
  compilePredicate,
  evaluate,
  likeMatch,
  PREDICATE_TIER_UP,
} from './evaluator.js';
export type { Compiled, EvalOptions, Row } from './evaluator.js';
export { FUNCTIONS, MAX_REGEX_INPUT, MAX_REGEX_PATTERN, parseIsoDate } from './functions.js';
export type { Arity, FunctionContext, ScalarFunction } from './functions.js';
export {
  compileMutation,
  explainStatement,
  MAX_VALUE_DEPTH,
  resolveUpdate,
  validateSubscription,
} from './intents.js';
export type {
  ExplainOptions,
  InsertIntent,
  MutationIntent,
  MutationOptions,
  RemoveIntent,
  ResolvedUpdate,
  Subscription,
  UpdateIntent,
} from './intents.js';
export { DEFAULT_PARSE_LIMITS, tokenize } from './lexer.js';
export { LiveQuery } from './live-query.js';
export type { DocumentChange, ItemChange, LiveUpdate } from './live-query.js';
export type { ParseLimits, Token, TokenKind } from './lexer.js';
export { parse, parseExpression, positionOf, RESERVED } from './parser.js';
export {
  accessCondition,
  compileAccess,
  compilePermissions,
  EVERYTHING,
  parseCondition,
  PERMISSION_LIMITS,
  permits,
} from './permissions.js';
export type { Access, PermissionSpec, Permissions, PermissionsSpec } from './permissions.js';
export {
  bindParams,
  compileProjection,
  executePlan,
  executePlanAsync,
  explain,
  inIndexRange,
  MemorySource,
  outputName,
  planQuery,
} from './planner.js';
export type {
  AccessPath,
  Aggregation,
  AsyncDocumentSource,
  DocumentSource,
  ExecuteOptions,
  IndexBound,
  IndexInfo,
  IndexRange,
  IndexScanRequest,
  PlanOptions,
  QueryPlan,
  QueryResult,
  SourceCapabilities,
  UnionBranch,
} from './planner.js';
export { print, printExpression, printIdentifier, printString, printValue } from './printer.js';
export {
  compareForOperator,
  compareStrings,
  compareValues,
  getElement,
  getField,
  isObject,
  isValidId,
  MISSING,
  typeOf,
  valueAtPath,
  valueKey,
  valuesEqual,
  ValueType,
} from './values.js';
export type { Document, JsonObject, JsonValue, Missing, Value } from './values.js';
