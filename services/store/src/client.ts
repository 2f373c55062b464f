/**
 * A typed client of the store service over the bus, for other services and tools.
 */
import { encodeDocId } from '@lattice/crdt';
import type { DocId } from '@lattice/crdt';
import type { Bus, RequestOptions } from '@lattice/bus';
import type { JsonValue } from '@lattice/dql';
import { v1 } from '@lattice/proto';
import type { Subjects } from '@lattice/proto';
import type { StoreOp } from './service.js';
import type { CommitRequest, CommitResult, IndexDefinition } from './store.js';
import { decodeValue, encodeValue } from './value-codec.js';

/** Calls the store service of one peer. */
export class StoreClient {
  readonly #bus: Bus;
  readonly #subjects: Subjects;
  readonly #options: RequestOptions;

  constructor(bus: Bus, subjects: Subjects, options: RequestOptions = {}) {
    this.#bus = bus;
    this.#subjects = subjects;
    this.#options = options;
  }

  async #call<T>(
    op: StoreOp,
    data: Uint8Array,
    reply: { decode(b: Uint8Array): T },
    timeoutMs?: number,
  ): Promise<T> {
    const msg = await this.#bus.request(this.#subjects.request('store', op), data, {
      ...this.#options,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
    return reply.decode(msg.data);
  }

  /** Commits writes atomically; resolves once durable. */
  async commit(request: CommitRequest): Promise<CommitResult> {
    const body = v1.CommitRequest.encode({
      writes: request.writes.map((w) =>
        w.kind === 'evict'
          ? { collection: w.collection, docId: encodeDocId(w.id), evict: true }
          : {
              collection: w.collection,
              docId: encodeDocId(w.id),
              state: w.state,
              value:
                w.encodedValue ??
                (w.value === undefined ? new Uint8Array(0) : encodeValue(w.value)),
              versionVector: [...w.versionVector].map(([peer, counter]) => ({ peer, counter })),
              tombstone: w.encodedValue === undefined && w.value === undefined,
              deletedAtMs: w.deletedAt ?? 0,
            },
      ),
      expect: (request.expect ?? []).map((e) => ({
        collection: e.collection,
        docId: encodeDocId(e.id),
        seq: e.seq,
      })),
      meta: Object.entries(request.meta ?? {}).map(([key, value]) => ({ key, value })),
      checkpoints: Object.entries(request.checkpoints ?? {}).map(([peer, data]) => ({
        peer,
        data,
      })),
      ...(request.trace ? { trace: { ...request.trace } } : {}),
    }).finish();
    const r = await this.#call('commit', body, v1.CommitReply);
    return { seq: Number(r.commitSeq) };
  }

  /** Stored documents by id (records included when asked). */
  async get(
    collection: string,
    ids: readonly DocId[],
    includeRecord = false,
  ): Promise<v1.GetReply> {
    return this.#call(
      'get',
      v1.GetRequest.encode({
        collection,
        docIds: ids.map((id) => encodeDocId(id)),
        includeRecord,
      }).finish(),
      v1.GetReply,
    );
  }

  /** Every item of a query, fetched page by page. */
  async select(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
    pageSize = 0,
  ): Promise<JsonValue[]> {
    const items: JsonValue[] = [];
    for await (const page of this.pages(statement, args, pageSize)) items.push(...page);
    return items;
  }

  /** The pages of a query's result. */
  async *pages(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
    pageSize = 0,
  ): AsyncIterable<JsonValue[]> {
    let page = await this.#call(
      'query',
      v1.QueryRequest.encode({ statement, args: encodeValue(args), pageSize }).finish(),
      v1.QueryPage,
    );
    for (;;) {
      yield page.items.map((b) => decodeValue(b) as JsonValue);
      if (page.cursor === '') return;
      page = await this.#call(
        'next-page',
        v1.NextPageRequest.encode({ cursor: page.cursor, pageSize }).finish(),
        v1.QueryPage,
      );
    }
  }

  /** Commits after `since`. */
  async changes(since: number, collection = '', limit = 0): Promise<v1.ChangesReply> {
    return this.#call(
      'changes',
      v1.ChangesRequest.encode({ since, collection, limit }).finish(),
      v1.ChangesReply,
    );
  }

  /** Creates (and builds) an index; waits up to `timeoutMs` (default 10 minutes). */
  async createIndex(
    collection: string,
    name: string,
    path: readonly string[],
    timeoutMs = 600_000,
  ): Promise<IndexDefinition> {
    const d = await this.#call(
      'create-index',
      v1.CreateIndexRequest.encode({ collection, name, path: [...path] }).finish(),
      v1.IndexDef,
      timeoutMs,
    );
    return { collection: d.collection, name: d.name, path: d.path, ready: d.ready };
  }

  async dropIndex(collection: string, name: string): Promise<void> {
    await this.#call(
      'drop-index',
      v1.DropIndexRequest.encode({ collection, name }).finish(),
      v1.Empty,
    );
  }

  async listIndexes(collection = ''): Promise<v1.ListIndexesReply> {
    return this.#call(
      'list-indexes',
      v1.ListIndexesRequest.encode({ collection }).finish(),
      v1.ListIndexesReply,
    );
  }

  async getCheckpoint(peer: string): Promise<Uint8Array | undefined> {
    const r = await this.#call(
      'get-checkpoint',
      v1.GetCheckpointRequest.encode({ peer }).finish(),
      v1.GetCheckpointReply,
    );
    return r.found ? (r.checkpoint?.data ?? new Uint8Array(0)) : undefined;
  }

  async getMeta(key: string): Promise<Uint8Array | undefined> {
    const r = await this.#call(
      'get-meta',
      v1.GetMetaRequest.encode({ key }).finish(),
      v1.GetMetaReply,
    );
    return r.found ? r.value : undefined;
  }

  async stats(): Promise<v1.StatsReply> {
    return this.#call('stats', v1.StatsRequest.encode({}).finish(), v1.StatsReply);
  }

  async reap(beforeMs: number): Promise<number> {
    const r = await this.#call('reap', v1.ReapRequest.encode({ beforeMs }).finish(), v1.ReapReply);
    return Number(r.reaped);
  }
}
