// GET /watch's limit holds under a burst: the check and the count are one step, so that requests
// waiting on the initial read cannot all pass the check (the probe saw 103 to 150 streams open
// against a limit of 64). The initial read is made slow here, as a linearizable read through a
// busy Raft leader is, to give every request of the burst the chance to slip through.
import { afterEach, describe, expect, it } from 'vitest';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import { API_LIMITS_DEFAULT } from '../../src/api/types.js';
import { MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';
import { waitFor } from '../../tools/lib/wait.js';

let app: FastifyInstance | null = null;

afterEach(async () => {
  await app?.close();
  app = null;
});

async function slowApi(readDelayMs: number, watchersMax?: number): Promise<string> {
  const peers = ['a', 'b', 'c'].map((id) => peer(id));
  const store = new MemoryStore(threePeerState(peers), peers);
  const deps = memoryDeps({ self: peers[0]!, store, ...(watchersMax === undefined ? {} : { limits: { watchersMax } }) });
  app = await createApi({
    ...deps,
    state: async () => {
      await new Promise((r) => setTimeout(r, readDelayMs));
      return store.readState();
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address() as { port: number };
  return `http://127.0.0.1:${addr.port}`;
}

function open(url: string): { req: ClientRequest; answer: Promise<IncomingMessage> } {
  let req!: ClientRequest;
  const answer = new Promise<IncomingMessage>((resolve, reject) => {
    req = request(`${url}/watch`, { method: 'GET' }, resolve);
    req.on('error', reject);
    req.end();
  });
  return { req, answer };
}

describe('GET /watch under a burst', () => {
  it('150 concurrent requests: exactly the limit get a stream, the rest 503', async () => {
    const url = await slowApi(300);
    const max = API_LIMITS_DEFAULT.watchersMax;
    const burst = Array.from({ length: 150 }, () => open(url));
    const answers = await Promise.all(burst.map((b) => b.answer));
    try {
      const statuses = answers.map((r) => r.statusCode);
      expect(statuses.filter((s) => s === 200)).toHaveLength(max);
      expect(statuses.filter((s) => s === 503)).toHaveLength(150 - max);
    } finally {
      for (const r of answers) r.destroy();
    }
    // Every slot comes back when the streams end.
    await waitFor('a free slot after the streams closed', async () => {
      const again = await Promise.all(Array.from({ length: max }, () => open(url).answer));
      for (const r of again) r.destroy();
      return again.every((r) => r.statusCode === 200);
    }, { timeoutMs: 30_000 });
  });

  it('a client that leaves during the initial read gives its slot back', async () => {
    const url = await slowApi(500, 1);
    const leaving = open(url);
    leaving.answer.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    leaving.req.destroy();
    const next = await waitFor('the slot of the client that left', async () => {
      const r = await open(url).answer;
      if (r.statusCode === 200) return r;
      r.destroy();
      return null;
    }, { timeoutMs: 30_000 });
    next.destroy();
    expect(next.statusCode).toBe(200);
  });
});
