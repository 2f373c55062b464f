/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) for `lattice.v1.DqlService`.
 *
 * @remarks
 * The gateway's messages are protobufjs static code, which carries no descriptors, so the
 * descriptors come from a FileDescriptorSet that `protoc --include_imports` writes at build time
 * (`scripts/gen-descriptor.mjs`, `pnpm --filter @lattice/gateway gen`) into
 * `generated/lattice-v1.binpb`, and `@grpc/reflection` answers from its files. Only the service
 * this gateway serves is listed.
 *
 * The files are handed over as protoc wrote them (split out of the set), not through
 * `@grpc/proto-loader`'s `loadFileDescriptorSetFromBuffer`: that rebuilds the descriptors from a
 * protobufjs root, which forgets which file each type came from, and answers one merged file
 * named after an arbitrary one of them (`lattice/v1/merge.proto` holding `DqlService`). With
 * protoc's files a client sees `lattice/v1/gateway.proto` and its real imports. `ReflectionService`
 * reads only `fileDescriptorProtos` of a package definition's entries, which is what we give it;
 * `test/reflection.test.ts` builds a working client from its answers, so a change there fails.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { gatewayError } from './errors.js';
import { DQL_SERVICE_NAME } from './grpc-server.js';

/** Where the build puts the descriptor set (`src/` and `dist/` are both one level down). */
export const DESCRIPTOR_SET_PATH = fileURLToPath(
  new URL('../generated/lattice-v1.binpb', import.meta.url),
);

let cached: ReflectionService | undefined;

function varint(b: Uint8Array, at: number): [value: number, next: number] {
  let v = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    const byte = b[at++];
    if (byte === undefined) break;
    v += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [v, at];
  }
  throw new RangeError('truncated varint in the descriptor set');
}

/**
 * The files of a FileDescriptorSet (`repeated FileDescriptorProto file = 1`), each as its bytes.
 * @throws RangeError for bytes that are not one.
 */
export function splitDescriptorSet(set: Uint8Array): Uint8Array[] {
  const files: Uint8Array[] = [];
  for (let at = 0; at < set.length;) {
    const [tag, afterTag] = varint(set, at);
    const [len, start] = varint(set, afterTag);
    if (tag !== 0x0a || start + len > set.length) {
      throw new RangeError(`not a FileDescriptorSet (tag ${tag} at byte ${at})`);
    }
    files.push(set.subarray(start, start + len));
    at = start + len;
  }
  return files;
}

/**
 * Adds the reflection service to `server`.
 * @throws `GATEWAY_BAD_CONFIG` when the descriptor set was not generated.
 */
/** Whether the descriptor set was built (reflection can be served). */
export function reflectionAvailable(): boolean {
  return existsSync(DESCRIPTOR_SET_PATH);
}

export function addReflection(server: Pick<grpc.Server, 'addService'>): void {
  if (!cached) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(DESCRIPTOR_SET_PATH);
    } catch (cause) {
      throw gatewayError(
        'GATEWAY_BAD_CONFIG',
        `gRPC reflection: no descriptor set at ${DESCRIPTOR_SET_PATH}; run ` +
          '`pnpm --filter @lattice/gateway gen` (needs protoc) or start with reflection off',
        { path: DESCRIPTOR_SET_PATH },
        cause,
      );
    }
    const definition = {
      [DQL_SERVICE_NAME]: { fileDescriptorProtos: splitDescriptorSet(bytes) },
    } as unknown as PackageDefinition;
    cached = new ReflectionService(definition, { services: [DQL_SERVICE_NAME] });
  }
  cached.addToServer(server);
}
