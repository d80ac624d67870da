// What manatee-adm prints from GET /shard, GET /members and GET /history: tables whose columns an
// operator picks with -o (as `ps -o`), and the checks of `verify` (Joyent's rules). Pure
// functions of what the API answered and of the `now` passed in, so that tests pin the output.
import type { RaftMembers } from '../../api/types.js';
import type { ShardLink, ShardPeer, ShardReport } from '../../api/shard.js';
import { describePeerTags, type HistoryEntry, type PeerInfo, type PromoteRequest } from '../../model/index.js';
import { restartScope } from '../../peer/admin.js';
import { AdmError } from './client.js';
import { cell, formatBytes, renderTable } from './render.js';

/** One column of a table: its header, and its cell for a row. */
export interface Column<R> {
  readonly name: string;
  readonly help: string;
  readonly cell: (row: R) => string;
}

/** The columns named by `-o a,b,c` (any case), or the defaults; an unknown name is a usage error. */
export function pickColumns<R>(all: readonly Column<R>[], defaults: readonly string[], spec: string | undefined): Column<R>[] {
  const names = spec === undefined ? defaults : spec.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new AdmError('MANATEE_ERR_USAGE', `-o: name at least one column of ${all.map((c) => c.name.toLowerCase()).join(',')}`);
  return names.map((n) => {
    const c = all.find((x) => x.name.toLowerCase() === n.toLowerCase());
    if (c === undefined) throw new AdmError('MANATEE_ERR_USAGE', `-o: unknown column ${JSON.stringify(n)}; columns: ${all.map((x) => x.name.toLowerCase()).join(',')}`);
    return c;
  });
}

export function table<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  return renderTable(columns.map((c) => c.name), rows.map((r) => columns.map((c) => c.cell(r))));
}

const dash = (v: string | number | null | undefined): string => (v === null || v === undefined ? '-' : String(v));
const yesNo = (v: boolean | null): string => (v === null ? '-' : v ? 'yes' : 'no');
const bytes = (v: number | null): string => (v === null ? '-' : formatBytes(v));
const seconds = (v: number | null): string => (v === null ? '-' : `${v < 10 ? v.toFixed(1) : Math.round(v)}s`);

function pgText(p: ShardPeer): string {
  if (!p.reachable) return '?';
  if (p.pgOnline !== true) return 'down';
  return p.pgHealthy === true ? 'ok' : 'sick';
}

/** The link into `peer` (from its upstream), if the chain has one. */
function linkInto(report: ShardReport, id: string): ShardLink | undefined {
  return report.links.find((l) => l.downstream === id);
}

/** A fingerprint and those also accepted: "ab12cd+ef34ab". */
function credentialText(current: string, accepted: readonly string[]): string {
  return [current, ...accepted].join('+');
}

