// API benchmark: latency of the routes that load balancers and dashboards poll, over keep-alive
// HTTP on 127.0.0.1, next to GET /ping measured in the same run as the baseline (the cost of
// fastify and the socket alone). Three API servers over the in-memory reference dependencies
// (tools/lib/memory-peer.ts), so that /shard asks two real peers over HTTP.
//
//   npx tsx tools/bench/api.ts [--requests 2000]
//
// Prints, per route: median and p99 in microseconds, requests per second on one connection, and
// the ratio of the median to /ping's.
import { parseArgs } from 'node:util';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import { MemoryStore, memoryDeps, peer, threePeerState } from '../lib/memory-peer.js';
import { freePort } from '../lib/wait.js';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '2000' } } });
const requests = Number(values.requests);

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => { resolve(res.statusCode ?? 0); });
    });
    req.on('error', reject);
    req.end();
  });
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function measure(url: string, n: number): Promise<{ medianUs: number; p99Us: number; rps: number }> {
  for (let i = 0; i < Math.min(100, n); i++) await get(url); // warm-up
  const times: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await get(url);
    times.push((performance.now() - s) * 1000);
  }
  const totalMs = performance.now() - t0;
  times.sort((a, b) => a - b);
  return { medianUs: quantile(times, 0.5), p99Us: quantile(times, 0.99), rps: (n / totalMs) * 1000 };
}

async function main(): Promise<void> {
  const ports = [await freePort(), await freePort(), await freePort()];
  const peers = ['a', 'b', 'c'].map((id, i) => peer(id, `http://127.0.0.1:${ports[i] ?? 0}`));
  const store = new MemoryStore(threePeerState(peers), peers);
  const servers: FastifyInstance[] = [];
  try {
    for (const [i, self] of peers.entries()) {
      const app = await createApi(memoryDeps({ self, store }));
      servers.push(app);
      await app.listen({ host: '127.0.0.1', port: ports[i] ?? 0 });
    }
    const base = peers[0]!.apiUrl;
    const routes = ['/ping', '/primary', '/replica?lag=10s', '/status', '/state', '/metrics', '/shard'];
    // Warm every route first, so that /ping (measured first) does not pay for the JIT alone.
    for (let i = 0; i < 300; i++) for (const route of routes) await get(`${base}${route}`);
    const results: { route: string; medianUs: number; p99Us: number; rps: number }[] = [];
    for (const route of routes) {
      const n = route === '/shard' ? Math.max(100, Math.floor(requests / 4)) : requests;
      results.push({ route, ...(await measure(`${base}${route}`, n)) });
    }
    const ping = results[0]!.medianUs;
    console.log(`API latency, ${requests} sequential requests per route on one keep-alive connection (node ${process.version})`);
    console.log('route                 median µs    p99 µs     req/s   × /ping');
    for (const r of results) {
      console.log(`${r.route.padEnd(20)} ${r.medianUs.toFixed(0).padStart(10)} ${r.p99Us.toFixed(0).padStart(9)} ${r.rps.toFixed(0).padStart(9)} ${(r.medianUs / ping).toFixed(2).padStart(9)}`);
    }
  } finally {
    agent.destroy();
    await Promise.all(servers.map((s) => s.close()));
  }
}

await main();
