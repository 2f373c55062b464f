export {
  ApiKeys,
  assertPlaygroundAllowed,
  isLoopback,
  keyEntrySchema,
  keysFileSchema,
  parseKeys,
  readKeysFile,
} from './auth.js';
export type { KeyEntry, KeyEntryInput, KeysReload } from './auth.js';
export { decodeArgs, queryTypeOf, toExecuteResponse, toObserveResponse } from './codec.js';
export { GatewayErrorCode, gatewayError } from './errors.js';
export { startGateway } from './gateway.js';
export type { Gateway, GatewayOptions, GatewayTls } from './gateway.js';
export {
  addDqlService,
  DQL_SERVICE_NAME,
  DqlClient,
  dqlServiceDefinition,
  errorCodeOf,
  subscriptionId,
  toServiceError,
} from './grpc-server.js';
export type { DqlServiceOptions } from './grpc-server.js';
export { createHttpApi, EXECUTE_PATH } from './http-server.js';
export type { HttpApiOptions } from './http-server.js';
export { Observer, ObserverHub, sequential } from './observers.js';
export type {
  ObserveBatch,
  ObserveOptions,
  ObserverHubOptions,
  ObserverStats,
  OverflowPolicy,
} from './observers.js';
export { InProcessPeer } from './peer-api.js';
export { BusPeer } from './bus-peer.js';
export type { BusPeerOptions } from './bus-peer.js';
export { authorizeStatement, fullAccess, isFullAccess, withinRead } from './permissions.js';
export type { Principal } from './permissions.js';
export { addReflection, DESCRIPTOR_SET_PATH, splitDescriptorSet } from './reflection.js';
export type { InProcessPeerOptions, PeerApi, PeerExecuteResult } from './peer-api.js';
export {
  gatewayConfigSchema,
  gatewayOptionsFrom,
  gatewayService,
  reloadKeysFile,
  startGatewayService,
  VERSION,
} from './service.js';
export type { GatewayConfig, GatewayServiceInstance } from './service.js';
export { WebSocketLinkDriver } from './ws-link-driver.js';
export type { WebSocketLinkDriverOptions } from './ws-link-driver.js';
