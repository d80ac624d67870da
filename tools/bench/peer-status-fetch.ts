// The cost of a sitter's GET /status of another peer over TLS (src/api/shard.ts fetchPeerStatusHttp,
// what /shard and the lag health checks do), in CPU per fetch, with and without the check that the
// peer's certificate is bound to the peer asked (src/tls peerServerIdentity). With the check, each
// peer has a keep-alive agent of its own (src/wire http.ts): a shared pool would reuse a connection
// made under another peer's check, and no pool at all costs a TLS handshake per fetch.
//
//   npx tsx tools/bench/peer-status-fetch.ts [--fetches 300] [--rounds 3]
//
// Prints, per round and mode: CPU ms per fetch (client and server share this process) and wall ms,
// then the medians and the ratio checked/unchecked.
import { parseArgs } from 'node:util';
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { fetchPeerStatusHttp } from '../../src/api/shard.js';
import { CA_CERT_FILE, initCa, issuePeerCertificate, peerCertFile, peerKeyFile, peerServerIdentity } from '../../src/tls/index.js';
import { MemoryStore, peer, statusOf, threePeerState } from '../lib/memory-peer.js';
import { makeTmpDir } from '../lib/tmp.js';

const { values } = parseArgs({ options: { fetches: { type: 'string', default: '300' }, rounds: { type: 'string', default: '3' } } });
const n = Number(values.fetches);
const rounds = Number(values.rounds);
const tmp = await makeTmpDir('bench-status-fetch');
const server = await (async () => {
  const dir = `${tmp.path}/ca`;
  await initCa({ dir, name: 'bench CA' });
  for (const id of ['a', 'b']) await issuePeerCertificate({ dir, peerId: id, hosts: ['127.0.0.1'] });
  const ca = readFileSync(`${dir}/${CA_CERT_FILE}`, 'utf8');
  const pem = (id: string) => ({ cert: readFileSync(peerCertFile(dir, id), 'utf8'), key: readFileSync(peerKeyFile(dir, id), 'utf8') });
  const peers = ['a', 'b', 'c'].map((id) => peer(id));
  const body = JSON.stringify(statusOf(peers[0]!, new MemoryStore(threePeerState(peers), peers)));
  const s = createServer({ ...pem('a'), ca, minVersion: 'TLSv1.3' }, (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(body); });
  await new Promise<void>((r) => { s.listen(0, '127.0.0.1', r); });
  return { s, ca, client: pem('b'), url: `https://127.0.0.1:${(s.address() as { port: number }).port}` };
})();

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const cpu: Record<'unchecked' | 'checked', number[]> = { unchecked: [], checked: [] };
try {
  for (let r = 0; r < rounds; r++) {
    for (const mode of ['unchecked', 'checked'] as const) {
      const tls = { ca: server.ca, ...server.client, ...(mode === 'checked' ? { checkServerIdentity: peerServerIdentity('a') } : {}) };
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await fetchPeerStatusHttp(server.url, 10_000, tls);
      const c = process.cpuUsage(c0);
      const perFetch = (c.user + c.system) / 1000 / n;
      cpu[mode].push(perFetch);
      console.log(`round ${r + 1} ${mode}: ${n} fetches, CPU ${perFetch.toFixed(3)} ms/fetch, wall ${((performance.now() - t0) / n).toFixed(3)} ms/fetch`);
    }
  }
  const u = median(cpu.unchecked);
  const k = median(cpu.checked);
  console.log(`median CPU ms/fetch: unchecked ${u.toFixed(3)}, checked ${k.toFixed(3)}, ratio checked/unchecked ${(k / u).toFixed(2)}`);
} finally {
  server.s.closeAllConnections();
  server.s.close();
  await tmp.cleanup();
}