export function peerColumns(report: ShardReport, members: RaftMembers | null = null): Column<ShardPeer>[] {
  const link = (p: ShardPeer): ShardLink | undefined => linkInto(report, p.id);
  return [
    { name: 'ROLE', help: 'place in the committed state', cell: (p) => p.role },
    { name: 'PEER', help: 'peer id', cell: (p) => cell(p.id) },
    { name: 'HOST', help: 'host', cell: (p) => cell(p.host) },
    { name: 'PG', help: 'PostgreSQL: ok, sick, down, ? (sitter unreachable)', cell: pgText },
    { name: 'WRITABLE', help: 'accepts writes', cell: (p) => yesNo(p.writable) },
    { name: 'LAG', help: 'replay lag behind its upstream, in bytes', cell: (p) => bytes(link(p)?.lagBytes ?? null) },
    { name: 'LAG_S', help: 'age of its newest replayed data (heartbeat), seconds', cell: (p) => (p.role === 'primary' ? '-' : seconds(p.lagSeconds)) },
    { name: 'SITTER', help: 'sitter pid', cell: (p) => dash(p.sitterPid) },
    { name: 'POSTGRES', help: 'postmaster pid', cell: (p) => dash(p.postgresPid) },
    { name: 'UPSTREAM', help: 'the peer it replicates from', cell: (p) => dash(p.upstream) },
    { name: 'REPL', help: 'state of the link into it (pg_stat_replication on the upstream)', cell: (p) => dash(link(p)?.state) },
    { name: 'ACTIVE', help: 'its session exists', cell: (p) => yesNo(p.active) },
    { name: 'RAFT', help: 'Raft membership: voter, learner, -', cell: (p) => (members === null ? '?' : members.voters.includes(p.id) ? 'voter' : members.learners.includes(p.id) ? 'learner' : '-') },
    { name: 'LSN', help: 'current (primary) or replay (standby) WAL position', cell: (p) => dash(p.role === 'primary' ? p.currentLsn : (p.replayLsn ?? p.currentLsn)) },
    { name: 'PGURL', help: 'PostgreSQL URL', cell: (p) => cell(p.pgUrl, 80) },
    { name: 'APIURL', help: 'sitter API URL', cell: (p) => cell(p.apiUrl, 80) },
    { name: 'DECISION', help: 'the last decision of its rules', cell: (p) => dash(p.lastDecision?.kind) },
    { name: 'TAGS', help: 'its tags: nofailover, noloadbalance, priority=N (- when none)', cell: (p) => dash(describePeerTags(p.tags) || null) },
    { name: 'SECRET', help: 'fingerprint of the shard secret it proves itself with, then +those it also accepts (a rotation)', cell: (p) => (p.credentials == null ? '?' : credentialText(p.credentials.secret, p.credentials.acceptedSecrets)) },
    { name: 'TOKEN', help: 'fingerprint of its admin token, then +the others it also accepts (a rotation)', cell: (p) => (p.credentials == null ? '?' : credentialText(p.credentials.adminToken, p.credentials.acceptedAdminTokens)) },
    { name: 'PENDING', help: 'settings waiting for a restart of its PostgreSQL (manatee-adm restart --pending)', cell: (p) => (p.pendingRestart === null || p.pendingRestart === undefined ? '?' : p.pendingRestart.length === 0 ? '-' : cell(p.pendingRestart.join(','), 60)) },
  ];
}

export const SHOW_COLUMNS = ['ROLE', 'PEER', 'HOST', 'PG', 'WRITABLE', 'LAG', 'LAG_S', 'SITTER', 'POSTGRES'];
export const PEERS_COLUMNS = ['ROLE', 'PEER', 'HOST', 'ACTIVE', 'RAFT', 'PGURL', 'APIURL'];

function promoteText(p: PromoteRequest, generation: number | null, now: Date): string {
  const where = p.role === 'sync' ? 'sync' : `async[${p.asyncIndex ?? '?'}]`;
  const live = p.generation !== generation ? 'stale (other generation)' : Date.parse(p.expireTime) <= now.getTime() ? 'expired' : 'pending';
  const scheduled = p.at === undefined ? '' : `, scheduled for ${p.at}`;
  const state = live === 'pending' && p.at !== undefined && Date.parse(p.at) > now.getTime() ? 'scheduled' : live;
  return `${p.id} (${where}) for generation ${p.generation}${scheduled}, expires ${p.expireTime}: ${state}`;
}

export function linkColumns(): Column<ShardLink>[] {
  return [
    { name: 'UPSTREAM', help: 'sending peer', cell: (l) => cell(l.upstream) },
    { name: 'DOWNSTREAM', help: 'receiving peer', cell: (l) => cell(l.downstream) },
    { name: 'EXPECTED', help: 'what the state makes the link: sync or async', cell: (l) => l.expected },
    { name: 'STATE', help: 'pg_stat_replication.state on the upstream (- when absent)', cell: (l) => dash(l.state) },
    { name: 'SYNC_STATE', help: 'pg_stat_replication.sync_state', cell: (l) => dash(l.syncState) },
    { name: 'LAG', help: 'replay lag in bytes', cell: (l) => bytes(l.lagBytes) },
    { name: 'LAG_S', help: 'heartbeat lag of the downstream, seconds', cell: (l) => seconds(l.lagSeconds) },
  ];
}

export const PG_STATUS_COLUMNS = ['UPSTREAM', 'DOWNSTREAM', 'EXPECTED', 'STATE', 'SYNC_STATE', 'LAG', 'LAG_S'];

/** The operator's set-onwm override, and whether the primary has acted on it yet. */
function onwmOverrideText(report: ShardReport): string {
  const o = report.state?.onwmOverride;
  if (o === undefined) return '';
  const pending = o !== report.oneNodeWriteMode ? ', not acted on yet: the primary changes the mode at the next generation' : '';
  return ` (set ${o ? 'on' : 'off'} by operator${pending})`;
}

