// The client's event logic against real APIs (fastify, GET /watch) over a real cluster store on
// the in-process consensus group: ready/topology, deduplication, failover between peers,
// reconnect with backoff, leaving a peer that lost the leader, close().
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { ReloadableTls } from '../../src/tls/index.js';
import { makeTestCa } from '../helpers/certs.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { createClient, type ManateeClient } from '../../src/client/index.js';
import { CLIENT_ERR, ClientError } from '../../src/client/errors.js';
import type { ClusterState } from '../../src/model/index.js';
import { waitFor } from '../../tools/lib/wait.js';
import { peerInfo, StoreShard } from './fixture.js';

const A = peerInfo('a', 5001);
const B = peerInfo('b', 5002);
const C = peerInfo('c', 5003);
const G1: ClusterState = { generation: 1, primary: A, sync: B, async: [C], deposed: [], initWal: '0/0' };
const G2: ClusterState = { generation: 2, primary: B, sync: C, async: [], deposed: [A], initWal: '0/3000060' };
const G2b: ClusterState = { ...G2, async: [A], deposed: [] };

let shard: StoreShard;
const clients: ManateeClient[] = [];

function client(peers: readonly string[], extra: Partial<Parameters<typeof createClient>[0]> = {}): { c: ManateeClient; topologies: string[][]; events: string[]; errors: ClientError[] } {
  const c = createClient({ peers, backoff: { initialMs: 50, maxMs: 200 }, connectTimeoutMs: 1000, ...extra });
  clients.push(c);
  const topologies: string[][] = [];
  const events: string[] = [];
  const errors: ClientError[] = [];
  c.on('ready', () => events.push('ready'));
  c.on('topology', (t) => {
    events.push('topology');
    topologies.push([...t]);
  });
  c.on('error', (e) => errors.push(e));
  return { c, topologies, events, errors };
}

beforeEach(async () => {
  shard = await StoreShard.create();
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await shard.teardown();
});

