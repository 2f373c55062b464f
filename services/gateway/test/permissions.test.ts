import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileAccess, parse } from '@lattice/dql';
import { hasCode } from '@lattice/errors';
import {
  ApiKeys,
  authorizeStatement,
  gatewayConfigSchema,
  gatewayOptionsFrom,
  parseKeys,
  readKeysFile,
  withinRead,
} from '@lattice/gateway';
import type { Principal } from '@lattice/gateway';

const region: Principal = {
  name: 'r',
  read: compileAccess({ queriesByCollection: { cars: ["_id.region = '1'", "_id.region = '3'"] } }),
  write: compileAccess({ queriesByCollection: { cars: ["_id.region = '1'"] } }),
  expiresAt: undefined,
};

/** The statement `p` runs, as a syntax tree (so the test does not depend on spacing). */
const ast = (p: Principal, s: string, args = {}): unknown => parse(authorizeStatement(p, s, args));

const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error('did not throw');
};

describe('statement restriction', () => {
  it('ANDs the read condition (the OR of the queries) into SELECT, keeping the user WHERE whole', () => {
    expect(ast(region, 'SELECT * FROM cars WHERE a = 1 OR b = 2')).toEqual(
      parse("SELECT * FROM cars WHERE (_id.region = '1' OR _id.region = '3') AND (a = 1 OR b = 2)"),
    );
    expect(ast(region, 'SELECT COUNT(*) FROM cars GROUP BY make')).toEqual(
      parse("SELECT COUNT(*) FROM cars WHERE _id.region = '1' OR _id.region = '3' GROUP BY make"),
    );
    expect(ast(region, 'EXPLAIN SELECT * FROM cars')).toEqual(
      parse("EXPLAIN SELECT * FROM cars WHERE _id.region = '1' OR _id.region = '3'"),
    );
  });

  it('qualifies _id with the alias, also an alias named _id', () => {
    expect(ast(region, 'SELECT c.make FROM cars c WHERE c.x > 1')).toEqual(
      parse(
        "SELECT c.make FROM cars c WHERE (c._id.region = '1' OR c._id.region = '3') AND c.x > 1",
      ),
    );
    expect(ast(region, 'SELECT * FROM cars AS _id')).toEqual(
      parse("SELECT * FROM cars AS _id WHERE _id._id.region = '1' OR _id._id.region = '3'"),
    );
  });

  it('ANDs the write condition into UPDATE, DELETE and EVICT', () => {
    expect(ast(region, "UPDATE cars SET make = 'x'")).toEqual(
      parse("UPDATE cars SET make = 'x' WHERE _id.region = '1'"),
    );
    expect(ast(region, 'DELETE FROM cars WHERE n > 2')).toEqual(
      parse("DELETE FROM cars WHERE _id.region = '1' AND n > 2"),
    );
    expect(ast(region, 'EVICT FROM cars')).toEqual(parse("EVICT FROM cars WHERE _id.region = '1'"));
  });

  it('checks INSERT documents (literals and arguments) by _id, all or nothing', () => {
    const ok = "INSERT INTO cars DOCUMENTS ({'_id': {'region': '1'}})";
    expect(authorizeStatement(region, ok, {})).toBe(ok);
    const withArgs = 'INSERT INTO cars DOCUMENTS (:a), (:b)';
    expect(
      authorizeStatement(region, withArgs, {
        a: { _id: { region: '1' } },
        b: { _id: { region: '1', n: 2 } },
      }),
    ).toBe(withArgs);
    for (const [s, args] of [
      [withArgs, { a: { _id: { region: '1' } }, b: { _id: { region: '2' } } }],
      ["INSERT INTO cars DOCUMENTS ({'make': 'x'})", {}],
      ["INSERT INTO cars DOCUMENTS ({'_id': 'flat'})", {}],
      ["INSERT INTO boats DOCUMENTS ({'_id': {'region': '1'}})", {}],
      ['EXPLAIN INSERT INTO cars DOCUMENTS (:b)', { b: { _id: { region: '2' } } }],
    ] as const) {
      expect(
        hasCode(
          thrown(() => authorizeStatement(region, s, args)),
          'GATEWAY_PERMISSION_DENIED',
        ),
        s,
      ).toBe(true);
    }
  });

  it('pins the checked _id in the statement the peer runs (no second, different evaluation)', () => {
    const s =
      "INSERT INTO cars DOCUMENTS ({'_id': {'region': CASE WHEN clock() > '2000' THEN '1' ELSE '2' END}, 'at': clock()})";
    const out = parse(authorizeStatement(region, s, {}));
    expect(out).toMatchObject({
      kind: 'insert',
      documents: [
        {
          kind: 'object',
          entries: [
            {
              key: '_id',
              value: {
                kind: 'object',
                entries: [{ key: 'region', value: { kind: 'literal', value: '1' } }],
              },
            },
            { key: 'at', value: { kind: 'call', name: 'clock' } },
          ],
        },
      ],
    });
    const computed =
      "INSERT INTO cars DOCUMENTS (CASE WHEN TRUE THEN {'_id': {'region': '1'}} END)";
    expect(
      hasCode(
        thrown(() => authorizeStatement(region, computed, {})),
        'GATEWAY_PERMISSION_DENIED',
      ),
    ).toBe(true);
  });

  it('refuses collections without permission, system collections and index statements', () => {
    for (const s of [
      'SELECT * FROM boats',
      'SELECT * FROM system:data_sync_info',
      'DELETE FROM boats',
      'CREATE INDEX i ON cars (make)',
      'DROP INDEX i',
    ]) {
      expect(
        hasCode(
          thrown(() => authorizeStatement(region, s, {})),
          'GATEWAY_PERMISSION_DENIED',
        ),
        s,
      ).toBe(true);
    }
    const indexer: Principal = { ...region, write: compileAccess({ everything: true }) };
    expect(authorizeStatement(indexer, 'CREATE INDEX i ON cars (make)', {})).toBe(
      'CREATE INDEX i ON cars (make)',
    );
  });

  it('leaves statements of full-access keys untouched, byte for byte', () => {
    const full: Principal = {
      name: 'f',
      read: compileAccess({ everything: true }),
      write: compileAccess({ everything: true }),
      expiresAt: undefined,
    };
    const s = 'select  *  from cars   where a=1';
    expect(authorizeStatement(full, s, {})).toBe(s);
  });

  it('withinRead: a statement is within the permission when restricting it changes nothing', () => {
    const restricted = authorizeStatement(region, 'SELECT * FROM cars WHERE n > 1', {});
    expect(withinRead(region, restricted)).toBe(true);
    expect(authorizeStatement(region, restricted, {})).toBe(restricted); // idempotent
    expect(withinRead(region, 'SELECT * FROM cars')).toBe(false);
    expect(withinRead(region, 'SELECT * FROM boats')).toBe(false);
    expect(withinRead(region, 'not dql')).toBe(false);
  });
});

