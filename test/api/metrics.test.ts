// What an operator sees without reading logs, on a real fastify server on 127.0.0.1: the hook
// counters (real executables: one that fails, one that hangs, one that succeeds) in GET /status
// and GET /metrics, and every metric of issue 6's list (role, generation, Raft term/leader/commit
// index, session count, replication lag per link, health-check latency, decisions by kind,
// failovers, rebuild progress), including that a link or leader that goes leaves no stale series.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { ApiMetrics } from '../../src/api/metrics.js';
import { createApi } from '../../src/api/server.js';
import { HOOKS_CONFIG_DEFAULT, type HookDocument, type HooksConfig } from '../../src/peer/hooks.js';
import { HookRunner } from '../../src/peer/hook-runner.js';
import type { HookEvent, HookFailure, SitterStatus, PeerInfo } from '../../src/model/index.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { MemoryStore, capturingLogger, memoryDeps, peer, statusOf, threePeerState } from '../../tools/lib/memory-peer.js';

let dir: { path: string; cleanup: () => Promise<void> };
let app: FastifyInstance | null = null;
let runner: HookRunner | null = null;
let baseUrl = '';
let peers: PeerInfo[];
let store: MemoryStore;
let metrics: ApiMetrics;
/** Changes to the status the server reports, on top of statusOf() (a sitter's status of the in-memory shard). */
let patch: (s: SitterStatus) => SitterStatus;

