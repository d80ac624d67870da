// The package's main export: what applications use. The sitter, manatee-adm and the API are
// programs (bin/), not part of this surface.
export * from './client/index.js';
export type { ClusterState, PeerInfo } from './model/index.js';