describe('client', () => {
  it('emits ready, then the topology, then each change of it; not for state changes that keep the topology', async () => {
    await shard.put(G1);
    await shard.startApi('a');
    const { c, topologies, events } = client([shard.peer('a').url]);
    const states: number[] = [];
    c.on('state', (_s, v) => states.push(v));
    expect(await c.whenReady(10_000)).toEqual([A.pgUrl, B.pgUrl, C.pgUrl]);
    expect(events).toEqual(['ready', 'topology']);
    // A freeze changes the state, not the topology.
    const frozen = await shard.put({ ...G1, freeze: { date: new Date().toISOString(), reason: 'test' } });
    await waitFor('the freeze to be seen', () => c.state()?.version === frozen);
    expect(topologies).toHaveLength(1);
    await shard.put(G1); // unfrozen
    // A takeover: the deposed peer is not in the topology.
    await shard.put(G2);
    await waitFor('the takeover topology', () => topologies.length === 2);
    expect(topologies[1]).toEqual([B.pgUrl, C.pgUrl]);
    expect(c.primaryUrl()).toBe(B.pgUrl);
    // The rebuilt peer comes back as an async.
    await shard.put(G2b);
    await waitFor('the rebuilt async', () => topologies.length === 3);
    expect(topologies[2]).toEqual([B.pgUrl, C.pgUrl, A.pgUrl]);
    expect(states).toEqual([1, 2, 3, 4, 5]);
    expect(events).toEqual(['ready', 'topology', 'topology', 'topology']);
  });

  it('is not ready while the shard has no state, and becomes ready at setup', async () => {
    await shard.startApi('b');
    const { c, events } = client([shard.peer('b').url]);
    await waitFor('the client to follow b', () => c.connectedPeer() === shard.peer('b').url, { timeoutMs: 10_000 });
    expect(c.topology()).toBeNull();
    expect(events).toEqual([]);
    await shard.put(G1);
    expect(await c.whenReady(10_000)).toEqual([A.pgUrl, B.pgUrl, C.pgUrl]);
  });

  it('skips a peer that is not reachable and follows the next one', async () => {
    await shard.put(G1);
    await shard.startApi('c');
    const { c, errors } = client([shard.peer('a').url, shard.peer('b').url, shard.peer('c').url]);
    await c.whenReady(10_000);
    expect(c.connectedPeer()).toBe(shard.peer('c').url);
    expect(errors).toEqual([]);
  });

  it('fails over to another peer when the followed one goes away, and sees the changes committed meanwhile', async () => {
    await shard.put(G1);
    await shard.startApi('a');
    await shard.startApi('b');
    const { c, topologies } = client([shard.peer('a').url, shard.peer('b').url]);
    await c.whenReady(10_000);
    expect(c.connectedPeer()).toBe(shard.peer('a').url);
    const moved: string[] = [];
    c.on('connect', (u) => moved.push(u));
    await shard.stopApi('a');
    // The takeover is committed while the client moves.
    await shard.put(G2);
    await waitFor('the takeover topology', () => topologies.length === 2, { timeoutMs: 10_000 });
    expect(topologies[1]).toEqual([B.pgUrl, C.pgUrl]);
    expect(moved[0]).toBe(shard.peer('b').url);
    // A later change arrives over b's stream.
    await shard.put(G2b);
    await waitFor('the next topology', () => topologies.length === 3, { timeoutMs: 10_000 });
  });

  it('says when no peer can be followed, keeps trying with backoff, and recovers when one comes back', async () => {
    await shard.put(G1);
    const { c, errors } = client([shard.peer('a').url, shard.peer('b').url]);
    await waitFor('two rounds of failures', () => errors.length >= 2, { timeoutMs: 10_000 });
    expect(errors[0]).toBeInstanceOf(ClientError);
    expect(errors[0]!.code).toBe(CLIENT_ERR.noPeer);
    expect(errors[0]!.message).toMatch(/ECONNREFUSED/);
    expect(c.topology()).toBeNull();
    await shard.startApi('b');
    expect(await c.whenReady(10_000)).toEqual([A.pgUrl, B.pgUrl, C.pgUrl]);
  });

  it('leaves a peer that cannot read the committed state (cut off from the leader) for one that can', async () => {
    await shard.put(G1);
    await shard.startApi('b');
    await shard.startApi('c');
    const { c, topologies } = client([shard.peer('b').url, shard.peer('c').url], { checkIntervalMs: 200 });
    await c.whenReady(10_000);
    expect(c.connectedPeer()).toBe(shard.peer('b').url);
    // b's member stops applying (its API and stream stay up, with keepalives, but stale).
    shard.group.stop('b');
    await shard.put(G2);
    await waitFor('the takeover topology through c', () => topologies.length === 2, { timeoutMs: 10_000 });
    expect(c.connectedPeer()).toBe(shard.peer('c').url);
  });

  it('ignores a state older than one already seen (a peer that lags behind)', async () => {
    await shard.put(G1);
    await shard.put(G2);
    await shard.startApi('a');
    // A lagging peer: its store has applied only the first state (version 1).
    const lagging = await StoreShard.create(['x']);
    try {
      await lagging.put(G1);
      await lagging.startApi('x');
      const { c, topologies } = client([shard.peer('a').url, lagging.peer('x').url], { checkIntervalMs: 0 });
      await c.whenReady(10_000);
      expect(c.state()?.version).toBe(2);
      await shard.stopApi('a');
      await waitFor('following the lagging peer', () => c.connectedPeer() === lagging.peer('x').url, { timeoutMs: 10_000 });
      await new Promise((r) => setTimeout(r, 200));
      expect(topologies).toEqual([[B.pgUrl, C.pgUrl]]);
      expect(c.state()?.version).toBe(2);
    } finally {
      for (const x of clients.splice(0)) await x.close();
      await lagging.teardown();
    }
  });

  it('emits nothing after close(), and whenReady() then rejects', async () => {
    await shard.put(G1);
    await shard.startApi('a');
    const { c, topologies } = client([shard.peer('a').url]);
    await c.whenReady(10_000);
    await c.close();
    expect(c.connectedPeer()).toBeNull();
    await shard.put(G2);
    await new Promise((r) => setTimeout(r, 300));
    expect(topologies).toHaveLength(1);
    await expect(createClient({ peers: ['http://127.0.0.1:1'] }).close()).resolves.toBeUndefined();
    const late = createClient({ peers: [shard.peer('b').url] });
    const waiting = expect(late.whenReady(10_000)).rejects.toMatchObject({ code: CLIENT_ERR.closed });
    await late.close();
    await waiting;
  });

  it('backs off from a peer that delivers a state and drops the stream at once, instead of looping', async () => {
    let requests = 0;
    const server = createServer((_req, res) => {
      requests += 1;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`event: state\ndata: ${JSON.stringify({ state: G1, version: 1 })}\n\n`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    try {
      const { c, errors } = client([`http://127.0.0.1:${port}`], { backoff: { initialMs: 100, maxMs: 400 }, checkIntervalMs: 0 });
      await c.whenReady(10_000);
      await new Promise((r) => setTimeout(r, 1500));
      // Without backoff this would be hundreds of requests; with 100..400 ms waits, about a handful.
      expect(requests).toBeLessThan(15);
      expect(errors[0]?.message).toMatch(/the stream ended after \d+ ms/);
      await c.close();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('rejects unusable options with MANATEE_ERR_CLIENT_BAD_OPTIONS naming the option', () => {
    expect(() => createClient({ peers: [] })).toThrow(/peers: must list 1 to 64/);
    expect(() => createClient({ peers: ['not a url'] })).toThrow(/peers\[0\]: "not a url" is not a URL/);
    expect(() => createClient({ peers: ['ftp://x'] })).toThrow(/must be an http or https URL/);
    expect(() => createClient({ peers: ['http://x'], idleTimeoutMs: 0 })).toThrow(/idleTimeoutMs: must be an integer >= 1/);
    expect(() => createClient({ peers: ['http://x'], backoff: { initialMs: 10, maxMs: 5 } })).toThrow(/backoff.maxMs/);
    try {
      createClient({ peers: [] });
    } catch (err) {
      expect((err as ClientError).code).toBe(CLIENT_ERR.badOptions);
    }
  });

  it('checks an https peer against the CA given: the shard CA works; another CA, or none, is refused with an error naming the problem', async () => {
    const tmp = await makeTmpDir('client-tls');
    try {
      const shardCa = await makeTestCa(join(tmp.path, 'shard'));
      const otherCa = await makeTestCa(join(tmp.path, 'other'), 'Another CA');
      const files = await shardCa.peer('a', ['127.0.0.1']);
      const tls = await ReloadableTls.open(files, { expectedPeerId: 'a', log: pino({ level: 'silent' }) });
      await shard.put(G1);
      await shard.startApi('a', tls);
      const url = `https://127.0.0.1:${shard.peer('a').port}`;
      const right = client([url], { ca: await readFile(shardCa.caFile, 'utf8') });
      expect(await right.c.whenReady(10_000)).toEqual([A.pgUrl, B.pgUrl, C.pgUrl]);
      expect(right.c.connectedPeer()).toBe(url);

      const wrong = client([url], { ca: await readFile(otherCa.caFile, 'utf8') });
      await waitFor('a round of failures', () => wrong.errors.length >= 1, { timeoutMs: 10_000 });
      expect(wrong.c.topology()).toBeNull();
      expect(wrong.errors[0]!.message).toContain(`${url} refused: its certificate is not signed by a trusted CA`);
      expect(wrong.errors[0]!.message).toMatch(/is `ca` this shard's CA/);

      const none = client([url]);
      await waitFor('a round of failures', () => none.errors.length >= 1, { timeoutMs: 10_000 });
      expect(none.errors[0]!.message).toMatch(/not signed by a trusted CA .*pass the shard CA's certificate as the client's `ca` option/);
      expect(() => createClient({ peers: [url], ca: shardCa.caFile })).toThrow(/ca: must be the PEM text of the shard CA's certificate/);
    } finally {
      await tmp.cleanup();
    }
  });

  it('times out whenReady() when no topology comes', async () => {
    const { c } = client([shard.peer('a').url]);
    await expect(c.whenReady(300)).rejects.toMatchObject({ code: CLIENT_ERR.noPrimary });
  });
});