export function renderShow(report: ShardReport, now: Date, opts: { verbose: boolean; columns?: string | undefined }): string {
  const out: string[] = [];
  if (report.generation === null) {
    out.push('shard: no cluster state yet (initial setup has not happened)');
  } else {
    out.push(
      `shard: generation ${report.generation}, initWal ${report.initWal ?? '-'}, state version ${report.stateVersion}, ` +
        `mode ${report.oneNodeWriteMode ? 'one-node-write' : 'normal'}${onwmOverrideText(report)}`,
    );
    out.push(`freeze: ${report.freeze === null ? 'not frozen' : `FROZEN since ${report.freeze.date}: ${cell(report.freeze.reason, 200)}`}`);
    if (report.promote !== null) out.push(`promote: ${promoteText(report.promote, report.generation, now)}`);
    const restart = report.state?.restart;
    if (restart !== undefined) {
      const due = Date.parse(restart.at) <= now.getTime() ? ': due, the primary starts it or skips it' : '';
      out.push(`restart: scheduled for ${restart.at} (${restartScope(restart)})${due}; clear-restart cancels it`);
    }
  }
  out.push(`raft: leader ${report.raftLeader ?? 'none'}, term ${report.raftTerm} (answered by ${report.answeredBy})`);
  out.push('');
  const defaults = opts.verbose ? [...SHOW_COLUMNS, 'UPSTREAM', 'REPL', 'LSN', 'DECISION', 'TAGS'] : SHOW_COLUMNS;
  const columns = pickColumns(peerColumns(report), defaults, opts.columns);
  out.push(report.peers.length === 0 ? 'no peers' : table(columns, report.peers));
  if (opts.verbose && report.links.length > 0) out.push('', table(linkColumns(), report.links));
  const notes = report.peers.flatMap((p) => {
    const lines: string[] = [];
    if (!p.reachable) lines.push(`  ${p.id}: sitter unreachable at ${p.apiUrl}: ${cell(p.error ?? 'unknown', 200)}`);
    else if (p.pgOnline !== true || p.pgHealthy !== true) lines.push(`  ${p.id}: postgres: ${cell(p.error ?? 'not online', 200)}`);
    if (p.pendingRestart !== null && p.pendingRestart !== undefined && p.pendingRestart.length > 0) {
      lines.push(`  ${p.id}: pending restart: ${cell(p.pendingRestart.join(', '), 200)} (manatee-adm restart --pending)`);
    }
    for (const r of p.rejectedSettings ?? []) lines.push(`  ${p.id}: PostgreSQL refuses a setting: ${cell(r.reason, 300)}`);
    const tags = describePeerTags(p.tags);
    if (tags !== '') lines.push(`  ${p.id}: tags: ${tags}`);
    const c = p.credentials;
    if (c != null && (c.acceptedSecrets.length > 0 || c.acceptedAdminTokens.length > 0)) {
      const also = (v: readonly string[]): string => (v.length === 0 ? '' : ` (also accepts ${v.join(', ')})`);
      lines.push(`  ${p.id}: rotation: shard secret ${c.secret}${also(c.acceptedSecrets)}, admin token ${c.adminToken}${also(c.acceptedAdminTokens)}`);
    }
    if (p.lastDecision !== null) lines.push(`  ${p.id}: last decision ${p.lastDecision.kind} at ${p.lastDecision.at}: ${cell(p.lastDecision.reason, 300)}`);
    if (opts.verbose && p.rebuild !== null && (p.rebuild.running || p.rebuild.lastError !== null)) {
      const pr = p.rebuild.progress;
      lines.push(
        p.rebuild.running
          ? `  ${p.id}: rebuilding from ${p.rebuild.source ?? '?'}: ${pr === null ? 'starting' : `${pr.phase} ${pr.percent === null ? '' : `${pr.percent.toFixed(1)}% `}${formatBytes(pr.bytesDone)}`}`
          : `  ${p.id}: last rebuild failed: ${cell(p.rebuild.lastError ?? '', 200)}`,
      );
    }
    return lines;
  });
  if (notes.length > 0) out.push('', ...notes);
  return out.join('\n');
}

