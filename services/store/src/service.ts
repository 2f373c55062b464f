/**
 * The store service: the {@link DocumentStore} answering requests on the bus.
 *
 * @remarks
 * Requests (`lattice.<ns>.store.req.<op>`, protobuf messages of `lattice/v1/store.proto`):
 * `commit`, `get`, `query`, `next-page`, `changes`, `create-index`, `drop-index`,
 * `list-indexes`, `get-checkpoint`, `get-meta`, `stats`, `reap`. Events
 * (`lattice.<ns>.store.evt.<name>`): `committed` after each durable commit that wrote documents,
 * `index-progress` while an index is built. Malformed requests fail with
 * `STORE_INVALID_ARGUMENT` before anything is read or written.
 */
import { join } from 'node:path';
import { decodeDocId } from '@lattice/crdt';
import type { DocId, VersionVector } from '@lattice/crdt';
import { serve } from '@lattice/bus';
import type { Bus, Server } from '@lattice/bus';
import type { JsonValue } from '@lattice/dql';
import { v1 } from '@lattice/proto';
import type { Subjects } from '@lattice/proto';
import { baseConfigSchema, defineService } from '@lattice/service';
import type { ServiceContext, ServiceInstance } from '@lattice/service';
import { z } from 'zod';
import { MemoryEngine } from './engine.js';
import type { StorageEngine } from './engine.js';
import { storeError } from './errors.js';
import { RocksEngine } from './rocks-engine.js';
import { DocumentStore } from './store.js';
import type { CommitWrite, IndexProgress, QueryPage } from './store.js';
import { decodeValue, encodeValue } from './value-codec.js';

/** Version reported in health replies. */
export const VERSION = '0.2.0';

/** Settings of the store service (flags and `LATTICE_*` variables). */
export const storeConfigSchema = baseConfigSchema.extend({
  data: z
    .string()
    .min(1)
    .default('./lattice-data')
    .describe("the peer's data folder (the store keeps RocksDB in <data>/store)"),
  engine: z
    .enum(['rocksdb', 'memory'])
    .default('rocksdb')
    .describe('storage engine: rocksdb (durable) or memory (tests, throwaway peers)'),
  maxRequestBytes: z.coerce
    .number()
    .int()
    .min(1024)
    .default(8 * 1024 * 1024)
    .describe('largest request the store accepts, in bytes'),
  tombstoneTtlHours: z.coerce
    .number()
    .min(0)
    .default(30 * 24)
    .describe('tombstones older than this are reaped (0 turns reaping off)'),
});

/** The settings of {@link storeConfigSchema}. */
export type StoreConfig = z.infer<typeof storeConfigSchema>;

/** Request operations of the store, as subject tokens. */
export const STORE_OPS = [
  'commit',
  'get',
  'query',
  'next-page',
  'changes',
  'create-index',
  'drop-index',
  'list-indexes',
  'get-checkpoint',
  'get-meta',
  'stats',
  'reap',
] as const;

/** One request operation. */
export type StoreOp = (typeof STORE_OPS)[number];

/** The engine the configuration asks for (the store service's composition root). */
export function engineFromConfig(config: StoreConfig): StorageEngine {
  return config.engine === 'memory'
    ? new MemoryEngine()
    : new RocksEngine(join(config.data, 'store'));
}

