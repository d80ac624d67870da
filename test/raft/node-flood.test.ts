// Issue #14's probe, on a real Raft group: hundreds of half-open sockets on every peer's Raft
// port, from many addresses and reopened as soon as they are closed, while a peer restarts. The
// peer must rejoin and the group must keep committing.
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { RaftNode } from '../../src/raft/node.js';
import { ListMachine } from '../helpers/list-machine.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { startFlood, type Flood } from './flood.js';

const SECRET = 'flood-test-secret-0123456789';
const logger = pino({ level: process.env['RAFT_TEST_LOG'] ?? 'silent' });


const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

describe('Raft under a flood of half-open sockets', () => {
  it('a restarted peer rejoins and the group still commits', async () => {
    const tmp = await makeTmpDir('raft-flood');
    cleanups.push(tmp.cleanup);
    const ids = ['a', 'b', 'c'];
    const ports = new Map<string, number>();
    for (const id of ids) ports.set(id, await freePort());
    const peers = Object.fromEntries(ids.map((id) => [id, `127.0.0.1:${ports.get(id)!}`]));
    const machines = new Map<string, ListMachine>();
    const nodes = new Map<string, RaftNode>();
    const start = async (id: string): Promise<void> => {
      const sm = new ListMachine();
      machines.set(id, sm);
      const n = await RaftNode.open({
        id, dataDir: `${tmp.path}/${id}`, peers, initialVoters: ids, secret: SECRET, listen: { host: '127.0.0.1', port: ports.get(id)! },
        stateMachine: sm, logger, tickMs: 50, electionTicks: 10, heartbeatTicks: 1, requestTimeoutMs: 10_000,
      });
      await n.start();
      nodes.set(id, n);
    };
    cleanups.push(async () => { for (const n of nodes.values()) await n.close(); });
    for (const id of ids) await start(id);
    const leader = async (): Promise<RaftNode> => waitFor('a leader', () => {
      const l = [...nodes.values()].find((n) => n.status().role === 'leader');
      return l !== undefined && [...nodes.values()].every((n) => n.status().leader === l.id) ? l : null;
    }, { timeoutMs: 60_000, intervalMs: 50 });
    await (await leader()).propose('before');

    // 160 half-open sockets on each Raft port from 40 addresses, reopened when closed.
    const floods: Flood[] = [];
    for (const id of ids) {
      const base = 10 + ids.indexOf(id) * 40;
      floods.push(startFlood(ports.get(id)!, { addresses: Array.from({ length: 40 }, (_, i) => `127.0.0.${base + i}`), socketsPerAddress: 4, reopen: true }));
    }
    cleanups.push(() => { for (const f of floods) f.stop(); });
    await waitFor('floods opened', () => floods.every((f) => f.opened() >= 160));

    const l1 = await leader();
    const follower = ids.find((id) => id !== l1.id)!;
    await nodes.get(follower)!.close();
    nodes.delete(follower);
    await waitFor('the two others commit', async () => (await l1.propose('while-down').then(() => true, () => false)), { timeoutMs: 60_000 });
    await start(follower);
    const back = machines.get(follower)!;
    await waitFor('the restarted peer caught up', () => back.items.includes('while-down'), { timeoutMs: 60_000 });
    const l2 = await leader();
    await l2.propose('after');
    await waitFor('every peer applied the last entry', () => [...machines.values()].every((m) => m.items.at(-1) === 'after'), { timeoutMs: 60_000 });
    const evicted = [...nodes.values()].reduce((sum, n) => sum + n.status().transport.connectionsEvicted, 0);
    expect(evicted).toBeGreaterThan(0);
    expect(floods.every((f) => f.opened() > 160)).toBe(true);
  });
});