describe('keys file', () => {
  const entry = (over: Record<string, unknown>) => ({
    name: 'k',
    token: 'a-token-of-16-chars-or-more',
    permission: { read: { everything: true } },
    ...over,
  });

  it('names the bad entry and field in its error', () => {
    const error = thrown(() =>
      parseKeys({
        keys: [
          entry({}),
          entry({
            name: 'bad-one',
            token: 'another-good-token-1234',
            permission: { read: { queriesByCollection: { cars: ["make = 'x'", '_id.a = '] } } },
          }),
          entry({ name: 'twice', expiresAt: 'tomorrow' }),
        ],
      }),
    );
    expect(hasCode(error, 'GATEWAY_BAD_CONFIG')).toBe(true);
    const message = (error as Error).message;
    expect(message).toMatch(
      /keys\[1\] \("bad-one"\)\.permission\.read\.queriesByCollection\.cars\[0\]: .*only test _id.*found field make/,
    );
    expect(message).toMatch(
      /keys\[1\] \("bad-one"\)\.permission\.read\.queriesByCollection\.cars\[1\]: DQL_SYNTAX/,
    );
    expect(message).toMatch(/keys\[2\] \("twice"\)\.expiresAt/);
    expect(message).toMatch(/keys\[2\] \("twice"\): same token as keys\[0\]/);
  });

  it('refuses parameters, short tokens, both token kinds and unknown fields', () => {
    for (const bad of [
      entry({ permission: { write: { queriesByCollection: { c: ['_id = :x'] } } } }),
      entry({ token: 'short' }),
      entry({ tokenSha256: 'ab'.repeat(32) }),
      entry({ permissions: {} }),
      entry({ permission: { read: { everything: 'yes' } } }),
    ]) {
      expect(
        hasCode(
          thrown(() => parseKeys({ keys: [bad] })),
          'GATEWAY_BAD_CONFIG',
        ),
      ).toBe(true);
    }
  });

  it('accepts a token by its SHA-256 and enforces its expiry', () => {
    const token = 'hashed-token-0123456789';
    const [e] = parseKeys({
      keys: [
        {
          name: 'h',
          tokenSha256: createHash('sha256').update(token).digest('hex'),
          expiresAt: '2030-01-01T00:00:00Z',
          permission: {},
        },
      ],
    });
    let now = Date.parse('2029-12-31T23:59:59Z');
    const keys = new ApiKeys([], e ? [e] : [], () => now);
    const p = keys.check(`Bearer ${token}`);
    expect(p.name).toBe('h');
    expect(p.read.everything).toBe(false);
    now = Date.parse('2030-01-01T00:00:00Z');
    const error = thrown(() => keys.check(`Bearer ${token}`));
    expect(hasCode(error, 'GATEWAY_TOKEN_EXPIRED')).toBe(true);
    expect((error as Error).message).toBe('key "h" expired at 2030-01-01T00:00:00.000Z');
  });

  it('is read by --keys-file; a missing or malformed file is a clear error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gw-keys-'));
    try {
      const path = join(dir, 'keys.json');
      await writeFile(path, JSON.stringify({ keys: [entry({})] }));
      const options = gatewayOptionsFrom(gatewayConfigSchema.parse({ keysFile: path }));
      expect(options.keys?.map((k) => k.name)).toEqual(['k']);
      await writeFile(path, '{"keys": [');
      expect((thrown(() => readKeysFile(path)) as Error).message).toMatch(
        /keys file .*keys\.json: /,
      );
      expect(
        hasCode(
          thrown(() => readKeysFile(join(dir, 'nope.json'))),
          'GATEWAY_BAD_CONFIG',
        ),
      ).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