/** Serves `store` on `bus`; returns the servers and the event forwarding, to stop together. */
export function serveStore(
  bus: Bus,
  subjects: Subjects,
  store: DocumentStore,
  options: { readonly maxRequestBytes?: number } = {},
): { stop(): Promise<void> } {
  const opts = {
    service: 'store',
    queue: 'store',
    ...(options.maxRequestBytes === undefined ? {} : { maxRequestBytes: options.maxRequestBytes }),
  };
  const on = (
    op: StoreOp,
    handler: (data: Uint8Array) => Promise<Uint8Array> | Uint8Array,
  ): Server => serve(bus, subjects.request('store', op), (msg) => handler(msg.data), opts);
  const committedSubject = subjects.event('store', 'committed');
  const progressSubject = subjects.event('store', 'index-progress');
  const unsubscribe = store.onCommitted((entry) => {
    bus.publish(
      committedSubject,
      v1.Committed.encode({
        commitSeq: entry.seq,
        collections: entry.collections.map((c) => ({ collection: c.collection, docIds: c.ids })),
        ...(entry.trace ? { trace: { ...entry.trace } } : {}),
      }).finish(),
    );
  });

  const servers = [
    on('commit', async (data) => {
      const req = decode(v1.CommitRequest, data);
      const result = await store.commit({
        writes: req.writes.map(toWrite),
        expect: req.expect.map((e) => ({
          collection: e.collection ?? '',
          id: toId(e.docId ?? new Uint8Array(0)),
          seq: Number(e.seq ?? 0),
        })),
        meta: Object.fromEntries(req.meta.map((m) => [m.key, m.value])),
        checkpoints: Object.fromEntries(req.checkpoints.map((c) => [c.peer, c.data])),
        ...(req.trace?.traceparent
          ? {
              trace: { traceparent: req.trace.traceparent, tracestate: req.trace.tracestate ?? '' },
            }
          : {}),
      });
      return v1.CommitReply.encode({ commitSeq: result.seq }).finish();
    }),
    on('get', (data) => {
      const req = decode(v1.GetRequest, data);
      for (const id of req.docIds) toId(id); // validates every id before reading
      const found = store.getEncoded(req.collection, req.docIds);
      return v1.GetReply.encode({
        docs: req.docIds.map((docId, i) => {
          const f = found[i] ?? {};
          if (!f.record) return { docId, found: false };
          const record = v1.DocRecord.decode(f.record);
          if (!req.includeRecord) {
            record.state = new Uint8Array(0);
            record.versionVector = [];
          }
          return { docId, found: true, record, value: f.value ?? new Uint8Array(0) };
        }),
      }).finish();
    }),
    on('query', (data) => {
      const req = decode(v1.QueryRequest, data);
      const args = req.args.length === 0 ? {} : decodeValue(req.args);
      if (
        typeof args !== 'object' ||
        args === null ||
        Array.isArray(args) ||
        args instanceof Uint8Array
      ) {
        throw storeError('STORE_INVALID_ARGUMENT', 'query args must be a map of names to values');
      }
      return encodePage(
        store.query(req.statement, args as Record<string, JsonValue>, req.pageSize),
      );
    }),
    on('next-page', (data) => {
      const req = decode(v1.NextPageRequest, data);
      return encodePage(store.nextPage(req.cursor, req.pageSize));
    }),
    on('changes', (data) => {
      const req = decode(v1.ChangesRequest, data);
      const r = store.changes(Number(req.since), {
        ...(req.collection === '' ? {} : { collection: req.collection }),
        ...(req.limit === 0 ? {} : { limit: req.limit }),
      });
      return v1.ChangesReply.encode({
        commits: r.commits.map((c) => ({
          commitSeq: c.seq,
          collections: c.collections.map((x) => ({ collection: x.collection, docIds: x.ids })),
        })),
        more: r.more,
        lastSeq: r.lastSeq,
      }).finish();
    }),
    on('create-index', async (data) => {
      const req = decode(v1.CreateIndexRequest, data);
      const def = await store.createIndex(req.collection, req.name, req.path, (p) =>
        bus.publish(progressSubject, v1.IndexProgress.encode(p).finish()),
      );
      return v1.IndexDef.encode({ ...def, path: [...def.path] }).finish();
    }),
    on('drop-index', async (data) => {
      const req = decode(v1.DropIndexRequest, data);
      await store.dropIndex(req.collection, req.name);
      return v1.Empty.encode({}).finish();
    }),
    on('list-indexes', (data) => {
      const req = decode(v1.ListIndexesRequest, data);
      const defs = store.listIndexes(req.collection === '' ? undefined : req.collection);
      return v1.ListIndexesReply.encode({
        indexes: defs.map((d) => ({ ...d, path: [...d.path] })),
      }).finish();
    }),
    on('get-checkpoint', (data) => {
      const req = decode(v1.GetCheckpointRequest, data);
      const cp = store.getCheckpoint(req.peer);
      return v1.GetCheckpointReply.encode(
        cp ? { found: true, checkpoint: { peer: req.peer, data: cp } } : { found: false },
      ).finish();
    }),
    on('get-meta', (data) => {
      const req = decode(v1.GetMetaRequest, data);
      const value = store.getMeta(req.key);
      return v1.GetMetaReply.encode(value ? { found: true, value } : { found: false }).finish();
    }),
    on('stats', (data) => {
      decode(v1.StatsRequest, data);
      const s = store.stats();
      return v1.StatsReply.encode({
        lastSeq: s.lastSeq,
        oldestLogSeq: s.oldestLogSeq,
        collections: s.collections,
        totalBytes: s.totalBytes,
        engineLiveDataBytes: s.engine.liveDataBytes,
        engineDiskBytes: s.engine.diskBytes,
        engineMemoryBytes: s.engine.memoryBytes,
      }).finish();
    }),
    on('reap', async (data) => {
      const req = decode(v1.ReapRequest, data);
      const reaped = await store.reapTombstones(Number(req.beforeMs));
      return v1.ReapReply.encode({ reaped }).finish();
    }),
  ];

  return {
    async stop() {
      unsubscribe();
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** A running store service, with its in-process store (the merge service writes through it). */
export interface StoreServiceInstance extends ServiceInstance {
  readonly store: DocumentStore;
}

/** What opening the store is doing, for a progress line (`lattice up`). */
export type StoreOpenProgress =
  | { readonly phase: 'opening'; readonly path: string; readonly elapsedMs: number }
  | ({ readonly phase: 'index' } & IndexProgress)
  | { readonly phase: 'open'; readonly lastSeq: number; readonly elapsedMs: number };

/**
 * Opens the configured store and serves it on the bus; see {@link storeService}.
 * @param hooks.onProgress told when opening starts, every second while RocksDB opens (it replays
 *   its log after a crash, which has no progress of its own), for each chunk of an index build
 *   resumed at open, and when the store is open.
 */
export async function startStoreService(
  ctx: ServiceContext<StoreConfig>,
  hooks: { readonly onProgress?: (progress: StoreOpenProgress) => void } = {},
): Promise<StoreServiceInstance> {
  {
    const started = Date.now();
    const path = ctx.config.engine === 'rocksdb' ? join(ctx.config.data, 'store') : 'memory';
    const progress = hooks.onProgress;
    progress?.({ phase: 'opening', path, elapsedMs: 0 });
    const ticker = progress
      ? setInterval(
          () => progress({ phase: 'opening', path, elapsedMs: Date.now() - started }),
          1_000,
        )
      : undefined;
    let store: DocumentStore;
    try {
      store = await DocumentStore.open(engineFromConfig(ctx.config), {
        onIndexProgress: (p) => {
          if (ticker) clearInterval(ticker);
          ctx.logger.info(p, 'resuming index build');
          progress?.({ phase: 'index', ...p });
        },
      });
    } finally {
      if (ticker) clearInterval(ticker);
    }
    progress?.({ phase: 'open', lastSeq: store.lastSeq, elapsedMs: Date.now() - started });
    const served = serveStore(ctx.bus, ctx.subjects, store, {
      maxRequestBytes: ctx.config.maxRequestBytes,
    });
    const ttlMs = ctx.config.tombstoneTtlHours * 3_600_000;
    let reaping = Promise.resolve();
    const reaper =
      ttlMs > 0
        ? setInterval(
            () => {
              reaping = reaping
                .then(() => store.reapTombstones(Date.now() - ttlMs))
                .then((n) => {
                  if (n > 0) ctx.logger.info({ reaped: n }, 'reaped tombstones');
                })
                .catch((err: unknown) => ctx.logger.error({ err }, 'tombstone reaping failed'));
            },
            Math.min(ttlMs, 3_600_000),
          )
        : undefined;
    reaper?.unref();
    ctx.logger.info(
      { engine: ctx.config.engine, data: ctx.config.data, lastSeq: store.lastSeq },
      'store open',
    );
    return {
      store,
      health: () => ({ engine: ctx.config.engine, last_seq: String(store.lastSeq) }),
      async stop() {
        if (reaper) clearInterval(reaper);
        await served.stop();
        await reaping;
        await store.close();
      },
    };
  }
}

/** The store service definition, started by its `main.ts` or composed by `lattice up`. */
export const storeService = defineService({
  name: 'store',
  version: VERSION,
  configSchema: storeConfigSchema,
  start: startStoreService,
});

// --- request decoding ----------------------------------------------------------------------------

function decode<T>(type: { decode(b: Uint8Array): T }, data: Uint8Array): T {
  try {
    return type.decode(data);
  } catch (err) {
    throw storeError('STORE_INVALID_ARGUMENT', 'malformed request', {}, err);
  }
}

function toId(bytes: Uint8Array): DocId {
  try {
    return decodeDocId(bytes);
  } catch (err) {
    throw storeError('STORE_INVALID_ARGUMENT', 'malformed _id bytes', {}, err);
  }
}

function toWrite(w: v1.IDocWrite): CommitWrite {
  const collection = w.collection ?? '';
  const id = toId(w.docId ?? new Uint8Array(0));
  if (w.evict) return { kind: 'evict', collection, id };
  const value = w.value && w.value.length > 0 ? w.value : undefined;
  if (value) {
    const v = decodeValue(value);
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
      throw storeError('STORE_INVALID_ARGUMENT', 'a document value must be a map');
    }
  }
  return {
    collection,
    id,
    state: w.state ?? new Uint8Array(0),
    encodedValue: value,
    versionVector: new Map(
      (w.versionVector ?? []).map((e) => [e.peer ?? '', Number(e.counter ?? 0)]),
    ) as unknown as VersionVector,
    ...(value ? {} : { deletedAt: Number(w.deletedAtMs ?? 0) || Date.now() }),
  };
}

function encodePage(page: QueryPage): Uint8Array {
  return v1.QueryPage.encode({
    items: page.items.map((item) => encodeValue(item)),
    cursor: page.cursor ?? '',
  }).finish();
}
