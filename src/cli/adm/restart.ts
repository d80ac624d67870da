// manatee-adm reload and manatee-adm restart: PostgreSQL of every peer, one peer at a time.
//
// restart [--pending] [--peer ID] keeps the primary's availability down to one planned
// switchover at most:
//   1. the asyncs, last in the chain first (nothing waits for them);
//   2. the sync: when the first async may become the sync (reachable, streaming, not tagged
//      nofailover), it is made the sync first (a promote of async[0]: generation+1, the old sync
//      goes to the end of the chain) and, once it streams with sync_state 'sync', the old sync is
//      restarted as an async that no commit waits for. With no such standby, the sync is restarted
//      in place: the primary's commits wait until it streams again (a short accepted pause);
//   3. the primary: a planned switchover (promote the sync), then the old primary, which
//      rejoins as a standby (rebuilt with pg_rewind, which restarts it), is restarted if it still
//      has settings pending.
// Before each step the shard must pass verify; a step that does not end healthy within the
// deadline stops the whole restart, and says where it stopped.
import type { Command } from 'commander';
import type { ShardPeer, ShardReport } from '../../api/shard.js';
import { AdmError, type AdmClient } from './client.js';
import { verifyShard } from './views.js';

export interface RestartIo {
  readonly out: (text: string) => void;
  readonly now: () => Date;
}

const STEP_TIMEOUT_MS_DEFAULT = 180_000;
const POLL_MS = 500;

