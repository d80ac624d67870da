// What manatee-adm prints, as pure functions of what the API answered: the shard view (one row
// per peer, in the style of Joyent's `manatee-adm show` and `patronictl list`) and the history
// table. No I/O and no clock except the `now` passed in, so that tests pin the exact output.
import { roleIn, type DecisionRecord, type PeerRole, type SitterStatus } from '../../peer/status.js';
import type { ClusterState, FreezeInfo, HistoryEntry, PeerInfo, PromoteRequest } from '../../store/types.js';

/** One peer as the status table shows it. `null` means unknown (its sitter did not answer). */
export interface PeerRow {
  readonly role: PeerRole;
  readonly id: string;
  readonly host: string;
  readonly pgUrl: string;
  readonly apiUrl: string;
  /** Its sitter answered GET /status. */
  readonly reachable: boolean;
  readonly pgOnline: boolean | null;
  readonly pgHealthy: boolean | null;
  readonly writable: boolean | null;
  /** Bytes its replay is behind its upstream, as its upstream's pg_stat_replication says. */
  readonly lagBytes: number | null;
  readonly sitterPid: number | null;
  readonly postgresPid: number | null;
  readonly lastDecision: DecisionRecord | null;
  /** Why it is unreachable, or its PostgreSQL's last health-check error. */
  readonly error: string | null;
}

export interface ShardView {
  /** The peer whose API was asked, and what it said about the shard. */
  readonly answeredBy: string;
  readonly stateVersion: number;
  readonly generation: number | null;
  readonly initWal: string | null;
  readonly oneNodeWriteMode: boolean;
  readonly freeze: FreezeInfo | null;
  readonly promote: PromoteRequest | null;
  readonly raftLeader: string | null;
  readonly raftTerm: number;
  readonly peers: readonly PeerRow[];
}

/** Another peer's status, or why it could not be had. */
export type PeerStatusResult = { readonly ok: true; readonly status: SitterStatus } | { readonly ok: false; readonly error: string };

/** The peers of a state in chain order (primary, sync, asyncs, deposed), then active peers not placed yet. */
export function peersInOrder(state: ClusterState | null, active: readonly PeerInfo[]): PeerInfo[] {
  const out: PeerInfo[] = [];
  if (state !== null) {
    out.push(state.primary);
    if (state.sync !== null) out.push(state.sync);
    out.push(...state.async, ...state.deposed);
  }
  for (const p of active) if (!out.some((q) => q.id === p.id)) out.push(p);
  return out;
}

/** Combine the asked peer's status with the other peers' (by id) into the table's rows. */
export function buildShardView(asked: SitterStatus, others: ReadonlyMap<string, PeerStatusResult>): ShardView {
  const state = asked.state;
  const statusOf = (id: string): PeerStatusResult | undefined =>
    id === asked.peer.id ? { ok: true, status: asked } : others.get(id);
  const rows = peersInOrder(state, asked.activePeers).map((p): PeerRow => {
    const role = roleIn(state, p.id).role;
    const upstream = roleIn(state, p.id).upstream;
    const own = statusOf(p.id);
    const up = upstream === null ? undefined : statusOf(upstream.id);
    const link = up?.ok === true ? up.status.replication.find((r) => r.applicationName === p.id) : undefined;
    if (own?.ok !== true) {
      return {
        role, id: p.id, host: p.host, pgUrl: p.pgUrl, apiUrl: p.apiUrl, reachable: false,
        pgOnline: null, pgHealthy: null, writable: null, lagBytes: link?.replayLagBytes ?? null,
        sitterPid: null, postgresPid: null, lastDecision: null, error: own?.error ?? 'not asked',
      };
    }
    const s = own.status;
    return {
      role, id: p.id, host: p.host, pgUrl: p.pgUrl, apiUrl: p.apiUrl, reachable: true,
      pgOnline: s.postgres.online, pgHealthy: s.postgres.healthy, writable: s.postgres.writable,
      lagBytes: link?.replayLagBytes ?? null, sitterPid: s.sitterPid, postgresPid: s.postgresPid,
      lastDecision: s.lastDecision, error: s.postgres.error,
    };
  });
  return {
    answeredBy: asked.peer.id,
    stateVersion: asked.stateVersion,
    generation: state?.generation ?? null,
    initWal: state?.initWal ?? null,
    oneNodeWriteMode: state?.oneNodeWriteMode === true,
    freeze: state?.freeze ?? null,
    promote: state?.promote ?? null,
    raftLeader: asked.raft.leader,
    raftTerm: asked.raft.term,
    peers: rows,
  };
}