export function renderPgStatus(report: ShardReport, columns: string | undefined): string {
  const primary = report.peers.find((p) => p.role === 'primary');
  const head = `primary ${primary?.id ?? '-'} at ${primary?.currentLsn ?? '-'} (generation ${dash(report.generation)})`;
  const body = report.links.length === 0 ? 'no replication links' : table(pickColumns(linkColumns(), PG_STATUS_COLUMNS, columns), report.links);
  return `${head}\n${body}`;
}

export function historyColumns(): Column<HistoryEntry>[] {
  const ids = (peers: readonly PeerInfo[]): string => (peers.length === 0 ? '-' : peers.map((p) => cell(p.id, 20)).join(','));
  return [
    { name: 'TIME', help: 'when it committed', cell: (e) => e.time },
    { name: 'G#', help: 'generation', cell: (e) => String(e.generation) },
    { name: 'VER', help: 'state version', cell: (e) => String(e.version) },
    { name: 'MODE', help: 'onwm or multi', cell: (e) => (e.state.oneNodeWriteMode === true ? 'onwm' : 'multi') },
    { name: 'FRZ', help: 'frozen', cell: (e) => (e.state.freeze === undefined ? '-' : 'frozen') },
    { name: 'PRIMARY', help: 'primary', cell: (e) => cell(e.state.primary.id, 20) },
    { name: 'SYNC', help: 'sync', cell: (e) => (e.state.sync === null ? '-' : cell(e.state.sync.id, 20)) },
    { name: 'ASYNC', help: 'asyncs', cell: (e) => ids(e.state.async) },
    { name: 'DEPOSED', help: 'deposed', cell: (e) => ids(e.state.deposed) },
    { name: 'INITWAL', help: 'initWal', cell: (e) => e.state.initWal },
    { name: 'SUMMARY', help: 'what changed', cell: (e) => cell(e.summary, 200) },
  ];
}

export const HISTORY_COLUMNS = ['TIME', 'G#', 'VER', 'MODE', 'FRZ', 'PRIMARY', 'SYNC', 'ASYNC', 'DEPOSED', 'SUMMARY'];

// ---- verify ------------------------------------------------------------------------------

export interface VerifyIssue {
  /** error: the shard is not safe or not serving as configured; warning: an operator should know. */
  readonly severity: 'error' | 'warning';
  readonly code: string;
  readonly peer: string | null;
  readonly message: string;
}

/**
 * Joyent's `manatee-adm verify` rules on a /shard report: the primary and the sync must be
 * reachable and serving, no peer may be deposed, there must be an async (outside ONWM), and every
 * link of the chain must be streaming. A freeze is a warning (it is deliberate, but blocks failover).
 */
/** verify warns about a certificate that expires within this many seconds (30 days). */
const CERT_WARN_SECONDS = 30 * 86_400;

