export { SimulatedClock, SystemClock } from './clock.js';
export type { Clock, Timer } from './clock.js';
export { muxError, MuxErrorCode } from './errors.js';
export type { MuxError } from './errors.js';
export {
  ackBlockBytes,
  ChunkAssembler,
  ControlType,
  CRC_BYTES,
  DATA_HEADER_BYTES,
  decodeFrame,
  decodeVarint,
  encodeChunks,
  encodeControlFrame,
  encodeDataFrame,
  encodeVarint,
  MAX_FRAME_BYTES,
  MAX_WINDOW_BYTES,
  MIN_FRAME_BYTES,
  PROTOCOL_VERSION,
  STREAM_COUNT,
  widenOffset,
} from './frame-codec.js';
export type {
  AckEntry,
  ControlFrame,
  ControlFrameInput,
  DataFrame,
  DataFrameInput,
  DecodeOptions,
  Frame,
} from './frame-codec.js';
export { createIdentity, LinkHandshake, peerIdFromPublicKey } from './handshake.js';
export type { HandshakeHooks, Identity, RemoteHello } from './handshake.js';
export { asLinkId } from './link-driver.js';
export type {
  LinkCapabilities,
  LinkDriver,
  LinkEvent,
  LinkId,
  LinkInfo,
  LinkListener,
} from './link-driver.js';
export { LoopbackLinkDriver, LoopbackNetwork, seededRandom } from './loopback.js';
export type { LoopbackDirectionStats, LoopbackLink, LoopbackLinkOptions } from './loopback.js';
export { MIN_MESH_KEY_BYTES, Multiplexer, MUX_CONTROL_STREAM, Priority } from './multiplexer.js';
export type {
  InboundMessage,
  MultiplexerCounters,
  MultiplexerEvent,
  MultiplexerOptions,
  PeerReport,
} from './multiplexer.js';
export { ReceiveStream } from './receive-stream.js';
export type {
  AcceptResult,
  ReassemblyBudget,
  ReceiveCounters,
  ReceivedMessage,
} from './receive-stream.js';
export { SendStream } from './send-stream.js';
export type { Segment, SegmentState } from './send-stream.js';
export { DEFAULT_SESSION_OPTIONS, PeerSession } from './session.js';
export type {
  LinkMetrics,
  PeerId,
  PeerMetrics,
  SessionHooks,
  SessionLinkPort,
  SessionMessage,
  SessionOptions,
} from './session.js';
export {
  DEFAULT_BUS_MESSAGE_BYTES,
  MultiplexerClient,
  serveMultiplexerMessages,
} from './bus-api.js';
export type {
  MultiplexerClientCounters,
  MultiplexerClientOptions,
  MultiplexerPort,
} from './bus-api.js';
export {
  certificateFromFile,
  identitySeedFromFile,
  meshKeyFromFile,
  parseAuthorityKeys,
  readIdentitySeed,
  readRevocationLists,
  revocationsFromFile,
  writeRevocationLists,
} from './identity-file.js';
export {
  issueCertificate,
  issueRevocations,
  peekRevocations,
  MAX_CERTIFICATE_BYTES,
  verifyCertificate,
  verifyRevocations,
} from './certificate.js';
export type { CertificateRequest, CertifiedIdentity, Revocations } from './certificate.js';
export { BusLinkDriver } from './bus-link-driver.js';
export { serveLinkDriver } from './link-bridge.js';
export type { LinkBridge, LinkBridgeCounters, LinkBridgeOptions } from './link-bridge.js';
export type { BusLinkDriverCounters } from './bus-link-driver.js';
export {
  multiplexerConfigSchema,
  multiplexerService,
  reloadCertificateFile,
  reloadRevocationsFile,
  startMultiplexerService,
  VERSION,
} from './service.js';
export type { MultiplexerConfig, MultiplexerServiceInstance } from './service.js';
