export { discoverPeers, LATTICE_SERVICE_TYPE, MdnsDiscovery } from './discovery.js';
export type { DiscoveredPeer, DiscoverPeersOptions, MdnsDiscoveryOptions } from './discovery.js';
export { lanError, LanErrorCode } from './errors.js';
export type { LanError } from './errors.js';
export {
  decodeBye,
  decodeHello,
  DEFAULT_MAX_FRAME_BYTES,
  encodeBye,
  encodeHello,
  encodeRecord,
  HELLO_BYTES,
  INSTANCE_ID_BYTES,
  LAN_PROTOCOL_VERSION,
  MAX_BYE_BYTES,
  RECORD_HEADER_BYTES,
  RecordDecoder,
  RecordType,
} from './lan-codec.js';
export type { Bye, Hello, RecordHandler } from './lan-codec.js';
export {
  DEFAULT_LAN_PORT,
  DEFAULT_MAX_CONNECTIONS,
  formatHostPort,
  LanLinkDriver,
  parsePeerAddress,
} from './lan-link-driver.js';
export type {
  BackoffOptions,
  LanDriverCounters,
  LanDriverEvent,
  LanLinkDriverOptions,
  LanTlsOptions,
  PeerAddress,
} from './lan-link-driver.js';
export {
  startTransportLanService,
  transportLanConfigSchema,
  transportLanService,
  VERSION,
} from './service.js';
export type { TransportLanConfig, TransportLanServiceInstance } from './service.js';
