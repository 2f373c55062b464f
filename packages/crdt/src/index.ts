/**
 * `@lattice/crdt`: the CRDT document model and merge rules of Lattice (pure: no I/O, no timers).
 */
export {
  CODEC_LIMITS,
  decodeDelta,
  decodeDocument,
  decodeVersionVector,
  DEFLATE_FROM_BYTES,
  encodeDelta,
  encodeDocument,
  encodeVersionVector,
  mergeEncoded,
} from './codec.js';
export { compareDocIds, decodeDocId, docIdKey, encodeDocId, MAX_DOC_ID_BYTES } from './doc-id.js';
export {
  ConflictMode,
  CrdtDocument,
  CrdtType,
  DocDelta,
  DOC_MAX_BYTES,
  DOC_WARN_BYTES,
  MAX_FIELD_DEPTH,
} from './document.js';
export { CrdtErrorCode, crdtError } from './errors.js';
export {
  compareTimestamps,
  DEFAULT_MAX_DRIFT_MS,
  HLC_COUNTER_SPAN,
  HLC_MAX_WALL,
  HybridClock,
  hlcCounter,
  hlcWall,
  packHlc,
} from './hlc.js';
export { asPeerId, MAX_PEER_ID_LENGTH } from './ids.js';
export { isValueObject, MAX_VALUE_DEPTH, valuesEqual } from './value.js';
export type { DocId, DocIdObject, DocIdPart } from './doc-id.js';
export type {
  ApplyOp,
  AttachmentToken,
  MergeResult,
  Path,
  SizeWarning,
  Typedefs,
  WriteIntent,
  WriteResult,
} from './document.js';
export type { HlcTime, HybridClockOptions, Timestamp } from './hlc.js';
export type { PeerId } from './ids.js';
export type { VersionVector } from './state.js';
export type { Value, ValueObject } from './value.js';
