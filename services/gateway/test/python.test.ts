import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import type { v1 } from '@lattice/proto';
import { parseKeys } from '@lattice/gateway';
import { call, startFixture } from './helpers.js';
import type { Fixture } from './helpers.js';

const script = fileURLToPath(new URL('./python/dql_client.py', import.meta.url));
const protoRoot = fileURLToPath(new URL('../../../proto', import.meta.url));

/** The first interpreter that has grpcio: $LATTICE_PYTHON, Debian's, then the one on PATH. */
function python(): string {
  const candidates = [process.env['LATTICE_PYTHON'], '/usr/bin/python3', 'python3'].filter(
    (p): p is string => p !== undefined && p !== '',
  );
  for (const p of candidates) {
    if (spawnSync(p, ['-c', 'import grpc'], { stdio: 'ignore' }).status === 0) return p;
  }
  throw new Error(
    `no python3 with grpcio among ${candidates.join(', ')}: apt-get install python3-grpcio protobuf-compiler`,
  );
}

let fx: Fixture | undefined;
afterEach(async () => {
  await fx?.close();
  fx = undefined;
});

describe('a Python grpcio client (messages by protoc)', () => {
  it('runs Execute, sees our error codes (also without a token and outside its permission), and Observe gets the initial result and a change', async () => {
    expect(spawnSync('protoc', ['--version']).status, 'protoc (protobuf-compiler) is needed').toBe(
      0,
    );
    const token = 'python-admin-token-0123';
    const restricted = 'python-region-1-token-0123';
    const region1 = { queriesByCollection: { cars: ["_id.region = '1'"] } };
    fx = await startFixture({
      apiKeys: [token],
      keys: parseKeys({
        keys: [{ name: 'r1', token: restricted, permission: { read: region1, write: region1 } }],
      }),
    });
    const f = fx;
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    const child = spawn(python(), [script, f.grpcAddress, protoRoot, token, restricted], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', r));
    const steps: Record<string, string> = {};
    for await (const line of createInterface({ input: child.stdout })) {
      const { step, text } = JSON.parse(line) as { step: string; text: string };
      steps[step] = text;
      if (step === 'ready') {
        await call(
          f.client,
          'execute',
          {
            statement: "INSERT INTO cars DOCUMENTS ({'_id': 'py2', 'make': 'Saab'})",
          } as v1.ExecuteRequest,
          { metadata },
        );
      }
    }
    expect(await exited, stderr).toBe(0);
    expect(steps['execute']).toMatch(/query_type: "insert"/);
    expect(steps['execute']).toMatch(/commit_id: [1-9]/);
    expect(steps['execute']).toMatch(/mutated_document_ids: ".*py1"/);
    expect(steps['error']).toBe('INVALID_ARGUMENT DQL_SYNTAX');
    expect(steps['no-token']).toBe('UNAUTHENTICATED GATEWAY_UNAUTHENTICATED');
    expect(steps['denied']).toBe('PERMISSION_DENIED GATEWAY_PERMISSION_DENIED');
    expect(steps['initial']).toMatch(/kind: OBSERVE_BATCH_KIND_INITIAL/);
    expect(steps['initial']).toMatch(/Volvo/);
    expect(steps['changes']).toMatch(/kind: OBSERVE_BATCH_KIND_CHANGES/);
    expect(steps['changes']).toMatch(/kind: ITEM_CHANGE_KIND_INSERTED/);
    expect(steps['changes']).toMatch(/Saab/);
    expect(steps['changes']).not.toMatch(/Volvo/);
  });
});