export function verifyShard(report: ShardReport, members: RaftMembers | null = null): VerifyIssue[] {
  const issues: VerifyIssue[] = [];
  const state = report.state;
  if (state === null) {
    return [{ severity: 'error', code: 'NO_STATE', peer: null, message: 'the shard has no cluster state (initial setup has not happened)' }];
  }
  const peer = (id: string): ShardPeer | undefined => report.peers.find((p) => p.id === id);
  const serving = (role: string, id: string): void => {
    const p = peer(id);
    if (p === undefined || !p.reachable) {
      issues.push({ severity: 'error', code: `${role.toUpperCase()}_UNREACHABLE`, peer: id, message: unreachable(`the ${role} ${id}`, p) });
    } else if (p.pgOnline !== true || p.pgHealthy !== true) {
      issues.push({ severity: 'error', code: `${role.toUpperCase()}_PG_DOWN`, peer: id, message: `the ${role} ${id}'s PostgreSQL is not serving: ${p.error ?? 'down'}` });
    }
    if (p !== undefined && !p.active) issues.push({ severity: 'error', code: `${role.toUpperCase()}_NO_SESSION`, peer: id, message: `the ${role} ${id} has no session (it is not active)` });
  };
  serving('primary', state.primary.id);
  const primary = peer(state.primary.id);
  if (primary?.reachable === true && primary.pgOnline === true && primary.writable !== true) {
    issues.push({ severity: 'error', code: 'PRIMARY_READ_ONLY', peer: state.primary.id, message: `the primary ${state.primary.id} does not accept writes (waiting for its sync?)` });
  }
  if (state.sync !== null) serving('sync', state.sync.id);
  else if (state.oneNodeWriteMode !== true) issues.push({ severity: 'error', code: 'NO_SYNC', peer: null, message: 'the shard has no sync' });
  for (const d of state.deposed) {
    issues.push({ severity: 'error', code: 'DEPOSED', peer: d.id, message: `${d.id} is deposed: it must be rebuilt (manatee-adm rebuild on it) or reaped` });
  }
  if (state.async.length === 0 && state.oneNodeWriteMode !== true) {
    issues.push({ severity: 'error', code: 'NO_ASYNC', peer: null, message: 'the shard has no async: one more failure and it cannot take over' });
  }
  noTakeover(report, state, issues);
  for (const a of state.async) {
    const p = peer(a.id);
    if (p === undefined || !p.reachable) issues.push({ severity: 'error', code: 'ASYNC_UNREACHABLE', peer: a.id, message: unreachable(`the async ${a.id}`, p) });
  }
  // Every other peer of the report (deposed, or active but not placed yet) that did not answer:
  // an error, as for the chain, since nothing of it was checked (its certificate's expiry, its
  // credentials during a rotation, its PostgreSQL's settings) and a peer the others cannot reach
  // cannot be rebuilt from them or placed in the chain and serve.
  const inChain = new Set([state.primary.id, ...(state.sync === null ? [] : [state.sync.id]), ...state.async.map((a) => a.id)]);
  for (const p of report.peers) {
    if (p.reachable || inChain.has(p.id)) continue;
    issues.push({ severity: 'error', code: 'PEER_UNREACHABLE', peer: p.id, message: `${unreachable(`the ${p.role === 'deposed' ? 'deposed' : 'unassigned'} peer ${p.id}`, p)}: nothing of it was checked` });
  }
  for (const l of report.links) {
    if (!l.streaming) {
      issues.push({ severity: 'error', code: 'NOT_STREAMING', peer: l.downstream, message: `${l.downstream} is not streaming from ${l.upstream} (${l.state === null ? 'no replication connection' : `state ${l.state}`})` });
    } else if (l.expected === 'sync' && l.syncState !== 'sync') {
      issues.push({ severity: 'error', code: 'SYNC_NOT_SYNCHRONOUS', peer: l.downstream, message: `the sync ${l.downstream} streams from ${l.upstream} as ${l.syncState ?? '?'}, not sync` });
    }
  }
  for (const p of report.peers) {
    const left = p.tlsExpiresInSeconds;
    if (left === null) continue;
    if (left <= 0) issues.push({ severity: 'error', code: 'CERT_EXPIRED', peer: p.id, message: `${p.id}'s TLS certificate has expired: issue a new one (manatee-adm certs issue) and send its sitter SIGHUP` });
    else if (left < CERT_WARN_SECONDS) issues.push({ severity: 'warning', code: 'CERT_EXPIRES_SOON', peer: p.id, message: `${p.id}'s TLS certificate expires in ${Math.floor(left / 86_400)} days: renew it (manatee-adm certs issue --force, then SIGHUP)` });
  }
  credentialIssues(report, issues);
  for (const p of report.peers) {
    for (const r of p.rejectedSettings ?? []) {
      // An error: the peer serves now, but its PostgreSQL would not start again (a restart, a crash).
      issues.push({ severity: 'error', code: 'SETTING_REJECTED', peer: p.id, message: `${p.id}'s PostgreSQL refuses a setting: ${r.reason}` });
    }
  }
  if (report.freeze !== null) issues.push({ severity: 'warning', code: 'FROZEN', peer: null, message: `the shard is frozen: ${report.freeze.reason}` });
  if (report.raftLeader === null) issues.push({ severity: 'error', code: 'NO_RAFT_LEADER', peer: null, message: 'the answering peer knows no Raft leader' });
  if (members !== null) membershipIssues(report, members, issues);
  return issues;
}

/**
 * The Raft group against the cluster state, both ways. A member with no place in the state
 * (primary, sync, async, deposed): one the primary has not placed yet (it has a session) is a
 * warning; one with no session is an error when it votes (it counts towards the quorum and cannot
 * answer: one failure fewer is tolerated) and a warning as a learner. A peer of the state that is
 * no member: its sitter receives no commit, so it acts on a state that no longer moves (an error;
 * a warning for a deposed peer, which only waits to be reaped or rebuilt).
 */
