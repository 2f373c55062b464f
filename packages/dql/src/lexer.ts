/**
 * The DQL lexer: text to tokens with positions.
 *
 * @remarks
 * Token kinds: bare words (identifiers and keywords, compared case-insensitively), backtick
 * identifiers (`` `a``b` `` escapes a backtick), single-quoted strings (`''` or backslash
 * escapes), numbers (decimal, optional fraction and exponent), `:name` parameters, punctuation
 * and operators. `--` line comments and `/* … *\/` block comments are skipped. The lexer is one
 * linear pass; it checks the input length and token count limits.
 */
import { dqlError, positionDetails } from './errors.js';
import type { SourcePosition } from './errors.js';

/** Token kinds. */
export type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'param' | 'op' | 'eof';

/** One token. `text` is the decoded value (word as written, string unescaped, op symbol). */
export interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  /** The number value for `number` tokens. */
  readonly num: number;
  readonly start: SourcePosition;
  /** Offset just past the token. */
  readonly end: number;
}

/** Limits on statement text, applied by the lexer and parser. */
export interface ParseLimits {
  /** Longest accepted statement, in UTF-16 units (default 1 MiB). */
  readonly maxLength: number;
  /** Most tokens in one statement (default 100,000). */
  readonly maxTokens: number;
  /** Deepest nesting of expressions (default 128). */
  readonly maxDepth: number;
}

/** The default {@link ParseLimits}. */
export const DEFAULT_PARSE_LIMITS: ParseLimits = {
  maxLength: 1 << 20,
  maxTokens: 100_000,
  maxDepth: 128,
};

const OPERATORS = [
  '<=',
  '>=',
  '<>',
  '!=',
  '==',
  '||',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  ',',
  '.',
  ':',
  ';',
  '*',
  '+',
  '-',
  '/',
  '%',
  '=',
  '<',
  '>',
] as const;

function isIdentStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36;
}
function isIdentPart(c: number): boolean {
  return isIdentStart(c) || (c >= 48 && c <= 57);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** A short, safe rendering of source text for error messages. */
export function describeText(s: string): string {
  const cut = s.length > 24 ? s.slice(0, 24) + '…' : s;
  return JSON.stringify(cut);
}

/** Splits `text` into tokens, ending with an `eof` token. */
export function tokenize(text: string, limits: ParseLimits = DEFAULT_PARSE_LIMITS): Token[] {
  if (text.length > limits.maxLength) {
    throw dqlError(
      'DQL_LIMIT',
      `statement is ${text.length} characters long; the limit is ${limits.maxLength}`,
      { limit: 'maxLength', max: String(limits.maxLength), actual: String(text.length) },
    );
  }
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const n = text.length;
  const pos = (offset: number): SourcePosition => ({
    offset,
    line,
    column: offset - lineStart + 1,
  });
  const fail = (offset: number, message: string, expected: string, found: string): never => {
    throw dqlError('DQL_SYNTAX', `${message} at line ${line}, column ${offset - lineStart + 1}`, {
      ...positionDetails(pos(offset)),
      expected,
      found,
    });
  };
  let tokStart: SourcePosition = pos(0);
  const push = (kind: TokenKind, t: string, start: number, num = 0): void => {
    if (tokens.length >= limits.maxTokens) {
      throw dqlError('DQL_LIMIT', `statement has more than ${limits.maxTokens} tokens`, {
        limit: 'maxTokens',
        max: String(limits.maxTokens),
        ...positionDetails(tokStart),
      });
    }
    tokens.push({ kind, text: t, num, start: tokStart, end: i });
  };

  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === 32 || c === 9 || c === 13 || c === 12 || c === 11) {
      i++;
      continue;
    }
    const start = i;
    tokStart = pos(start);
    if (c === 45 && text.charCodeAt(i + 1) === 45) {
      while (i < n && text.charCodeAt(i) !== 10) i++;
      continue;
    }
    if (c === 47 && text.charCodeAt(i + 1) === 42) {
      const close = text.indexOf('*/', i + 2);
      if (close < 0) fail(start, 'unterminated comment', "'*/'", 'end of input');
      for (let k = i; k < close; k++) {
        if (text.charCodeAt(k) === 10) {
          line++;
          lineStart = k + 1;
        }
      }
      i = close + 2;
      continue;
    }
    if (isIdentStart(c)) {
      while (i < n && isIdentPart(text.charCodeAt(i))) i++;
      push('word', text.slice(start, i), start);
      continue;
    }
    if (isDigit(c)) {
      while (i < n && isDigit(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) === 46 && isDigit(text.charCodeAt(i + 1))) {
        i++;
        while (i < n && isDigit(text.charCodeAt(i))) i++;
      }
      const e = text.charCodeAt(i);
      if (e === 101 || e === 69) {
        let k = i + 1;
        const sign = text.charCodeAt(k);
        if (sign === 43 || sign === 45) k++;
        if (isDigit(text.charCodeAt(k))) {
          while (k < n && isDigit(text.charCodeAt(k))) k++;
          i = k;
        }
      }
      if (i < n && isIdentPart(text.charCodeAt(i))) {
        fail(start, 'malformed number', 'a number', describeText(text.slice(start, i + 1)));
      }
      const raw = text.slice(start, i);
      const num = Number(raw);
      if (!Number.isFinite(num)) fail(start, 'number out of range', 'a finite number', raw);
      push('number', raw, start, num);
      continue;
    }
    if (c === 39) {
      let out = '';
      i++;
      for (;;) {
        if (i >= n) fail(start, 'unterminated string', "closing '", 'end of input');
        const d = text.charCodeAt(i);
        if (d === 39) {
          if (text.charCodeAt(i + 1) === 39) {
            out += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (d === 92) {
          const e = text[i + 1];
          const simple: Record<string, string> = {
            '\\': '\\',
            "'": "'",
            '"': '"',
            '/': '/',
            n: '\n',
            t: '\t',
            r: '\r',
            b: '\b',
            f: '\f',
            '0': '\0',
          };
          if (e !== undefined && Object.hasOwn(simple, e)) {
            out += simple[e];
            i += 2;
            continue;
          }
          if (e === 'u') {
            const hex = text.slice(i + 2, i + 6);
            if (/^[0-9a-fA-F]{4}$/.test(hex)) {
              out += String.fromCharCode(parseInt(hex, 16));
              i += 6;
              continue;
            }
          }
          fail(
            i,
            'invalid escape in string',
            "one of \\\\ \\' \\n \\t \\r \\uXXXX",
            describeText(text.slice(i, i + 6)),
          );
        }
        if (d === 10) {
          line++;
          lineStart = i + 1;
        }
        out += text[i];
        i++;
      }
      push('string', out, start);
      continue;
    }
    if (c === 96) {
      let out = '';
      i++;
      for (;;) {
        if (i >= n) fail(start, 'unterminated quoted identifier', 'closing `', 'end of input');
        const d = text.charCodeAt(i);
        if (d === 96) {
          if (text.charCodeAt(i + 1) === 96) {
            out += '`';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (d === 10) {
          line++;
          lineStart = i + 1;
        }
        out += text[i];
        i++;
      }
      if (out.length === 0) fail(start, 'empty quoted identifier', 'an identifier', '``');
      push('quoted', out, start);
      continue;
    }
    if (c === 34) {
      fail(
        start,
        'string literals use single quotes (double quotes are not DQL)',
        "a single-quoted string 'like this'",
        '"',
      );
    }
    if (c === 58 && isIdentStart(text.charCodeAt(i + 1))) {
      i++;
      while (i < n && isIdentPart(text.charCodeAt(i))) i++;
      push('param', text.slice(start + 1, i), start);
      continue;
    }
    let matched = false;
    for (const op of OPERATORS) {
      if (text.startsWith(op, i)) {
        i += op.length;
        push('op', op, start);
        matched = true;
        break;
      }
    }
    if (!matched) {
      const cp = text.codePointAt(i) ?? 0;
      fail(start, 'unexpected character', 'a token', describeText(String.fromCodePoint(cp)));
    }
  }
  tokens.push({ kind: 'eof', text: '', num: 0, start: pos(n), end: n });
  return tokens;
}
