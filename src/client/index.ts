// The client library for applications (the successor of node-manatee): follow the shard's
// topology, and a pg Pool that always talks to the current primary.
//
//   const client = createClient({ peers: ['http://10.0.0.1:5480', 'http://10.0.0.2:5480'] });
//   client.on('topology', ([primary, sync, ...asyncs]) => { ... });
//   const pool = client.pool({ user: 'app', password: '...', database: 'app' });
//   await pool.query('INSERT INTO t VALUES ($1)', [1]);
export { createClient, ManateeClient, type ClientEvents, type ClientOptions } from './client.js';
export { createPool, connectionOf, PrimaryPool, releaseAfter, type PrimaryPoolEvents, type PrimaryPoolOptions } from './pool.js';
export { sameTopology, topologyOf, type Topology } from './topology.js';
export { SseParser, SseParseError, type SseEvent } from './sse.js';
export { CLIENT_ERR, ClientError, type ClientErrorCode } from './errors.js';
