import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startFixture } from './helpers.js';
import type { Fixture } from './helpers.js';

let fx: Fixture | undefined;
afterEach(async () => {
  await fx?.close();
  fx = undefined;
});

const KEY = 'k-123';
const url = () => `${(fx as Fixture).httpUrl}/api/v4/store/execute`;
const post = (body: string, key: string | null = KEY) =>
  fetch(url(), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
    },
    body,
  });

/** Runs curl; resolves with its stdout and exit code. */
function curl(args: string[]): Promise<{ stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-sS', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ stdout, code }));
  });
}

describe('HTTP API (Ditto-compatible)', () => {
  it('executes with curl: insert then select', async () => {
    fx = await startFixture({ apiKeys: [KEY] });
    const ins = await curl([
      '-X',
      'POST',
      '-H',
      `Authorization: Bearer ${KEY}`,
      '-H',
      'Content-Type: application/json',
      '-w',
      '\n%{http_code}',
      '--data',
      JSON.stringify({
        statement: 'INSERT INTO cars DOCUMENTS (:car)',
        args: { car: { _id: 'c1', make: 'Fiat', tags: ['a'], meta: { n: 1.5 } } },
      }),
      url(),
    ]);
    expect(ins.code).toBe(0);
    const [body, status] = ins.stdout.split('\n');
    expect(status).toBe('200');
    const parsed = JSON.parse(body as string) as Record<string, unknown>;
    expect(parsed).toMatchObject({
      queryType: 'insert',
      items: [],
      mutatedDocumentIds: ['c1'],
      warnings: [],
    });
    expect(typeof parsed['transactionId']).toBe('number');
    const sel = await curl([
      '-H',
      `Authorization: Bearer ${KEY}`,
      '-H',
      'Content-Type: application/json',
      '--data',
      '{"statement": "SELECT * FROM cars WHERE make = :m", "args": {"m": "Fiat"}}',
      url(),
    ]);
    expect(JSON.parse(sel.stdout)).toEqual({
      transactionId: parsed['transactionId'],
      queryType: 'select',
      items: [{ _id: 'c1', make: 'Fiat', tags: ['a'], meta: { n: 1.5 } }],
      mutatedDocumentIds: [],
      warnings: [],
    });
  });

  it('executes with fetch and reports DQL errors as 400 with a description', async () => {
    fx = await startFixture({ apiKeys: [KEY] });
    const ok = await post(JSON.stringify({ statement: "INSERT INTO t DOCUMENTS ({'_id': 1})" }));
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { mutatedDocumentIds: unknown }).mutatedDocumentIds).toEqual([1]);
    const bad = await post(JSON.stringify({ statement: 'SELEC * FROM t' }));
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: { description: string; code: string } };
    expect(body.error.code).toBe('DQL_SYNTAX');
    expect(body.error.description.length).toBeGreaterThan(0);
    // Nothing was changed by the refused statement.
    const all = await post(JSON.stringify({ statement: 'SELECT * FROM t' }));
    expect(((await all.json()) as { items: unknown[] }).items).toEqual([{ _id: 1 }]);
  });

  it('reads system:data_sync_info and refuses writes to it with 400', async () => {
    fx = await startFixture({ apiKeys: [KEY] });
    const read = await post(
      JSON.stringify({ statement: 'SELECT COUNT(*) AS n FROM system:data_sync_info' }),
    );
    expect(read.status).toBe(200);
    expect(((await read.json()) as { items: unknown[] }).items).toEqual([{ n: 0 }]);
    const write = await post(
      JSON.stringify({ statement: "INSERT INTO system:data_sync_info DOCUMENTS ({'_id': 'x'})" }),
    );
    expect(write.status).toBe(400);
    expect(((await write.json()) as { error: { code: string } }).error.code).toBe(
      'MERGE_SYSTEM_COLLECTION',
    );
  });

  it('refuses malformed JSON and malformed requests with 400', async () => {
    fx = await startFixture({ apiKeys: [KEY] });
    for (const body of [
      '{"statement": ',
      '[1,2]',
      '{"args": {}}',
      '{"statement": "SELECT * FROM t", "args": [1]}',
    ]) {
      const r = await post(body);
      expect(r.status, body).toBe(400);
      const json = (await r.json()) as { error: { description: string; code: string } };
      expect(json.error.code).toBe('GATEWAY_BAD_REQUEST');
    }
  });

  it('answers 401 for a missing or wrong key', async () => {
    fx = await startFixture({ apiKeys: [KEY] });
    const body = JSON.stringify({ statement: "INSERT INTO t DOCUMENTS ({'_id': 'x'})" });
    for (const key of [null, 'wrong']) {
      const r = await post(body, key);
      expect(r.status).toBe(401);
      expect(((await r.json()) as { error: { description: string } }).error.description).toMatch(
        /token|key/,
      );
    }
    const curlNoKey = await curl(['-o', '/dev/null', '-w', '%{http_code}', '--data', body, url()]);
    expect(curlNoKey.stdout).toBe('401');
    // The refused writes did not happen.
    const r = await post(JSON.stringify({ statement: 'SELECT * FROM t' }));
    expect(((await r.json()) as { items: unknown[] }).items).toEqual([]);
  });

  it('refuses a body above the limit with 413 and stays up', async () => {
    fx = await startFixture({ apiKeys: [KEY] });
    const huge = JSON.stringify({
      statement: 'INSERT INTO t DOCUMENTS (:d)',
      args: { d: { _id: 'h', s: 'x'.repeat(1024 * 1024) } },
    });
    const r = await post(huge).catch((e: unknown) => e);
    // fetch may see the connection closed before the body is fully sent; a status must be 413.
    if (r instanceof Response) {
      expect(r.status).toBe(413);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe(
        'GATEWAY_BODY_TOO_LARGE',
      );
    }
    // A chunked body (no Content-Length) is cut at the limit too.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url(), {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      const chunk = 'x'.repeat(64 * 1024);
      for (let i = 0; i < 20; i++) req.write(chunk);
      req.end();
    });
    expect(status).toBe(413);
    const ok = await post(JSON.stringify({ statement: 'SELECT * FROM t' }));
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { items: unknown[] }).items).toEqual([]);
  });

  it('answers 404 for other routes and 4xx for other methods; playground on loopback needs no key', async () => {
    fx = await startFixture();
    expect((await fetch(`${fx.httpUrl}/api/v4/nope`, { method: 'POST' })).status).toBe(404);
    const get = await fetch(url());
    expect(get.status).toBeGreaterThanOrEqual(400);
    expect(get.status).toBeLessThan(500);
    const r = await post(JSON.stringify({ statement: 'SELECT * FROM t' }), null);
    expect(r.status).toBe(200);
  });
});