function membershipIssues(report: ShardReport, members: RaftMembers, issues: VerifyIssue[]): void {
  const state = report.state;
  if (state === null) return;
  const placed = new Map<string, string>([[state.primary.id, 'primary']]);
  if (state.sync !== null) placed.set(state.sync.id, 'sync');
  for (const a of state.async) placed.set(a.id, 'async');
  for (const d of state.deposed) placed.set(d.id, 'deposed');
  for (const id of [...members.voters, ...members.learners]) {
    if (placed.has(id)) continue;
    const kind = members.voters.includes(id) ? 'voter' : 'learner';
    const address = members.addresses[id] ?? '?';
    const active = report.peers.some((p) => p.id === id && p.active);
    if (active) {
      issues.push({ severity: 'warning', code: 'RAFT_MEMBER_NOT_IN_STATE', peer: id, message: `${id} (Raft ${kind}, ${address}) has a session but no place in the cluster state yet: the primary places a new active peer in the async chain; if this lasts, see the primary's last decision` });
    } else {
      issues.push({
        severity: kind === 'voter' ? 'error' : 'warning', code: 'RAFT_MEMBER_NOT_IN_STATE', peer: id,
        message: `${id} (Raft ${kind}, ${address}) has no place in the cluster state and no session${kind === 'voter' ? ': it counts towards the Raft quorum and does not answer, so the shard tolerates one failure fewer' : ''}: start its sitter, or remove it (manatee-adm remove-peer ${id}) if it is gone for good`,
      });
    }
  }
  const inGroup = new Set([...members.voters, ...members.learners]);
  for (const [id, role] of placed) {
    if (inGroup.has(id)) continue;
    issues.push({
      severity: role === 'deposed' ? 'warning' : 'error', code: 'STATE_PEER_NOT_RAFT_MEMBER', peer: id,
      message: role === 'deposed'
        ? `the deposed peer ${id} is no Raft member: reap it (manatee-adm reap -p ${id}) if it is gone for good`
        : `the ${role} ${id} is in the cluster state but no Raft member: its sitter receives no commit and acts on a state that no longer moves (add it back with manatee-adm add-peer ${id} <host:raftPort>)`,
    });
  }
}

/** The reachable peers that report their credentials' fingerprints (older sitters do not). */
function withCredentials(report: ShardReport): { id: string; c: NonNullable<ShardPeer['credentials']> }[] {
  return report.peers.flatMap((p) => (p.reachable && p.credentials !== null && p.credentials !== undefined ? [{ id: p.id, c: p.credentials }] : []));
}

/** "a, b: x; c: y": which peers hold which value. */
function byValue(rows: readonly { id: string; v: string }[]): string {
  const groups = new Map<string, string[]>();
  for (const r of rows) groups.set(r.v, [...(groups.get(r.v) ?? []), r.id]);
  return [...groups].map(([v, ids]) => `${ids.join(', ')}: ${v}`).join('; ');
}

/**
 * A rotation of the shard secret or the admin token, seen from the peers' fingerprints
 * (README, "Security"): an error when a peer proves itself with a secret that another peer does
 * not accept (that one refuses its Raft connections and backup requests); a warning while the
 * peers disagree (a rotation half done), and one when they agree but still accept old values
 * (every peer has switched: the old ones can be dropped).
 */
