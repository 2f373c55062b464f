/**
 * The merge service: the peer's merge engine (local writes, subscriptions, sync sessions) on the
 * bus.
 *
 * @remarks
 * Requests (`lattice.<ns>.merge.req.<op>`, messages of `lattice/v1/merge.proto`): `execute`
 * (any DQL statement), `subscribe`, `unsubscribe`, `subscriptions`, `sync-status`.
 *
 * The merge engine is its store's single writer and reads documents synchronously (the DQL
 * executor, CRDT merges), so it runs in the process that holds the store: composed with the store
 * service by `lattice up`, or, run alone (`lattice merge`), opening the store itself and serving
 * the store's API on the bus too. Sync sessions run over the multiplexer: in process when one is
 * given (`lattice up`), else through the multiplexer service's bus API (`MultiplexerClient`;
 * `--sync-over-bus false` turns sync off). Both processes of a peer must have one identity: give
 * them the same `--identity-file`.
 */
import { randomBytes } from 'node:crypto';
import { serve } from '@lattice/bus';
import type { Server } from '@lattice/bus';
import type { JsonValue } from '@lattice/dql';
import { z } from 'zod';
import { createIdentity, identitySeedFromFile, MultiplexerClient } from '@lattice/multiplexer';
import type { MultiplexerPort } from '@lattice/multiplexer';
import { v1 } from '@lattice/proto';
import { defineService } from '@lattice/service';
import type { ServiceContext, ServiceInstance } from '@lattice/service';
import {
  decodeValue,
  DocumentStore,
  encodeValue,
  engineFromConfig,
  serveStore,
  storeConfigSchema,
} from '@lattice/store';
import { MergeEngine } from './engine.js';
import { mergeError } from './errors.js';
import { syncOverMultiplexer } from './mux-sync.js';
import { encodeSyncStatus } from './session.js';

/** Version reported in health replies. */
export const VERSION = '0.2.0';

/** Metadata key of the peer's identity seed (32 bytes; its key pair and peer id derive from it). */
export const IDENTITY_META_KEY = 'identity-seed';

/** Settings of the merge service: the store's (it opens the store when run alone), and more. */
export const mergeConfigSchema = storeConfigSchema.extend({
  identityFile: z
    .string()
    .min(1)
    .optional()
    .describe(
      "file holding the peer identity, shared with the peer's multiplexer (created when " +
        'missing); without it the identity is kept in the store',
    ),
  syncOverBus: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true')
    .describe('run alone: sync through the multiplexer service on the bus'),
});

/** The settings of {@link mergeConfigSchema}. */
export type MergeConfig = ReturnType<typeof mergeConfigSchema.parse>;

/** Request operations of the merge service, as subject tokens. */
export const MERGE_OPS = [
  'execute',
  'subscribe',
  'unsubscribe',
  'subscriptions',
  'sync-status',
] as const;

/** One request operation. */
export type MergeOp = (typeof MERGE_OPS)[number];

/**
 * The peer's identity seed, created and stored on first use (so the peer id survives restarts).
 * @remarks The seed is kept in the store's metadata; a deployment that needs it in a key store
 * passes its own identity to the multiplexer instead.
 */
export async function identitySeed(store: DocumentStore): Promise<Uint8Array> {
  const existing = store.getMeta(IDENTITY_META_KEY);
  if (existing && existing.length === 32) return existing;
  const seed = new Uint8Array(randomBytes(32));
  await store.commit({ writes: [], meta: { [IDENTITY_META_KEY]: seed } });
  return seed;
}

