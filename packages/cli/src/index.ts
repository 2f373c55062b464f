export { PEER_SERVICES, startPeer } from './peer.js';
export type { Peer } from './peer.js';
