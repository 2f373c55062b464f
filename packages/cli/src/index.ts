export { PEER_SERVICES, startPeer } from './peer.js';
export type { Peer } from './peer.js';
export { formatStats, statsFromData, statsFromService } from './store-stats.js';
export type { StoreStatsReport } from './store-stats.js';