/** A user-supplied string made safe for one table cell (no control characters, bounded). */
export function cell(s: string, maxChars = 60): string {
  // eslint-disable-next-line no-control-regex -- the point is to replace control characters
  const clean = s.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > maxChars ? `${clean.slice(0, maxChars - 1)}…` : clean;
}

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i] ?? 'TiB'}`;
}

function yesNo(v: boolean | null): string {
  return v === null ? '-' : v ? 'yes' : 'no';
}

function pgText(r: PeerRow): string {
  if (!r.reachable) return '?';
  if (r.pgOnline !== true) return 'down';
  return r.pgHealthy === true ? 'ok' : 'sick';
}

function promoteText(p: PromoteRequest, generation: number | null, now: Date): string {
  const where = p.role === 'sync' ? 'sync' : `async[${p.asyncIndex ?? '?'}]`;
  const live = p.generation !== generation ? 'stale (other generation)' : Date.parse(p.expireTime) <= now.getTime() ? 'expired' : 'pending';
  return `${p.id} (${where}) for generation ${p.generation}, expires ${p.expireTime}: ${live}`;
}

export function renderStatus(view: ShardView, now: Date): string {
  const out: string[] = [];
  if (view.generation === null) {
    out.push('shard: no cluster state yet (initial setup has not happened)');
  } else {
    out.push(
      `shard: generation ${view.generation}, initWal ${view.initWal ?? '-'}, state version ${view.stateVersion}, ` +
        `mode ${view.oneNodeWriteMode ? 'one-node-write' : 'normal'}`,
    );
    out.push(`freeze: ${view.freeze === null ? 'not frozen' : `FROZEN since ${view.freeze.date}: ${cell(view.freeze.reason, 200)}`}`);
    if (view.promote !== null) out.push(`promote: ${promoteText(view.promote, view.generation, now)}`);
  }
  out.push(`raft: leader ${view.raftLeader ?? 'none'}, term ${view.raftTerm} (answered by ${view.answeredBy})`);
  out.push('');
  const header = ['ROLE', 'PEER', 'HOST', 'PG', 'WRITABLE', 'LAG', 'SITTER', 'POSTGRES'];
  const rows = view.peers.map((r) => [
    r.role,
    cell(r.id),
    cell(r.host),
    pgText(r),
    yesNo(r.writable),
    r.lagBytes === null ? '-' : formatBytes(r.lagBytes),
    r.sitterPid === null ? '-' : String(r.sitterPid),
    r.postgresPid === null ? '-' : String(r.postgresPid),
  ]);
  out.push(rows.length === 0 ? 'no peers' : renderTable(header, rows));
  const notes = view.peers.flatMap((r) => {
    const lines: string[] = [];
    if (!r.reachable) lines.push(`  ${r.id}: sitter unreachable at ${r.apiUrl}: ${cell(r.error ?? 'unknown', 200)}`);
    else if (r.pgOnline !== true || r.pgHealthy !== true) lines.push(`  ${r.id}: postgres: ${cell(r.error ?? 'not online', 200)}`);
    if (r.lastDecision !== null) {
      lines.push(`  ${r.id}: last decision ${r.lastDecision.kind} at ${r.lastDecision.at}: ${cell(r.lastDecision.reason, 300)}`);
    }
    return lines;
  });
  if (notes.length > 0) out.push('', ...notes);
  return out.join('\n');
}

function ids(peers: readonly PeerInfo[]): string {
  return peers.length === 0 ? '-' : peers.map((p) => cell(p.id, 20)).join(',');
}

export function renderHistory(entries: readonly HistoryEntry[]): string {
  if (entries.length === 0) return 'no history yet';
  const header = ['TIME', 'G#', 'VER', 'MODE', 'FRZ', 'PRIMARY', 'SYNC', 'ASYNC', 'DEPOSED', 'SUMMARY'];
  const rows = entries.map((e) => [
    e.time,
    String(e.generation),
    String(e.version),
    e.state.oneNodeWriteMode === true ? 'onwm' : 'multi',
    e.state.freeze === undefined ? '-' : 'frozen',
    cell(e.state.primary.id, 20),
    e.state.sync === null ? '-' : cell(e.state.sync.id, 20),
    ids(e.state.async),
    ids(e.state.deposed),
    cell(e.summary, 200),
  ]);
  return renderTable(header, rows);
}
