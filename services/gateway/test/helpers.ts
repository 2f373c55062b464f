import * as grpc from '@grpc/grpc-js';
import type { JsonValue } from '@lattice/dql';
import { MergeEngine } from '@lattice/merge';
import type { v1 } from '@lattice/proto';
import { DocumentStore, MemoryEngine, decodeValue, encodeValue } from '@lattice/store';
import { dqlServiceDefinition, InProcessPeer, startGateway } from '@lattice/gateway';
import type { Gateway, GatewayOptions, PeerApi } from '@lattice/gateway';

/** A peer on a memory store, the gateway over it on random loopback ports, and a gRPC client. */
export interface Fixture {
  readonly store: DocumentStore;
  readonly engine: MergeEngine;
  readonly peer: PeerApi;
  readonly gateway: Gateway;
  readonly client: grpc.Client;
  readonly grpcAddress: string;
  readonly httpUrl: string;
  close(): Promise<void>;
}

export async function openPeer(peerId: string): Promise<MergeEngine> {
  const store = await DocumentStore.open(new MemoryEngine());
  return MergeEngine.open({ peerId, store });
}

export async function startFixture(
  options: GatewayOptions & { wrap?: (peer: PeerApi) => PeerApi } = {},
): Promise<Fixture> {
  const engine = await openPeer('gateway-peer');
  const inner = new InProcessPeer(engine);
  const peer = options.wrap ? options.wrap(inner) : inner;
  const gateway = await startGateway(peer, { grpcPort: 0, httpPort: 0, ...options });
  const grpcAddress = `127.0.0.1:${gateway.grpcPort}`;
  const client = new grpc.Client(grpcAddress, grpc.credentials.createInsecure());
  return {
    store: engine.store,
    engine,
    peer,
    gateway,
    client,
    grpcAddress,
    httpUrl: `http://127.0.0.1:${gateway.httpPort}`,
    async close() {
      client.close();
      await gateway.close();
      await engine.close();
      await engine.store.close();
    },
  };
}

type Defs = typeof dqlServiceDefinition;
type ReqOf<M> = M extends { requestSerialize: (m: infer R) => Buffer } ? R : never;
type ResOf<M> = M extends { responseDeserialize: (b: Buffer) => infer R } ? R : never;

/** Calls a unary method of the DQL service. */
export function call<K extends keyof Defs>(
  client: grpc.Client,
  name: K,
  request: ReqOf<Defs[K]>,
  options: { deadlineMs?: number; metadata?: grpc.Metadata } = {},
): Promise<ResOf<Defs[K]>> {
  const def = dqlServiceDefinition[name] as unknown as grpc.MethodDefinition<
    ReqOf<Defs[K]>,
    ResOf<Defs[K]>
  >;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      request,
      options.metadata ?? new grpc.Metadata(),
      options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs },
      (error, response) => (error ? reject(error) : resolve(response as ResOf<Defs[K]>)),
    );
  });
}

/** Starts an Observe stream. */
export function observe(
  client: grpc.Client,
  request: v1.IObserveRequest,
  metadata: grpc.Metadata = new grpc.Metadata(),
): grpc.ClientReadableStream<v1.ObserveResponse> {
  const def = dqlServiceDefinition.observe;
  return client.makeServerStreamRequest(
    def.path,
    def.requestSerialize,
    def.responseDeserialize,
    request as v1.ObserveRequest,
    metadata,
    {},
  );
}

/** Reads messages of a stream one at a time. */
export function reader<T>(stream: AsyncIterable<T>): () => Promise<T> {
  const it = stream[Symbol.asyncIterator]();
  return async () => {
    const r = await it.next();
    if (r.done) throw new Error('stream ended');
    return r.value;
  };
}

export const enc = (v: JsonValue): Uint8Array => encodeValue(v);
export const dec = (b: Uint8Array): JsonValue => decodeValue(b) as JsonValue;

/** Applies one CHANGES batch to a client's copy, as the proto says. */
export function applyBatch(items: JsonValue[], batch: v1.ObserveResponse): JsonValue[] {
  if (batch.kind !== 2) return batch.items.map(dec);
  const out = items.slice();
  for (const c of batch.changes) {
    const item = dec(c.item ?? new Uint8Array());
    const index = c.index ?? 0;
    switch (c.kind) {
      case 1:
        out.splice(index, 0, item);
        break;
      case 2:
        out.splice(index, 1);
        break;
      case 3:
        out[index] = item;
        break;
      case 4:
        out.splice(c.from ?? 0, 1);
        out.splice(index, 0, item);
        break;
      default:
        throw new Error(`unknown change kind ${String(c.kind)}`);
    }
  }
  return out;
}

/** The gRPC status and our error code of a failed call. */
export function failure(error: unknown): { code: number; latticeCode: string | undefined } {
  const e = error as grpc.ServiceError;
  const v = e.metadata?.get('lattice-error-code')[0];
  return { code: e.code, latticeCode: typeof v === 'string' ? v : undefined };
}

/** A {@link PeerApi} that forwards to `peer` except for `overrides` (test doubles). */
export function delegate(peer: PeerApi, overrides: Partial<PeerApi>): PeerApi {
  return {
    get peerId() {
      return peer.peerId;
    },
    get source() {
      return peer.source;
    },
    execute: (s, a) => peer.execute(s, a),
    onCommitted: (l) => peer.onCommitted(l),
    readDocuments: (c, ids) => peer.readDocuments(c, ids),
    indexInfo: (c) => peer.indexInfo(c),
    lastCommit: () => peer.lastCommit(),
    subscriptions: () => peer.subscriptions(),
    subscribe: (s, a) => peer.subscribe(s, a),
    unsubscribe: (s, a) => peer.unsubscribe(s, a),
    syncStatus: () => peer.syncStatus(),
    presence: () => peer.presence(),
    ...overrides,
  };
}
