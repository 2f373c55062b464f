import { describe, expect, it } from 'vitest';
import {
  errorFactory,
  ErrorKind,
  hasCode,
  LatticeError,
  STATUS_BY_KIND,
  statusOf,
} from '@lattice/errors';

describe('LatticeError', () => {
  const make = errorFactory({ DEMO_BAD: 'INVALID_ARGUMENT', DEMO_GONE: 'NOT_FOUND' } as const);

  it('carries code, kind, frozen details and cause', () => {
    const cause = new Error('root');
    const e = make('DEMO_GONE', 'doc x is gone', { id: 'x' }, cause);
    expect(e).toBeInstanceOf(LatticeError);
    expect(e.code).toBe('DEMO_GONE');
    expect(e.kind).toBe(ErrorKind.NOT_FOUND);
    expect(e.details).toEqual({ id: 'x' });
    expect(Object.isFrozen(e.details)).toBe(true);
    expect(e.cause).toBe(cause);
    expect(JSON.parse(JSON.stringify(e))).toEqual({
      code: 'DEMO_GONE',
      kind: 'NOT_FOUND',
      message: 'doc x is gone',
      details: { id: 'x' },
    });
  });

  it('refuses codes that are not namespaced UPPER_SNAKE', () => {
    expect(() => new LatticeError('bad', 'x')).toThrow(RangeError);
    expect(() => new LatticeError('NOPREFIX', 'x')).toThrow(RangeError);
  });

  it('hasCode checks the shape, so a copy from another package or process matches', () => {
    const foreign = Object.assign(new Error('m'), {
      code: 'DEMO_BAD',
      kind: 'INVALID_ARGUMENT',
      details: {},
    });
    expect(hasCode(foreign)).toBe(true);
    expect(hasCode(foreign, 'DEMO_BAD')).toBe(true);
    expect(hasCode(foreign, 'DEMO_GONE')).toBe(false);
    expect(hasCode(new Error('plain'))).toBe(false);
    expect(hasCode(Object.assign(new Error('m'), { code: 'ENOENT', kind: 'nonsense' }))).toBe(
      false,
    );
    expect(hasCode(null)).toBe(false);
  });

  it('maps every kind to a gRPC and an HTTP status; unknown errors are INTERNAL', () => {
    for (const kind of Object.values(ErrorKind)) {
      expect(STATUS_BY_KIND[kind].grpc).toBeGreaterThan(0);
      expect(STATUS_BY_KIND[kind].http).toBeGreaterThanOrEqual(400);
    }
    expect(statusOf(make('DEMO_BAD', 'x'))).toEqual({ grpc: 3, http: 400 });
    expect(statusOf(new TypeError('x'))).toEqual({ grpc: 13, http: 500 });
  });
});
