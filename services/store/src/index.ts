export { compareKeys, inRange, MemoryEngine } from './engine.js';
export type {
  EngineCapabilities,
  EngineOp,
  EngineRange,
  EngineSizes,
  StorageEngine,
} from './engine.js';
export { StoreErrorCode, storeError } from './errors.js';
export { MAX_NAME_BYTES } from './keys.js';
export { RocksEngine } from './rocks-engine.js';
export type { RocksEngineOptions } from './rocks-engine.js';
export { DEFAULT_STORE_LIMITS, DocumentStore } from './store.js';
export type {
  CollectionStats,
  CommitEntry,
  CommitRequest,
  CommitResult,
  CommitSeq,
  CommittedListener,
  CommitWrite,
  DocumentEvict,
  DocumentPut,
  Expectation,
  IndexDefinition,
  IndexProgress,
  QueryPage,
  StoredDocument,
  StoreLimits,
  StoreOptions,
  TraceParent,
} from './store.js';
export { decodeValue, encodeValue, MAX_VALUE_DEPTH } from './value-codec.js';
export { storeConfigSchema, storeService, VERSION } from './service.js';
export { engineFromConfig, serveStore, startStoreService, STORE_OPS } from './service.js';
export type { StoreConfig, StoreOp, StoreOpenProgress, StoreServiceInstance } from './service.js';
export { StoreClient } from './client.js';