function credentialIssues(report: ShardReport, issues: VerifyIssue[]): void {
  const peers = withCredentials(report);
  if (peers.length === 0) return;
  for (const a of peers) {
    const refusing = peers.filter((b) => b.id !== a.id && b.c.secret !== a.c.secret && !b.c.acceptedSecrets.includes(a.c.secret));
    if (refusing.length === 0) continue;
    issues.push({
      severity: 'error', code: 'SECRET_NOT_ACCEPTED', peer: a.id,
      message: `${a.id} proves itself with shard secret ${a.c.secret}, which ${refusing.map((b) => b.id).join(', ')} do${refusing.length === 1 ? 'es' : ''} not accept: its Raft connections and backup requests there are refused. Add it to their acceptedSecrets (SIGHUP), or put ${a.id} back on a secret they take`,
    });
  }
  const set = (v: string, more: readonly string[]): string => [v, ...[...more].sort()].join('+');
  const secrets = peers.map((p) => ({ id: p.id, v: set(p.c.secret, p.c.acceptedSecrets) }));
  const tokens = peers.map((p) => ({ id: p.id, v: set(p.c.adminToken, p.c.acceptedAdminTokens) }));
  const differ = (rows: readonly { v: string }[]): boolean => new Set(rows.map((r) => r.v)).size > 1;
  if (differ(secrets)) {
    issues.push({ severity: 'warning', code: 'SECRETS_DIFFER', peer: null, message: `the peers hold different shard secrets (a rotation in progress? the one each proves itself with, then those it also accepts): ${byValue(secrets)}` });
  }
  if (differ(tokens)) {
    issues.push({ severity: 'warning', code: 'ADMIN_TOKENS_DIFFER', peer: null, message: `the peers accept different admin tokens (a rotation in progress? a token may be refused by some peers): ${byValue(tokens)}` });
  }
  const old = (f: (c: NonNullable<ShardPeer['credentials']>) => readonly string[]): string[] => [...new Set(peers.flatMap((p) => f(p.c)))].sort();
  const oldSecrets = differ(secrets) ? [] : old((c) => c.acceptedSecrets);
  const oldTokens = differ(tokens) ? [] : old((c) => c.acceptedAdminTokens);
  if (oldSecrets.length > 0 || oldTokens.length > 0) {
    const what = [
      ...(oldSecrets.length > 0 ? [`shard secret ${peers[0]!.c.secret} and also accepts ${oldSecrets.join(', ')} (acceptedSecrets)`] : []),
      ...(oldTokens.length > 0 ? [`admin token ${peers[0]!.c.adminToken} and also accepts ${oldTokens.join(', ')} (acceptedAdminTokens)`] : []),
    ];
    issues.push({
      severity: 'warning', code: 'ROTATION_WINDOW_OPEN', peer: null,
      message: `a rotation's window is open: every peer uses ${what.join(', and ')}. If the accepted values are the old ones, every peer has switched: once no caller uses them, drop them from every peer's configuration and SIGHUP its sitter; if they are the new ones, switch each peer to them next`,
    });
  }
}

/**
 * A shard in which no peer may take over (the rules never choose a peer tagged nofailover): the
 * sync is tagged, or every async is, so that the sync could not take over (it needs an async
 * that may become its sync). Outside one-node-write mode, with at least one async (else NO_ASYNC).
 */
function noTakeover(report: ShardReport, state: NonNullable<ShardReport['state']>, issues: VerifyIssue[]): void {
  if (state.oneNodeWriteMode === true || state.sync === null || state.async.length === 0) return;
  const tagged = (id: string): boolean => report.peers.find((p) => p.id === id)?.tags?.nofailover === true;
  const syncTagged = tagged(state.sync.id);
  const asyncsTagged = state.async.every((a) => tagged(a.id));
  if (!syncTagged && !asyncsTagged) return;
  const why = syncTagged
    ? `the sync ${state.sync.id} is tagged nofailover${asyncsTagged ? ', and so is every async' : ' (the primary replaces it with an async that may take over, unless the shard is frozen)'}`
    : `every async (${state.async.map((a) => a.id).join(', ')}) is tagged nofailover, so the sync would have no sync after a takeover`;
  issues.push({ severity: 'error', code: 'NO_TAKEOVER_POSSIBLE', peer: null, message: `no peer may take over if the primary fails: ${why}` });
}

/** "the sync b (https://10.0.0.2:5433) is unreachable: ECONNREFUSED": who, the address asked, why. */
function unreachable(who: string, p: ShardPeer | undefined): string {
  const where = p === undefined ? '' : ` (${p.apiUrl})`;
  const why = p?.error === null || p?.error === undefined ? '' : `: ${p.error}`;
  return `${who}${where} is unreachable${why}`;
}

export function renderVerify(issues: readonly VerifyIssue[]): string {
  if (issues.length === 0) return 'no problems found';
  return issues.map((i) => `${i.severity}: ${i.code}${i.peer === null ? '' : ` (${i.peer})`}: ${i.message}`).join('\n');
}
