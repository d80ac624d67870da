// Real processes: three Raft nodes as separate OS processes on loopback with their storage on disk.
// One is killed with SIGKILL while proposals run and restarted from disk; no acknowledged entry
// may be lost and all nodes must apply the same sequence. A corrupted record stops start-up.
import { afterEach, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProcCluster } from '../../tools/lib/raft-cluster.js';
import { RaftStorage } from '../../src/raft/storage/index.js';
import { waitFor } from '../../tools/lib/wait.js';

let cluster: ProcCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

describe('Raft nodes as OS processes', () => {
  it('loses no acknowledged entry when a node is SIGKILLed during proposals and restarted from disk', async () => {
    const c = await ProcCluster.create(['p1', 'p2', 'p3'], { tickMs: 50, electionTicks: 10, snapshotEveryEntries: 150, keepEntriesAfterSnapshot: 20 });
    cluster = c;
    await Promise.all(['p1', 'p2', 'p3'].map((id) => c.start(id)));
    const firstLeader = await c.leader();

    // Writers send unique commands to every node (followers forward to the leader) until told to stop.
    const acked = new Set<string>();
    let stop = false;
    const ids = ['p1', 'p2', 'p3'];
    const writers = [0, 1, 2, 3].map(async (w) => {
      for (let i = 0; !stop; i++) {
        const target = ids[(w + i) % ids.length]!;
        const v = `w${w}-${i}`;
        const r = await c.propose(target, v, AbortSignal.timeout(15_000));
        if (r.ok) acked.add(v);
        else await new Promise((res) => setTimeout(res, 20));
      }
    });

    await waitFor('some acknowledged writes', () => acked.size >= 60, { timeoutMs: 60_000 });
    // Kill the leader hard, mid-stream.
    await c.kill(firstLeader, 'SIGKILL');
    const killedAt = acked.size;
    await waitFor('writes continue without it', () => acked.size >= killedAt + 60, { timeoutMs: 60_000 });
    // The survivors' dials to the dead leader are refused (its port closed with it): at least one
    // of them forgot it at once and campaigned within a few ticks, not a full election timeout.
    const survivors = ids.filter((id) => id !== firstLeader);
    await waitFor('a survivor heard the dead leader\'s port refuse', async () => {
      const logs = await Promise.all(survivors.map((id) => readFile(c.node(id).cfg.logFile, 'utf8').catch(() => '')));
      return logs.some((l) => l.includes('raft: leader gone, campaigning within a few ticks'));
    }, { timeoutMs: 30_000 });
    // Restart it from its own disk.
    await c.start(firstLeader);
    await waitFor('more writes after the restart', () => acked.size >= killedAt + 160, { timeoutMs: 60_000 });
    // And kill a follower too, to cross a snapshot while it is down.
    const l2 = await c.leader();
    const follower = ids.find((id) => id !== l2)!;
    await c.kill(follower, 'SIGKILL');
    const at2 = acked.size;
    await waitFor('writes past a snapshot', () => acked.size >= at2 + 200, { timeoutMs: 90_000 });
    await c.start(follower);
    stop = true;
    await Promise.all(writers);

    // Everyone converges on the same sequence.
    const finals = await waitFor('all nodes applied the same sequence', async () => {
      const a = await Promise.all(ids.map((id) => c.applied(id)));
      const same = a.every((x) => x.count === a[0]!.count && x.chain === a[0]!.chain);
      return same && a[0]!.count >= acked.size ? a : null;
    }, { timeoutMs: 90_000, intervalMs: 250 });
    const seq = finals[0]!.items;
    for (const f of finals) expect(f.items).toEqual(seq);
    // No acknowledged write was lost, and none was applied twice.
    const applied = new Set(seq);
    expect(applied.size).toBe(seq.length);
    for (const v of acked) expect(applied.has(v), `acknowledged ${v} missing`).toBe(true);
    // Each writer's commands are applied in the order it issued them (it waited for each ack).
    for (let w = 0; w < 4; w++) {
      const mine = seq.filter((v) => v.startsWith(`w${w}-`)).map((v) => Number(v.split('-')[1]));
      expect([...mine].sort((x, y) => x - y)).toEqual(mine);
    }
    // A linearizable read on each node reflects at least everything acknowledged.
    for (const id of ids) {
      const r = await fetch(c.url(id, '/read'));
      expect(r.status).toBe(200);
      expect(((await r.json()) as { count: number }).count).toBeGreaterThanOrEqual(acked.size);
    }
    // The Raft logs on disk agree too: wherever two nodes hold the same index, the entry is the same.
    for (const id of ids) await c.kill(id, 'SIGTERM');
    const logs = new Map<string, Map<number, string>>();
    for (const id of ids) {
      const st = await RaftStorage.open(c.node(id).cfg.dataDir);
      const loaded = await st.load();
      await st.close();
      logs.set(id, new Map(loaded.entries.map((e) => [e.index, `${e.term}/${e.type}/${e.data}`])));
    }
    let compared = 0;
    for (const [index, e] of logs.get(ids[0]!)!) {
      for (const id of ids.slice(1)) {
        const other = logs.get(id)!.get(index);
        if (other === undefined) continue;
        expect(other, `entry ${index} on ${id}`).toBe(e);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(0);
    // The follower that was down across a compaction caught up through a snapshot.
    expect(await readFile(c.node(follower).cfg.logFile, 'utf8')).toContain('installed a snapshot from the leader');
  });

  it('a follower ticks on its leader\'s messages, its timer firing rarely; a leader stopped with SIGSTOP (silent, its port open) is still replaced', async () => {
    const c = await ProcCluster.create(['s1', 's2', 's3'], { tickMs: 100, electionTicks: 5 });
    cluster = c;
    const ids = ['s1', 's2', 's3'];
    await Promise.all(ids.map((id) => c.start(id)));
    const leader = await c.leader();
    const followers = ids.filter((id) => id !== leader);
    const clocks = async (): Promise<Map<string, { ticks: number; timerFires: number }>> =>
      new Map(await Promise.all(ids.map(async (id) => [id, (await c.status(id) as unknown as { clock: { ticks: number; timerFires: number } }).clock] as const)));
    const before = await clocks();
    const until = Date.now() + 3000;
    await waitFor('3 s of an idle group', () => Date.now() > until, { timeoutMs: 10_000, intervalMs: 100 });
    const after = await clocks();
    const delta = (id: string): { ticks: number; timerFires: number } => ({
      ticks: after.get(id)!.ticks - before.get(id)!.ticks, timerFires: after.get(id)!.timerFires - before.get(id)!.timerFires,
    });
    // About 30 ticks each. The leader's timer fires for every tick (a heartbeat every tick); a follower's only when no
    // message came for LAZY_TICKER_HORIZON_MS (500 ms): about 6 times in 3 s.
    expect(delta(leader).ticks).toBeGreaterThanOrEqual(15);
    expect(delta(leader).timerFires).toBeGreaterThanOrEqual(delta(leader).ticks);
    for (const f of followers) {
      expect(delta(f).ticks, `${f}'s ticks`).toBeGreaterThanOrEqual(15);
      expect(delta(f).timerFires, `${f}'s timer fires against its ${delta(f).ticks} ticks`).toBeLessThan(delta(f).ticks / 2);
    }
    // The leader stops without closing anything: its followers hear nothing, and no dial is
    // refused. Their own timers must run out their election timeouts.
    const child = c.node(leader).child!;
    child.kill('SIGSTOP');
    try {
      const next = await c.leader(followers, 30_000);
      expect(followers).toContain(next);
    } finally {
      child.kill('SIGCONT');
    }
    const rejoined = await c.leader(ids, 30_000);
    expect(rejoined).not.toBe(leader);
  });

  it('a leader with a heartbeat every 2 ticks wakes once per heartbeat: its timer fires for about half its ticks, and the group keeps its term', async () => {
    const c = await ProcCluster.create(['h1', 'h2', 'h3'], { tickMs: 100, electionTicks: 5, heartbeatTicks: 2 });
    cluster = c;
    const ids = ['h1', 'h2', 'h3'];
    await Promise.all(ids.map((id) => c.start(id)));
    const leader = await c.leader();
    type Clocked = { term: number; leader: string | null; clock: { ticks: number; timerFires: number } };
    const statuses = async (): Promise<Map<string, Clocked>> =>
      new Map(await Promise.all(ids.map(async (id) => [id, await c.status(id) as unknown as Clocked] as const)));
    const startedMs = Date.now();
    const before = await statuses();
    const until = Date.now() + 3000;
    await waitFor('3 s of an idle group', () => Date.now() > until, { timeoutMs: 10_000, intervalMs: 100 });
    const after = await statuses();
    const wallMs = Date.now() - startedMs;
    const ticks = after.get(leader)!.clock.ticks - before.get(leader)!.clock.ticks;
    const fires = after.get(leader)!.clock.timerFires - before.get(leader)!.clock.timerFires;
    // About 30 ticks and 15 heartbeats: the timer runs out at heartbeats only (a message may run a
    // tick between them, never add a fire), where it fired at every tick before (about 30). A
    // starved process runs fewer ticks than came due, never more fires than heartbeats were due.
    expect(ticks).toBeGreaterThanOrEqual(10);
    expect(fires, `the leader's timer fires against its ${ticks} ticks in ${wallMs} ms`).toBeLessThanOrEqual(Math.ceil(wallMs / 200) + 2);
    expect(fires).toBeGreaterThanOrEqual(5);
    // Heartbeats every 200 ms against a 500-1000 ms election timeout keep every follower with it.
    for (const id of ids) {
      expect(after.get(id)!.term, `${id}'s term`).toBe(before.get(leader)!.term);
      expect(after.get(id)!.leader, `${id}'s leader`).toBe(leader);
    }
  });

  it('refuses to start on a corrupted record, naming the file and the index', async () => {
    const c = await ProcCluster.create(['q1', 'q2', 'q3'], { tickMs: 50, electionTicks: 10 });
    cluster = c;
    await Promise.all(['q1', 'q2', 'q3'].map((id) => c.start(id)));
    const leader = await c.leader();
    for (let i = 0; i < 20; i++) expect((await c.propose(leader, `v${i}`)).ok).toBe(true);
    const victim = ['q1', 'q2', 'q3'].find((id) => id !== leader)!;
    await waitFor('victim applied everything', async () => (await c.status(victim))?.count === 20);
    await c.kill(victim, 'SIGKILL');

    // Flip one byte inside entry 10's record in the log segment, behind the node's back.
    const dir = c.node(victim).cfg.dataDir;
    const segment = join(dir, 'wal', '0000000000000001.log');
    const raw = await readFile(segment);
    const at = raw.indexOf(Buffer.from('"index":10,'));
    expect(at).toBeGreaterThan(0);
    raw[at + 9] = raw[at + 9]! ^ 0x20;
    await writeFile(segment, raw);

    const n = c.spawn(victim);
    const exit = await n.exited!;
    expect(exit.code).toBe(2);
    expect(n.stderr).toContain('MANATEE_ERR_RAFT_STORAGE_CORRUPT');
    expect(n.stderr).toContain(dir);
    expect(n.stderr).toContain('wal/0000000000000001.log@');
    // The first index at stake: 10, or the first of a batch that held it.
    const index = Number(/\(index (\d+)\)/.exec(n.stderr)?.[1]);
    expect(index).toBeGreaterThanOrEqual(1);
    expect(index).toBeLessThanOrEqual(10);
    expect(n.stderr).toMatch(/checksum mismatch/);

    // The other two still serve.
    const r = await c.propose(leader, 'still-alive');
    expect(r.ok).toBe(true);
  });
});