/** --at (promote, restart): an ISO 8601 time, or +N s/m/h from now. */
export function scheduleTime(v: string, now: Date): string {
  const rel = /^\+(\d+)(s|m|h)$/.exec(v);
  if (rel !== null) return new Date(now.getTime() + Number(rel[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[rel[2] as 's' | 'm' | 'h']).toISOString();
  const ms = /^\d{4}-\d{2}-\d{2}T/.test(v) ? Date.parse(v) : Number.NaN;
  if (Number.isNaN(ms)) throw new AdmError('MANATEE_ERR_USAGE', `--at ${JSON.stringify(v)}: expected an ISO 8601 time (2026-12-06T22:00:00Z) or +N followed by s, m or h`);
  return new Date(ms).toISOString();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The errors of verify, one line each: a rolling restart (now or scheduled) needs none. */
export function shardProblems(report: ShardReport): string[] {
  return verifyShard(report).filter((i) => i.severity === 'error').map((i) => `${i.peer ?? 'shard'}: ${i.message}`);
}

/** The peers to restart, in order: asyncs from the end of the chain, then the sync, then the primary. */
export function restartOrder(report: ShardReport, opts: { pending: boolean; peer?: string | undefined }): ShardPeer[] {
  const state = report.state;
  if (state === null) return [];
  const byId = new Map(report.peers.map((p) => [p.id, p]));
  const chain = [...[...state.async].reverse(), ...(state.sync === null ? [] : [state.sync]), state.primary];
  const order = chain.map((p) => byId.get(p.id)).filter((p): p is ShardPeer => p !== undefined);
  if (opts.peer !== undefined && !order.some((p) => p.id === opts.peer)) {
    throw new AdmError('MANATEE_ERR_PEER_NOT_FOUND', `${opts.peer} is not in the replication chain (${order.map((p) => p.id).join(', ')})`);
  }
  return order.filter((p) => (opts.peer === undefined || p.id === opts.peer) && (!opts.pending || (p.pendingRestart ?? []).length > 0));
}

export class RollingRestart {
  constructor(
    private readonly c: AdmClient,
    private readonly io: RestartIo,
    private readonly stepTimeoutMs = STEP_TIMEOUT_MS_DEFAULT,
  ) {}

  private say(line: string): void {
    this.io.out(`${this.io.now().toISOString()} ${line}\n`);
  }

  /** Waits until the shard passes verify (and `also` holds); throws MANATEE_ERR_RESTART_STOPPED after the deadline. */
  private async waitHealthy(what: string, also: (r: ShardReport) => boolean = () => true): Promise<ShardReport> {
    const deadline = Date.now() + this.stepTimeoutMs;
    let last: string[] = [];
    for (;;) {
      const report = await this.c.shard().catch((err: unknown) => {
        last = [err instanceof Error ? err.message : String(err)];
        return null;
      });
      if (report !== null) {
        last = shardProblems(report);
        if (last.length === 0 && also(report)) return report;
      }
      if (Date.now() > deadline) {
        throw new AdmError('MANATEE_ERR_RESTART_STOPPED', `stopped: ${what} did not happen within ${this.stepTimeoutMs / 1000} s${last.length === 0 ? '' : ` (${last.join('; ')})`}`);
      }
      await sleep(POLL_MS);
    }
  }

  async run(opts: { pending: boolean; peer?: string | undefined }): Promise<number> {
    const first = await this.c.shard();
    const bad = shardProblems(first);
    if (bad.length > 0) throw new AdmError('MANATEE_ERR_RESTART_UNHEALTHY', `the shard is not healthy; not restarting anything: ${bad.join('; ')}`);
    const plan = restartOrder(first, opts);
    if (plan.length === 0) {
      this.say(opts.pending ? 'no peer has settings pending a restart' : 'nothing to restart');
      return 0;
    }
    this.say(`plan: ${plan.map((p) => `${p.id} (${p.role})`).join(', then ')}`);
    let done = 0;
    for (const planned of plan) {
      const report = await this.waitHealthy('a healthy shard before the next step');
      const p = report.peers.find((x) => x.id === planned.id);
      if (p === undefined) throw new AdmError('MANATEE_ERR_RESTART_STOPPED', `stopped: ${planned.id} is gone from the shard`);
      if (p.role === 'primary') await this.switchOverAndRestart(report, p, opts.pending);
      else if (p.role === 'sync') await this.restartSync(report, p);
      else await this.restartStandby(p);
      done++;
    }
    this.say(`done: ${done} peer${done === 1 ? '' : 's'} restarted`);
    return done;
  }

  /**
   * The standby that can replace the sync before its restart: async[0] (a promote makes only it
   * the sync), reachable, healthy, streaming, and not tagged nofailover; or why there is none.
   */
  private replacementFor(report: ShardReport): ShardPeer | string {
    const first = report.state?.async[0];
    if (first === undefined) return 'there is no other standby';
    const p = report.peers.find((x) => x.id === first.id);
    if (p?.tags?.nofailover === true) return `the first async ${first.id} is tagged nofailover`;
    if (p === undefined || !p.reachable || p.pgHealthy !== true || !report.links.some((l) => l.downstream === first.id && l.streaming)) {
      return `the first async ${first.id} is not healthy and streaming`;
    }
    return p;
  }

  private async restartSync(report: ShardReport, sync: ShardPeer): Promise<void> {
    const next = this.replacementFor(report);
    if (typeof next === 'string') {
      this.say(`restarting ${sync.id} (sync) in place: ${next} to replace it, so the primary's commits wait until it streams again (a short accepted pause)`);
      await this.restartStandby(sync, true);
      return;
    }
    const primary = report.state?.primary.id ?? '?';
    const generation = report.generation ?? 0;
    this.say(`replacing the sync ${sync.id} with ${next.id} before its restart (generation ${generation} -> ${generation + 1})`);
    await this.c.promote(next.id);
    const caughtUp = await this.waitHealthy(`${next.id} as the sync, streaming with sync_state sync`, (rep) => rep.state?.sync?.id === next.id
      && rep.links.some((l) => l.upstream === primary && l.downstream === next.id && l.streaming && l.syncState === 'sync')
      && rep.peers.some((x) => x.id === primary && x.writable === true));
    this.say(`${next.id} is the sync (streaming, sync_state sync, generation ${caughtUp.generation ?? '?'}); ${sync.id} is now an async that no commit waits for`);
    const old = caughtUp.peers.find((x) => x.id === sync.id);
    if (old === undefined) throw new AdmError('MANATEE_ERR_RESTART_STOPPED', `stopped: ${sync.id} is gone from the shard`);
    await this.restartStandby(old);
  }

  private async restartStandby(p: ShardPeer, inPlaceSync = false): Promise<void> {
    if (!inPlaceSync) this.say(`restarting ${p.id} (${p.role})`);
    const r = await this.c.forPeer(p.apiUrl).restartPostgres();
    await this.waitHealthy(`${p.id} streaming again`, (rep) => rep.peers.some((x) => x.id === p.id && x.pgHealthy === true) && rep.links.some((l) => l.downstream === p.id && l.streaming));
    this.say(`${p.id} restarted and streaming${r.pendingRestart.length === 0 ? '' : `; still pending: ${r.pendingRestart.join(', ')}`}`);
  }

  private async switchOverAndRestart(report: ShardReport, primary: ShardPeer, pending: boolean): Promise<void> {
    const sync = report.state?.sync;
    if (sync === null || sync === undefined) throw new AdmError('MANATEE_ERR_RESTART_STOPPED', `stopped: the primary ${primary.id} has no sync to switch over to`);
    const generation = report.generation ?? 0;
    this.say(`planned switchover: ${sync.id} takes over from ${primary.id} (generation ${generation} -> ${generation + 1})`);
    await this.c.promote(sync.id);
    await this.waitHealthy(`the switchover to ${sync.id}`, (rep) => rep.state?.primary.id === sync.id && rep.peers.some((x) => x.id === sync.id && x.writable === true));
    this.say(`${sync.id} is the primary and writable`);
    const back = await this.waitHealthy(`${primary.id} back as a standby`, (rep) => rep.peers.some((x) => x.id === primary.id && (x.role === 'sync' || x.role === 'async') && x.pgHealthy === true)
      && rep.links.some((l) => l.downstream === primary.id && l.streaming));
    const old = back.peers.find((x) => x.id === primary.id)!;
    if (!pending || (old.pendingRestart ?? []).length > 0) await this.restartStandby(old);
    else this.say(`${primary.id} is back as ${old.role} with nothing pending (its rebuild restarted it)`);
  }
}

export function addRestartCommands(program: Command, io: RestartIo, client: (cmd: Command) => AdmClient): void {
  program
    .command('reload')
    .description("reload every peer's PostgreSQL configuration (the shard settings and the overrides files), and show what waits for a restart")
    .action(async (_opts: unknown, cmd: Command) => {
      const c = client(cmd);
      const report = await c.shard();
      let failed = 0;
      for (const p of report.peers.filter((x) => x.pgOnline === true)) {
        try {
          const r = await c.forPeer(p.apiUrl).reloadPostgres();
          io.out(`${r.message}\n`);
        } catch (err) {
          failed++;
          io.out(`${p.id}: not reloaded: ${err instanceof Error ? err.message : String(err)}\n`);
        }
      }
      if (failed > 0) throw new AdmError('MANATEE_ERR_RELOAD_FAILED', `${failed} peer${failed === 1 ? '' : 's'} not reloaded`);
    });

  program
    .command('restart')
    .description("rolling restart of the peers' PostgreSQL: the asyncs, the sync (after a replacement sync has caught up), then a planned switchover and the old primary; stops if the shard is unhealthy")
    .option('--pending', 'only the peers with settings pending a restart')
    .option('--peer <id>', 'only this peer (the primary: by a planned switchover)')
    .option('--at <time>', "a scheduled restart: stored in the state and run by the primary's sitter at TIME (ISO 8601, or +30s, +10m, +2h from now); skipped, with the reason in the history, if the shard is not healthy then; clear-restart cancels it")
    .option('-j, --json', 'with --at: print JSON for scripts')
    .action(async (opts: { pending?: boolean; peer?: string; at?: string; json?: boolean }, cmd: Command) => {
      if (opts.at !== undefined) {
        const at = scheduleTime(opts.at, io.now());
        const r = await client(cmd).scheduleRestart({ at, pending: opts.pending === true, ...(opts.peer === undefined ? {} : { peer: opts.peer }) });
        io.out(opts.json === true ? `${JSON.stringify(r, null, 2)}\n` : `${r.summary} (state version ${r.version}); follow it with manatee-adm history\n`);
        return;
      }
      await new RollingRestart(client(cmd), io).run({ pending: opts.pending === true, peer: opts.peer });
    });

  program
    .command('clear-restart')
    .description('cancel a scheduled rolling restart (restart --at) that has not started')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = await client(cmd).clearRestart();
      io.out(opts.json === true ? `${JSON.stringify(r, null, 2)}\n` : `${r.summary} (state version ${r.version})\n`);
    });
}
