export { channelPair, InboxChannel } from './channel.js';
export type { ChannelPairOptions, MessageChannel } from './channel.js';
export { MAX_SUBSCRIPTIONS, MergeEngine, SUBSCRIPTIONS_META_KEY } from './engine.js';
export type { MergeEngineOptions, SubscriptionSpec } from './engine.js';
export { MergeErrorCode, mergeError } from './errors.js';
export {
  decodeSyncMessage,
  encodeSyncMessage,
  MAX_INFLATED_BYTES,
  PACK_FROM_BYTES,
} from './message-codec.js';
export {
  decodeSyncStatus,
  encodeSyncStatus,
  readCheckpoint,
  restartOf,
  subscriptionsHash,
  SYNC_PROTOCOL_VERSION,
  SyncSession,
} from './session.js';
export type { SessionHost, SessionOptions, SessionRestart, SyncStatus } from './session.js';
export {
  decodeClockMeta,
  encodeClockMeta,
  HLC_META_KEY,
  loadDocument,
  LocalWriter,
  persistDocument,
} from './writer.js';
export type { ExecuteResult, LocalWriterOptions } from './writer.js';
export {
  identitySeed,
  IDENTITY_META_KEY,
  MERGE_OPS,
  mergeConfigSchema,
  mergeService,
  serveMerge,
  startMergeService,
  VERSION,
} from './service.js';
export type { MergeConfig, MergeOp, MergeServiceInstance } from './service.js';
export { MergeClient } from './client.js';
export { syncOverMultiplexer } from './mux-sync.js';
export { permissionsFromProto, permissionsToProto } from './permissions.js';
export { busChannel } from './bus-channel.js';
export {
  dataSyncInfo,
  isSystemCollection,
  SYSTEM_COLLECTION_PREFIX,
  SYSTEM_COLLECTIONS,
  systemSource,
} from './system-collections.js';