/** Serves an engine's API on the bus; returns a stop function. */
export function serveMerge(
  ctx: Pick<ServiceContext, 'bus' | 'subjects'>,
  engine: MergeEngine,
): { stop(): Promise<void> } {
  const on = (
    op: MergeOp,
    handler: (data: Uint8Array) => Promise<Uint8Array> | Uint8Array,
  ): Server =>
    serve(ctx.bus, ctx.subjects.request('merge', op), (m) => handler(m.data), {
      service: 'merge',
      queue: 'merge',
    });
  const servers = [
    on('execute', async (data) => {
      const req = decode(v1.MergeExecuteRequest, data);
      const r = await engine.execute(req.statement, argsOf(req.args));
      return v1.MergeExecuteReply.encode({
        items: r.items.map((i) => encodeValue(i)),
        mutatedIds: r.mutatedIds.map((i) => encodeValue(i)),
        commitSeq: r.commitSeq,
        warnings: r.warnings,
        queryType: r.queryType,
      }).finish();
    }),
    on('subscribe', async (data) => {
      const req = decode(v1.MergeSubscriptionRequest, data);
      await engine.subscribe(req.statement, argsOf(req.args));
      return list(engine);
    }),
    on('unsubscribe', async (data) => {
      const req = decode(v1.MergeSubscriptionRequest, data);
      await engine.unsubscribe(req.statement, argsOf(req.args));
      return list(engine);
    }),
    on('subscriptions', (data) => {
      decode(v1.MergeSubscriptionListRequest, data);
      return list(engine);
    }),
    on('sync-status', (data) => {
      decode(v1.MergeSyncStatusRequest, data);
      return v1.MergeSyncStatusReply.encode({
        peerId: engine.peerId,
        lastCommit: engine.store.lastSeq,
        peers: engine.syncStatus().map(encodeSyncStatus),
      }).finish();
    }),
  ];
  return {
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** A running merge service, with its engine. */
export interface MergeServiceInstance extends ServiceInstance {
  readonly engine: MergeEngine;
}

/**
 * Starts the merge service. With `store`, it writes through that (already served) store; without,
 * it opens the configured store and serves it too. With `multiplexer`, it syncs with every peer
 * the multiplexer reaches.
 */
export async function startMergeService(
  ctx: ServiceContext<MergeConfig>,
  options: { readonly store?: DocumentStore; readonly multiplexer?: MultiplexerPort } = {},
): Promise<MergeServiceInstance> {
  const ownStore = options.store === undefined;
  const store = options.store ?? (await DocumentStore.open(engineFromConfig(ctx.config)));
  const servedStore = ownStore
    ? serveStore(ctx.bus, ctx.subjects, store, { maxRequestBytes: ctx.config.maxRequestBytes })
    : undefined;
  const peerId =
    options.multiplexer?.peerId ??
    createIdentity(
      ctx.config.identityFile === undefined
        ? await identitySeed(store)
        : identitySeedFromFile(ctx.config.identityFile),
    ).peerId;
  const engine = MergeEngine.open({
    peerId,
    store,
    warn: (message, details) => ctx.logger.warn(details, message),
  });
  const served = serveMerge(ctx, engine);
  // Alone on the bus, the merge service reaches the peer's multiplexer through its bus API.
  const client =
    options.multiplexer === undefined && ctx.config.syncOverBus
      ? new MultiplexerClient({
          bus: ctx.bus,
          subjects: ctx.subjects,
          peerId,
          onProblem: (message, details) => ctx.logger.warn(details, message),
        })
      : undefined;
  const multiplexer = options.multiplexer ?? client;
  const stopSync = multiplexer
    ? syncOverMultiplexer(engine, multiplexer, {
        onError: (peer, err) => ctx.logger.warn({ peer, err }, 'sync session failed'),
      })
    : undefined;
  ctx.logger.info({ peerId, subscriptions: engine.subscriptions.length }, 'merge engine ready');
  return {
    engine,
    health: () => ({
      peerId,
      sessions: String(engine.syncStatus().filter((s) => s.state !== 'closed').length),
      last_commit: String(store.lastSeq),
    }),
    async stop() {
      stopSync?.();
      client?.close();
      await served.stop();
      await engine.close();
      if (ownStore) {
        await servedStore?.stop();
        await store.close();
      }
    },
  };
}

/** The merge service definition, started by its `main.ts` or composed by `lattice up`. */
export const mergeService = defineService({
  name: 'merge',
  version: VERSION,
  configSchema: mergeConfigSchema,
  start: (ctx) => startMergeService(ctx),
});

function list(engine: MergeEngine): Uint8Array {
  return v1.MergeSubscriptionList.encode({
    subscriptions: engine.subscriptions.map((s) => ({
      statement: s.statement,
      args: encodeValue(s.args),
    })),
  }).finish();
}

function decode<T>(type: { decode(b: Uint8Array): T }, data: Uint8Array): T {
  try {
    return type.decode(data);
  } catch (err) {
    throw mergeError('MERGE_PROTOCOL', 'malformed request', {}, err);
  }
}

function argsOf(bytes: Uint8Array): Readonly<Record<string, JsonValue>> {
  if (bytes.length === 0) return {};
  const v = decodeValue(bytes);
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw mergeError('MERGE_PROTOCOL', 'args must be a map of names to values');
  }
  return v as Record<string, JsonValue>;
}
