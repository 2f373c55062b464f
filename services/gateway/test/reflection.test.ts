import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer, loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitDescriptorSet } from '@lattice/gateway';
import { dec, enc, startFixture } from './helpers.js';
import type { Fixture } from './helpers.js';

const KEY = 'reflection-token-0123456789';
// The reflection protocol's own contract, as @grpc/reflection ships it: the client below shares
// nothing with the gateway's code.
const reflectionProto = createRequire(import.meta.url).resolve(
  '@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto',
);

interface ReflectionResponse {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

type ReflectionClient = grpc.Client & {
  ServerReflectionInfo(): grpc.ClientDuplexStream<Record<string, string>, ReflectionResponse>;
};

let fx: Fixture;
let reflection: ReflectionClient;

beforeAll(async () => {
  fx = await startFixture({ apiKeys: [KEY] });
  const pkg = grpc.loadPackageDefinition(loadSync(reflectionProto)) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  reflection = new pkg.grpc.reflection.v1.ServerReflection(
    fx.grpcAddress,
    grpc.credentials.createInsecure(),
  ) as unknown as ReflectionClient;
});

afterAll(async () => {
  reflection.close();
  await fx.close();
});

/** One reflection request and its answer over the bidirectional stream. */
function ask(request: Record<string, string>): Promise<ReflectionResponse> {
  return new Promise((resolve, reject) => {
    const stream = reflection.ServerReflectionInfo();
    stream.once('data', (r: ReflectionResponse) => {
      resolve(r);
      stream.end();
    });
    stream.once('error', reject);
    stream.write(request);
  });
}

function varint(b: Buffer, at: number): [number, number] {
  let v = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = b[at++] ?? 0;
    v += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [v, at];
  }
}

/** A FileDescriptorProto's name (field 1) and dependencies (field 3), read off the wire. */
function fileInfo(b: Buffer): { name: string; deps: string[] } {
  let name = '';
  const deps: string[] = [];
  for (let at = 0; at < b.length;) {
    let tag: number;
    [tag, at] = varint(b, at);
    const wire = tag & 7;
    if (wire === 0) [, at] = varint(b, at);
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      let len: number;
      [len, at] = varint(b, at);
      const field = tag >>> 3;
      if (field === 1) name = b.toString('utf8', at, at + len);
      if (field === 3) deps.push(b.toString('utf8', at, at + len));
      at += len;
    } else throw new Error(`wire type ${wire}`);
  }
  return { name, deps };
}

/** A FileDescriptorSet (field 1: repeated FileDescriptorProto) around the answered files. */
function descriptorSet(files: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const len: number[] = [];
    for (let n = f.length; ; n >>>= 7) {
      if (n < 0x80) {
        len.push(n);
        break;
      }
      len.push((n & 0x7f) | 0x80);
    }
    parts.push(Buffer.from([0x0a, ...len]), f);
  }
  return Buffer.concat(parts);
}

describe('gRPC server reflection (grpc.reflection.v1)', () => {
  it('lists the DQL service', async () => {
    const r = await ask({ listServices: '' });
    expect(r.listServicesResponse?.service.map((s) => s.name)).toContain('lattice.v1.DqlService');
  });

  it('answers the file of a symbol, from which a client can call Execute (as grpcurl does)', async () => {
    const r = await ask({ fileContainingSymbol: 'lattice.v1.DqlService' });
    const files = r.fileDescriptorResponse?.fileDescriptorProto ?? [];
    expect(files.length).toBeGreaterThan(0);
    // Build a client only from what reflection answers: the file and, by name, its imports.
    const all = new Map<string, Buffer>();
    const pending = [...files];
    for (let f = pending.pop(); f; f = pending.pop()) {
      const { name, deps } = fileInfo(f);
      all.set(name, f);
      for (const dep of deps) {
        if (all.has(dep) || pending.some((p) => fileInfo(p).name === dep)) continue;
        const r2 = await ask({ fileByFilename: dep });
        pending.push(...(r2.fileDescriptorResponse?.fileDescriptorProto ?? []));
      }
    }
    expect([...all.keys()]).toContain('lattice/v1/gateway.proto');
    expect([...all.keys()]).toContain('lattice/v1/mux.proto');
    const definition = loadFileDescriptorSetFromBuffer(descriptorSet([...all.values()]));
    expect(Object.keys(definition)).toContain('lattice.v1.DqlService');
    const { lattice } = grpc.loadPackageDefinition(definition) as unknown as {
      lattice: { v1: { DqlService: grpc.ServiceClientConstructor } };
    };
    const dql = new lattice.v1.DqlService(
      fx.grpcAddress,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      Execute(
        req: { statement: string; args?: Uint8Array },
        md: grpc.Metadata,
        cb: (e: grpc.ServiceError | null, r?: { items: Buffer[]; query_type: string }) => void,
      ): void;
    };
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${KEY}`);
    const execute = (statement: string, args?: Uint8Array) =>
      new Promise<{ items: Buffer[]; query_type: string }>((resolve, reject) =>
        dql.Execute({ statement, ...(args ? { args } : {}) }, md, (e, res) =>
          e ? reject(e) : resolve(res as { items: Buffer[]; query_type: string }),
        ),
      );
    try {
      await execute('INSERT INTO cars DOCUMENTS (:d)', enc({ d: { _id: 'r', make: 'Volvo' } }));
      const r2 = await execute("SELECT make FROM cars WHERE _id = 'r'");
      expect(r2.query_type).toBe('select'); // descriptor field names, as grpcurl shows them
      expect(r2.items.map((b) => dec(b))).toEqual([{ make: 'Volvo' }]);
    } finally {
      dql.close();
    }
  });

  it('answers NOT_FOUND for an unknown symbol', async () => {
    const r = await ask({ fileContainingSymbol: 'no.such.Service' });
    expect(r.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
  });

  it('is not served with reflection off', async () => {
    const off = await startFixture({ apiKeys: [KEY], reflection: false });
    const pkg = grpc.loadPackageDefinition(loadSync(reflectionProto)) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const client = new pkg.grpc.reflection.v1.ServerReflection(
      off.grpcAddress,
      grpc.credentials.createInsecure(),
    ) as unknown as ReflectionClient;
    try {
      const error = await new Promise<unknown>((resolve) => {
        const stream = client.ServerReflectionInfo();
        stream.once('data', () => resolve(undefined));
        stream.once('error', resolve);
        stream.write({ listServices: '' });
      });
      expect((error as grpc.ServiceError).code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
      await off.close();
    }
  });

  it('splits only well-formed descriptor sets', () => {
    const set = descriptorSet([Buffer.from('abc'), Buffer.alloc(200, 1)]);
    expect(splitDescriptorSet(set).map((f) => f.length)).toEqual([3, 200]);
    expect(() => splitDescriptorSet(set.subarray(0, set.length - 1))).toThrow(RangeError);
    expect(() => splitDescriptorSet(Buffer.from([0x12, 0x01, 0x00]))).toThrow(RangeError);
  });
});