async function script(name: string, body: string): Promise<string> {
  const path = join(dir.path, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

/** A server for peer a whose status carries `runner`'s hooks, and whose metrics observe it: the sitter's wiring (src/peer/sitter.ts). */
async function serve(hooks: Partial<HooksConfig> | null): Promise<void> {
  const port = await freePort();
  peers = ['a', 'b', 'c'].map((id) => peer(id));
  store = new MemoryStore(threePeerState(peers), peers);
  metrics = new ApiMetrics();
  const self = peers[0]!;
  const r = hooks === null ? null : new HookRunner({ config: { ...HOOKS_CONFIG_DEFAULT, ...hooks }, log: pino({ level: 'silent' }), observer: metrics });
  runner = r;
  const deps = memoryDeps({ self, store });
  app = await createApi({
    ...deps,
    metrics,
    status: () => {
      const s = statusOf(self, store);
      return Promise.resolve(patch(r === null ? s : { ...s, hooks: r.status() }));
    },
  });
  await app.listen({ host: '127.0.0.1', port });
  baseUrl = `http://127.0.0.1:${port}`;
}

async function getText(path: string): Promise<string> {
  const res = await fetch(`${baseUrl}${path}`);
  expect(res.status).toBe(200);
  return res.text();
}

async function getStatus(): Promise<SitterStatus> {
  return JSON.parse(await getText('/status')) as SitterStatus;
}

/** The value of one sample line (`name{labels} value`), or null when the series is absent. */
function sample(text: string, series: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return null;
}

function seriesOf(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

function doc(event: HookEvent): HookDocument {
  return { event, time: new Date().toISOString(), peer: peers[0]!, role: 'primary', state: store.state, version: store.version, activePeers: peers, details: {} };
}

beforeEach(async () => {
  dir = await makeTmpDir('metrics');
  patch = (s) => s;
});

afterEach(async () => {
  await runner?.stop(100);
  runner = null;
  await app?.close();
  app = null;
  await dir.cleanup();
});

describe('hook outcomes in GET /status and GET /metrics', () => {
  it('counts ok, failed, timed-out and dropped runs per event, with the last failure, after real runs', async () => {
    const ok = await script('ok.sh', 'cat > /dev/null');
    const fail = await script('fail.sh', 'echo "cannot reach the pager" >&2\nexit 3');
    const hang = await script('hang.sh', 'sleep 300');
    await serve({ events: { sitter_up: [ok], peer_down: [fail], heartbeat: [hang] }, timeoutMs: 500, killGraceMs: 200, queueMax: 1 });
    const r = runner!;

    // Before any run: the configured events are there with zeros, in both places; no failure yet.
    const before = await getStatus();
    const zero = { ok: 0, failed: 0, timedOut: 0, dropped: 0 };
    expect(before.hooks).toEqual({ events: { sitter_up: zero, peer_down: zero, heartbeat: zero }, running: 0, queued: 0, lastFailure: null });
    const m0 = await getText('/metrics');
    expect(sample(m0, 'manatee_hook_runs_total{event="peer_down",outcome="failed"}')).toBe(0);
    expect(sample(m0, 'manatee_hook_runs_total{event="heartbeat",outcome="timedOut"}')).toBe(0);
    // Events without an executable have no series.
    expect(seriesOf(m0, 'manatee_hook_runs_total').some((l) => l.includes('event="deposed"'))).toBe(false);

    expect(r.submit(doc('sitter_up'))).toBe(true);
    expect(r.submit(doc('peer_down'))).toBe(true);
    // heartbeat: one runs, one waits (queueMax 1), the third is dropped.
    expect(r.submit(doc('heartbeat'))).toBe(true);
    expect(r.submit(doc('heartbeat'))).toBe(true);
    expect(r.submit(doc('heartbeat'))).toBe(false);
    // While the hanging hook runs, /status says so.
    const during = await getStatus();
    expect(during.hooks?.running).toBeGreaterThanOrEqual(1);
    await waitFor('hooks idle', () => r.idle, { timeoutMs: 20_000 });

    const after = (await getStatus()).hooks!;
    expect(after.events).toEqual({
      sitter_up: { ok: 1, failed: 0, timedOut: 0, dropped: 0 },
      peer_down: { ok: 0, failed: 1, timedOut: 0, dropped: 0 },
      heartbeat: { ok: 0, failed: 0, timedOut: 2, dropped: 1 },
    });
    expect(after).toMatchObject({ running: 0, queued: 0 });
    // The hanging heartbeat ended last: it is the last failure, killed by SIGTERM at its timeout.
    expect(after.lastFailure).toMatchObject({ event: 'heartbeat', command: hang, outcome: 'timedOut', exitCode: null, signal: 'SIGTERM' });
    expect(after.lastFailure?.reason).toMatch(/timed out after 500 ms/);
    expect(after.lastFailure?.durationMs).toBeGreaterThanOrEqual(500);
    expect(Date.now() - Date.parse(after.lastFailure?.at ?? '')).toBeLessThan(60_000);

    const m = await getText('/metrics');
    expect(sample(m, 'manatee_hook_runs_total{event="sitter_up",outcome="ok"}')).toBe(1);
    expect(sample(m, 'manatee_hook_runs_total{event="peer_down",outcome="failed"}')).toBe(1);
    expect(sample(m, 'manatee_hook_runs_total{event="heartbeat",outcome="timedOut"}')).toBe(2);
    expect(sample(m, 'manatee_hook_runs_total{event="heartbeat",outcome="dropped"}')).toBe(1);
    expect(sample(m, 'manatee_hook_runs_total{event="heartbeat",outcome="ok"}')).toBe(0);
    // Durations of the runs that started (not of the dropped one).
    expect(sample(m, 'manatee_hook_duration_seconds_count{event="heartbeat"}')).toBe(2);
    expect(sample(m, 'manatee_hook_duration_seconds_sum{event="heartbeat"}')).toBeGreaterThanOrEqual(1);
    expect(sample(m, 'manatee_hook_duration_seconds_count{event="peer_down"}')).toBe(1);
    expect(sample(m, 'manatee_hook_duration_seconds_bucket{le="+Inf",event="sitter_up"}')).toBe(1);

    // A later failure with an exit status replaces it.
    r.submit(doc('peer_down'));
    await waitFor('peer_down ran again', () => r.status().events.peer_down?.failed === 2, { timeoutMs: 20_000 });
    const last = (await getStatus()).hooks?.lastFailure;
    expect(last).toMatchObject({ event: 'peer_down', command: fail, outcome: 'failed', exitCode: 3, signal: null, reason: 'exited with status 3' } satisfies Partial<HookFailure>);
    expect(sample(await getText('/metrics'), 'manatee_hook_runs_total{event="peer_down",outcome="failed"}')).toBe(2);
  }, 60_000);

  it('reports a hook that cannot start as failed, with the reason', async () => {
    await serve({ events: { deposed: [join(dir.path, 'missing.sh')] } });
    runner!.submit(doc('deposed'));
    await waitFor('failed', () => runner!.status().events.deposed?.failed === 1, { timeoutMs: 20_000 });
    const hooks = (await getStatus()).hooks;
    expect(hooks?.lastFailure).toMatchObject({ event: 'deposed', outcome: 'failed', exitCode: null, signal: null });
    expect(hooks?.lastFailure?.reason).toMatch(/^could not start: .*ENOENT/);
    expect(sample(await getText('/metrics'), 'manatee_hook_runs_total{event="deposed",outcome="failed"}')).toBe(1);
  });

  it('counts the runs still queued when the runner stops as dropped', async () => {
    const hang = await script('hang.sh', 'sleep 300');
    await serve({ events: { heartbeat: [hang] }, queueMax: 4 });
    for (let i = 0; i < 3; i++) runner!.submit(doc('heartbeat'));
    await waitFor('running', () => runner!.status().running === 1, { timeoutMs: 10_000 });
    expect(runner!.status().queued).toBe(2);
    await runner!.stop(100);
    // The running one was killed at stop (failed: a signal, not the timeout); the two waiting were dropped.
    expect(runner!.status().events.heartbeat).toEqual({ ok: 0, failed: 1, timedOut: 0, dropped: 2 });
    expect(sample(await getText('/metrics'), 'manatee_hook_runs_total{event="heartbeat",outcome="dropped"}')).toBe(2);
  });

  it('an observer that throws is logged and ignored: runs and counts go on', async () => {
    const ok = await script('ok.sh', 'cat > /dev/null');
    const { logger, lines } = capturingLogger();
    const r = new HookRunner({
      config: { ...HOOKS_CONFIG_DEFAULT, events: { sitter_up: [ok] } },
      log: logger,
      observer: { hookOutcome: () => { throw new Error('observer bug'); } },
    });
    runner = r;
    r.submit(doc('sitter_up'));
    r.submit(doc('sitter_up'));
    await waitFor('both ran', () => r.status().events.sitter_up?.ok === 2, { timeoutMs: 20_000 });
    expect(lines().filter((l) => l['msg'] === 'a hook outcome observer threw; ignored' && l['err'] === 'observer bug')).toHaveLength(2);
  });

  it('a status without hooks (no runner) has no hooks field and no hook series', async () => {
    await serve(null);
    expect((await getStatus()).hooks).toBeUndefined();
    expect(seriesOf(await getText('/metrics'), 'manatee_hook_runs_total')).toEqual([]);
  });

  it('ApiMetrics ignores an outcome outside the closed label sets', async () => {
    const m = new ApiMetrics();
    m.hookOutcome('not_an_event' as HookEvent, 'ok', 10);
    m.hookOutcome('heartbeat', 'exploded' as 'ok', 10);
    m.hookOutcome('heartbeat', 'ok', 10);
    const text = await m.registry.metrics();
    expect(seriesOf(text, 'manatee_hook_runs_total')).toEqual(['manatee_hook_runs_total{event="heartbeat",outcome="ok"} 1']);
  });
});

describe('GET /metrics: the list of issue 6', () => {
  beforeEach(async () => {
    await serve(null);
  });

  it('role, generation, state version, frozen, sessions and PostgreSQL state', async () => {
    const m = await getText('/metrics');
    expect(sample(m, 'manatee_role{role="primary"}')).toBe(1);
    expect(sample(m, 'manatee_role{role="async"}')).toBe(0);
    expect(sample(m, 'manatee_generation')).toBe(3);
    expect(sample(m, 'manatee_state_version')).toBe(store.version);
    expect(sample(m, 'manatee_frozen')).toBe(0);
    expect(sample(m, 'manatee_sessions')).toBe(3);
    expect(sample(m, 'manatee_postgres_up')).toBe(1);
    expect(sample(m, 'manatee_postgres_healthy')).toBe(1);
    expect(sample(m, 'manatee_postgres_writable')).toBe(1);
    // A peer's session ends: the count follows; before setup the generation is -1.
    store.setActive(peers.slice(0, 2));
    store.state = null;
    const later = await getText('/metrics');
    expect(sample(later, 'manatee_sessions')).toBe(2);
    expect(sample(later, 'manatee_generation')).toBe(-1);
    expect(sample(later, 'manatee_role{role="unassigned"}')).toBe(1);
  });

  it('Raft term, commit and applied index, and the leader (one series that follows the leader)', async () => {
    patch = (s) => ({ ...s, raft: { id: 'a', term: 7, leader: 'a', role: 'leader', commit: 41, applied: 40 } });
    let m = await getText('/metrics');
    expect(sample(m, 'manatee_raft_term')).toBe(7);
    expect(sample(m, 'manatee_raft_commit_index')).toBe(41);
    expect(sample(m, 'manatee_raft_applied_index')).toBe(40);
    expect(sample(m, 'manatee_raft_is_leader')).toBe(1);
    expect(sample(m, 'manatee_raft_has_leader')).toBe(1);
    expect(seriesOf(m, 'manatee_raft_leader')).toEqual(['manatee_raft_leader{leader="a"} 1']);
    patch = (s) => ({ ...s, raft: { id: 'a', term: 8, leader: 'b', role: 'follower', commit: 45, applied: 45 } });
    m = await getText('/metrics');
    expect(sample(m, 'manatee_raft_is_leader')).toBe(0);
    expect(seriesOf(m, 'manatee_raft_leader')).toEqual(['manatee_raft_leader{leader="b"} 1']);
    patch = (s) => ({ ...s, raft: { id: 'a', term: 9, leader: null, role: 'candidate', commit: 45, applied: 45 } });
    m = await getText('/metrics');
    expect(sample(m, 'manatee_raft_has_leader')).toBe(0);
    expect(seriesOf(m, 'manatee_raft_leader')).toEqual([]);
  });

  it('replication lag per link in bytes and seconds; a link that goes leaves no series', async () => {
    const row = (to: string, lag: number): SitterStatus['replication'][number] => ({
      applicationName: to, clientAddr: '127.0.0.1', state: 'streaming', syncState: 'async', sentLsn: null, writeLsn: null, flushLsn: null, replayLsn: null, replayLagBytes: lag,
    });
    patch = (s) => ({ ...s, replication: [row('b', 100), row('c', 2048)] });
    let m = await getText('/metrics');
    expect(sample(m, 'manatee_replication_lag_bytes{upstream="a",downstream="b",state="streaming"}')).toBe(100);
    expect(sample(m, 'manatee_replication_lag_bytes{upstream="a",downstream="c",state="streaming"}')).toBe(2048);
    expect(sample(m, 'manatee_replication_lag_seconds{peer="a",upstream=""}')).toBe(0);
    // c is removed from the shard: its link's series goes with it.
    patch = (s) => ({ ...s, replication: [row('b', 50)], heartbeat: undefined });
    m = await getText('/metrics');
    expect(seriesOf(m, 'manatee_replication_lag_bytes')).toEqual(['manatee_replication_lag_bytes{upstream="a",downstream="b",state="streaming"} 50']);
    expect(seriesOf(m, 'manatee_replication_lag_seconds')).toEqual([]);
  });

  it('settings that PostgreSQL refuses: one series per setting and file, and none once they are fixed', async () => {
    const rejected = { name: 'wrok_mem', value: '1MB', file: 'manatee-overrides.conf', source: 'peer overrides file' as const, line: 2, error: 'unrecognized configuration parameter', blocksReload: true, reason: 'unknown setting "wrok_mem" in manatee-overrides.conf line 2: PostgreSQL applies no change of any configuration file at a reload while it is there, and would not start with it; correct or remove it' };
    const settings = (r: typeof rejected[]) => ({ version: 2, appliedVersion: 2, pendingRestart: [], settings: [], rejected: r, error: null });
    patch = (s) => ({ ...s, settings: settings([rejected, { ...rejected, name: 'maintenance_work_mem', error: 'setting could not be applied', blocksReload: false }]) });
    let m = await getText('/metrics');
    expect(sample(m, 'manatee_postgres_rejected_setting{setting="wrok_mem",file="manatee-overrides.conf",blocks_reload="true"}')).toBe(1);
    expect(sample(m, 'manatee_postgres_rejected_setting{setting="maintenance_work_mem",file="manatee-overrides.conf",blocks_reload="false"}')).toBe(1);
    expect(sample(m, 'manatee_postgres_rejected_settings')).toBe(2);
    patch = (s) => ({ ...s, settings: settings([]) });
    m = await getText('/metrics');
    expect(seriesOf(m, 'manatee_postgres_rejected_setting')).toEqual([]);
    expect(sample(m, 'manatee_postgres_rejected_settings')).toBe(0);
  });

  it('the credentials\' fingerprints as an info metric: one series per value held, none for a value dropped, none without credentials', async () => {
    const creds = { secret: '0a1b2c3d4e5f', acceptedSecrets: ['9f8e7d6c5b4a'], adminToken: '112233445566', acceptedAdminTokens: [] as string[] };
    patch = (s) => ({ ...s, credentials: creds });
    let m = await getText('/metrics');
    expect(seriesOf(m, 'manatee_credentials_info').sort()).toEqual([
      'manatee_credentials_info{kind="admin_token",use="current",fingerprint="112233445566"} 1',
      'manatee_credentials_info{kind="secret",use="accepted",fingerprint="9f8e7d6c5b4a"} 1',
      'manatee_credentials_info{kind="secret",use="current",fingerprint="0a1b2c3d4e5f"} 1',
    ]);
    // The rotation's last step: the old secret dropped, the token rotated.
    patch = (s) => ({ ...s, credentials: { ...creds, acceptedSecrets: [], adminToken: 'aabbccddeeff', acceptedAdminTokens: ['112233445566'] } });
    m = await getText('/metrics');
    expect(seriesOf(m, 'manatee_credentials_info').sort()).toEqual([
      'manatee_credentials_info{kind="admin_token",use="accepted",fingerprint="112233445566"} 1',
      'manatee_credentials_info{kind="admin_token",use="current",fingerprint="aabbccddeeff"} 1',
      'manatee_credentials_info{kind="secret",use="current",fingerprint="0a1b2c3d4e5f"} 1',
    ]);
    patch = (s) => { const { credentials: _, ...rest } = s; return rest; };
    expect(seriesOf(await getText('/metrics'), 'manatee_credentials_info')).toEqual([]);
  });

  it('health-check latency: the last one as a gauge, each new check once in the histogram', async () => {
    let at = new Date(Date.now() - 10_000).toISOString();
    let latencyMs = 30;
    patch = (s) => ({ ...s, postgres: { ...s.postgres, lastCheckAt: at, checkLatencyMs: latencyMs } });
    await getText('/metrics');
    let m = await getText('/metrics'); // the same check scraped twice counts once
    expect(sample(m, 'manatee_health_check_latency_seconds')).toBe(0.03);
    expect(sample(m, 'manatee_health_check_duration_seconds_count')).toBe(1);
    at = new Date().toISOString();
    latencyMs = 700;
    m = await getText('/metrics');
    expect(sample(m, 'manatee_health_check_latency_seconds')).toBe(0.7);
    expect(sample(m, 'manatee_health_check_duration_seconds_count')).toBe(2);
    expect(sample(m, 'manatee_health_check_duration_seconds_bucket{le="0.05"}')).toBe(1);
    expect(sample(m, 'manatee_health_check_duration_seconds_bucket{le="1"}')).toBe(2);
  });

  it('decisions by kind, with a bound on the number of kinds', async () => {
    metrics.recordDecision('none');
    metrics.recordDecision('none');
    metrics.recordDecision('takeover');
    let m = await getText('/metrics');
    expect(sample(m, 'manatee_decisions_total{kind="none"}')).toBe(2);
    expect(sample(m, 'manatee_decisions_total{kind="takeover"}')).toBe(1);
    for (let i = 0; i < 100; i++) metrics.recordDecision(`bogus-${i}`);
    m = await getText('/metrics');
    expect(seriesOf(m, 'manatee_decisions_total')).toHaveLength(64);
    expect(sample(m, 'manatee_decisions_total{kind="none"}')).toBe(2);
  });

  it('failovers: each change of primary in the committed states', async () => {
    const [a, b, c] = peers as [PeerInfo, PeerInfo, PeerInfo];
    expect(sample(await getText('/metrics'), 'manatee_failovers_total')).toBe(0);
    store.commit({ generation: 4, primary: b, sync: c, async: [], deposed: [a], initWal: '0/4000000' }, 'b took over');
    store.commit({ generation: 5, primary: b, sync: a, async: [], deposed: [], initWal: '0/4000000' }, 'a came back as sync');
    store.commit({ generation: 6, primary: a, sync: b, async: [c], deposed: [], initWal: '0/5000000' }, 'switchover to a');
    expect(sample(await getText('/metrics'), 'manatee_failovers_total')).toBe(2);
  });

  it('rebuild progress: running, percent and bytes while it runs; -1 and 0 after', async () => {
    patch = (s) => ({
      ...s,
      rebuild: { running: true, reason: 'operator asked', source: 'b', lastError: null, lastResult: null, progress: { phase: 'receiving', percent: 42.5, bytesDone: 1_048_576, bytesTotal: 2_467_000, rateBytesPerSec: 500_000, etaSec: 3 } },
    });
    let m = await getText('/metrics');
    expect(sample(m, 'manatee_rebuild_running')).toBe(1);
    expect(sample(m, 'manatee_rebuild_progress_percent')).toBe(42.5);
    expect(sample(m, 'manatee_rebuild_bytes_done')).toBe(1_048_576);
    patch = (s) => ({ ...s, rebuild: { running: false, reason: null, source: 'b', lastError: null, lastResult: 'rebuilt from b', progress: null } });
    m = await getText('/metrics');
    expect(sample(m, 'manatee_rebuild_running')).toBe(0);
    expect(sample(m, 'manatee_rebuild_progress_percent')).toBe(-1);
    expect(sample(m, 'manatee_rebuild_bytes_done')).toBe(0);
  });
});
