// The status page's script (GET /), in the browser. It reads the shard from the peer that served
// the page: GET shard (roles, health, LSNs, lag per link), GET history, and GET watch (server-sent
// events of each committed state change). A committed change is drawn as soon as its event
// arrives, before /shard is read again, so that a failover shows within the time the store takes
// to commit it; /shard is also polled, because lag and health are not events.
//
// Type-checked against the DOM and the API's wire types (./tsconfig.json, part of npm run
// typecheck and lint). tools/build-page-script.ts compiles it into ../script.ts, which the page
// inlines (no external assets). Every text that comes from the shard is set with textContent
// (never innerHTML), so a summary or an error message cannot inject markup.
import type { ClusterState, HistoryEntry, PeerInfo, PeerRole } from '../../../model/index.js';
import type { ShardLink, ShardPeer, ShardReport } from '../../../wire/types.js';

const POLL_MS = 2000;
const HISTORY_POLL_MS = 15000;
const HISTORY_LIMIT = 200;
const HISTORY_ROWS_MAX = 60;
const FETCH_TIMEOUT_MS = 5000;
const WATCH_RETRY_MS = 2000;
const KNOWN_PEERS_MAX = 100;

function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el;
}

// The namespace of SVG elements, taken from the inline <svg> in the document rather than spelled out.
const SVG_NS = byId('svg-ns').namespaceURI ?? '';

type Live = 'connecting' | 'live' | 'reconnecting' | 'down';
interface Versioned { readonly state: ClusterState | null; readonly version: number }

const model = {
  shard: null as ShardReport | null,
  shardError: null as string | null,
  shardAt: null as string | null,
  history: [] as readonly HistoryEntry[],
  historyError: null as string | null,
  /** {state, version} of the newest 'state' event. */
  watch: null as Versioned | null,
  /** Ids of active peers from the newest 'peers' event (or /shard). */
  active: null as string[] | null,
  /** When 'active' was set by a 'peers' event (ms). */
  activeAt: 0,
  live: 'connecting' as Live,
  watchEvents: 0,
  /** Every peer seen, by id (for links when this peer is down). */
  known: new Map<string, PeerInfo>(),
};

// ---------------------------------------------------------------- DOM helpers
type Child = Node | string | number | null | undefined | false | readonly Child[];
type Attrs = Readonly<Record<string, string | number | null | undefined>>;

function append<E extends Node>(el: E, children: readonly Child[]): E {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (typeof c === 'string' || typeof c === 'number') el.appendChild(document.createTextNode(String(c)));
    else if (c instanceof Node) el.appendChild(c);
    else append(el, c);
  }
  return el;
}

function h(tag: string, props: Attrs | null, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === null || v === undefined) continue;
    if (k === 'className') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'title') el.title = String(v);
    else el.setAttribute(k, String(v));
  }
  return append(el, children);
}

function s(tag: string, attrs: Attrs | null, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs ?? {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  return append(el, children);
}

function svgText(x: number, y: number, text: string, attrs: Attrs): SVGElement {
  const t = s('text', { x, y, ...attrs });
  t.textContent = text;
  return t;
}

function replace(id: string, node: Child): void {
  const el = byId(id);
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, [node]);
}

// ---------------------------------------------------------------- formatting
function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '?';
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  for (; i < units.length - 1 && v >= 1024; i++) v = v / 1024;
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i] ?? ''}`;
}

function fmtSeconds(sec: number | null | undefined): string {
  if (sec === null || sec === undefined) return '?';
  if (sec < 10) return `${sec.toFixed(1)} s`;
  if (sec < 120) return `${Math.round(sec)} s`;
  if (sec < 7200) return `${Math.round(sec / 60)} min`;
  return `${(sec / 3600).toFixed(1)} h`;
}

function fmtTime(iso: string): string {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return iso;
  return d.toISOString().slice(11, 19);
}

function fmtDateTime(iso: string): string {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return iso;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function ago(iso: string): string {
  const ms = Date.now() - new Date(iso).getTime();
  if (isNaN(ms)) return '';
  return `${fmtSeconds(Math.max(0, ms / 1000))} ago`;
}

function pgAddress(pgUrl: string): string {
  const m = /@([^/?]+)/.exec(pgUrl) ?? /^[a-z]+:\/\/([^/?]+)/i.exec(pgUrl);
  return m?.[1] ?? (pgUrl === '' ? '?' : pgUrl);
}

// A stable colour for each peer id (the timeline's bands are coloured by their primary).
// (Not the role colours: a band's colour names a peer, not a role.)
const PALETTE = ['#0f766e', '#c2410c', '#a21caf', '#4d7c0f', '#b45309', '#0e7490', '#be185d', '#57534e', '#9a3412', '#3f6212'];
function colourOf(id: string): string {
  let hsh = 0;
  for (let i = 0; i < id.length; i++) hsh = (hsh * 31 + id.charCodeAt(i)) >>> 0;
  return PALETTE[hsh % PALETTE.length] ?? '#57534e';
}

// ---------------------------------------------------------------- the model
/** The committed state to draw: the newer of /shard's and the watch stream's. */
function current(): Versioned | null {
  const sh = model.shard;
  const w = model.watch;
  if (w !== null && (sh === null || w.version > sh.stateVersion)) return { state: w.state, version: w.version };
  if (sh !== null) return { state: sh.state, version: sh.stateVersion };
  return null;
}

function detailOf(id: string): ShardPeer | null {
  return model.shard?.peers.find((p) => p.id === id) ?? null;
}

function isActive(id: string): boolean | null {
  if (model.active !== null) return model.active.includes(id);
  return detailOf(id)?.active ?? null;
}

function linkOf(up: string, down: string): ShardLink | null {
  return model.shard?.links.find((l) => l.upstream === up && l.downstream === down) ?? null;
}

function remember(peers: readonly PeerInfo[]): void {
  for (const p of peers) {
    if (!model.known.has(p.id) && model.known.size >= KNOWN_PEERS_MAX) continue;
    model.known.set(p.id, p);
  }
}

function rememberState(st: ClusterState | null): void {
  if (st === null) return;
  remember([st.primary]);
  if (st.sync !== null) remember([st.sync]);
  remember(st.async);
  remember(st.deposed);
}

type Level = 'ok' | 'warn' | 'bad' | 'unknown';
interface Health { readonly level: Level; readonly text: string; readonly why?: string | null }

/** How a peer is doing, in one word and a colour. */
function healthOf(role: PeerRole, d: ShardPeer | null, active: boolean | null, state: ClusterState): Health {
  if (d === null) return { level: 'unknown', text: 'no report yet' };
  if (!d.reachable) return { level: 'bad', text: 'sitter unreachable', why: d.error };
  if (role === 'deposed') return d.rebuild?.running === true ? { level: 'warn', text: 'rebuilding' } : { level: 'warn', text: 'waiting for rebuild' };
  if (active === false) return { level: 'bad', text: 'session ended' };
  if (d.pgOnline === false) return { level: role === 'unassigned' ? 'unknown' : 'bad', text: 'PostgreSQL down', why: d.error };
  if (d.pgHealthy === false) return { level: 'warn', text: 'PostgreSQL unhealthy', why: d.error };
  if (role === 'primary') {
    if (d.writable === true) return { level: 'ok', text: 'writable' };
    return { level: 'warn', text: state.oneNodeWriteMode === true ? 'read-only' : 'read-only: waiting for the sync' };
  }
  if (role === 'sync' || role === 'async') return { level: 'ok', text: 'replaying' };
  return { level: 'unknown', text: 'not in the chain yet' };
}

function linkHealth(l: ShardLink | null, expected: 'sync' | 'async'): Health {
  if (l === null) return { level: 'unknown', text: 'no report yet' };
  if (l.streaming) {
    if (expected === 'sync' && l.syncState !== null && l.syncState !== '' && l.syncState !== 'sync') return { level: 'warn', text: `streaming (${l.syncState})` };
    return { level: 'ok', text: `streaming${expected === 'sync' && l.syncState !== null && l.syncState !== '' ? ` · ${l.syncState}` : ''}` };
  }
  if (l.state !== null && l.state !== '') return { level: 'warn', text: l.state };
  return { level: 'bad', text: 'not replicating' };
}

// ---------------------------------------------------------------- rendering
function roleBadge(role: PeerRole): HTMLElement {
  return h('span', { className: `role ${role}`, text: role });
}

function rebuildLines(d: ShardPeer | null): HTMLElement[] {
  const r = d?.rebuild ?? null;
  if (r === null || (!r.running && r.lastError === null)) return [];
  const p = r.progress;
  const pct = p !== null && p.percent !== null ? Math.max(0, Math.min(100, p.percent)) : null;
  const label = r.running
    ? `rebuild${r.source !== null ? ` from ${r.source}` : ''}${p !== null ? `: ${p.phase}${pct !== null ? ` ${pct.toFixed(0)}%` : ''} · ${fmtBytes(p.bytesDone)}${p.rateBytesPerSec ? ` at ${fmtBytes(p.rateBytesPerSec)}/s` : ''}` : ''}`
    : `last rebuild failed: ${r.lastError ?? ''}`;
  const out = [h('div', { className: 'decision', title: label }, label)];
  if (r.running) {
    const bar = h('div', null);
    bar.style.width = `${pct ?? 5}%`;
    out.push(h('div', { className: 'progress' }, bar));
  }
  return out;
}

function peerCard(info: PeerInfo, role: PeerRole, state: ClusterState): HTMLElement {
  const d = detailOf(info.id);
  const active = isActive(info.id);
  const hl = healthOf(role, d, active, state);
  const rows: HTMLElement[] = [];
  const row = (k: string, v: string): void => { rows.push(h('dt', { text: k }), h('dd', { text: v, title: v })); };
  row('postgres', pgAddress(info.pgUrl));
  if (d?.reachable === true) {
    if (role === 'primary') row('wal lsn', d.currentLsn ?? '?');
    else if (d.replayLsn !== null) row('replay lsn', d.replayLsn + (d.receiveLsn !== null && d.receiveLsn !== d.replayLsn ? ` (recv ${d.receiveLsn})` : ''));
    if (role === 'sync' || role === 'async') row('lag', fmtSeconds(d.lagSeconds));
    row('pids', `sitter ${d.sitterPid ?? '-'} · pg ${d.postgresPid ?? '-'}`);
    if (d.checkLatencyMs !== null) row('check', `${Math.round(d.checkLatencyMs)} ms`);
  }
  row('session', active === null ? '?' : active ? 'active' : 'ended');
  if (model.shard?.raftLeader === info.id) row('raft', `leader (term ${model.shard.raftTerm})`);
  const extra: HTMLElement[] = rebuildLines(d);
  const dec = d?.lastDecision ?? null;
  if (dec !== null) {
    extra.push(h('div', { className: 'decision', title: `${dec.kind}: ${dec.reason} (${dec.at})` }, h('b', { text: dec.kind }), ` · ${dec.reason}`));
  }
  const idNode = info.apiUrl !== ''
    ? h('a', { href: `${info.apiUrl.replace(/\/+$/, '')}/`, title: `this peer\u2019s page: ${info.apiUrl}`, text: info.id })
    : info.id;
  return h('div', { className: `card role-${role}${hl.level === 'bad' ? ' is-gone' : ''}`, 'data-peer': info.id, 'data-role': role },
    h('div', { className: 'head' }, h('span', { className: 'peer-id' }, idNode), roleBadge(role)),
    h('div', { className: `health ${hl.level}`, title: hl.why ?? hl.text, 'data-health': hl.level }, h('span', { className: 'dot' }), hl.text),
    h('dl', null, rows),
    extra);
}

function linkArrow(up: PeerInfo, down: PeerInfo, expected: 'sync' | 'async'): HTMLElement {
  const l = linkOf(up.id, down.id);
  const lh = linkHealth(l, expected);
  const svg = s('svg', { viewBox: '0 0 150 22', preserveAspectRatio: 'none', 'aria-hidden': 'true' },
    s('line', { x1: 4, y1: 11, x2: 136, y2: 11, stroke: 'currentColor', 'stroke-width': 3, 'stroke-dasharray': lh.level === 'ok' ? null : '6 5' }),
    s('path', { d: 'M134 4 L146 11 L134 18 Z', fill: 'currentColor' }));
  const lag = l !== null ? `${fmtBytes(l.lagBytes)} · ${fmtSeconds(l.lagSeconds)}` : '';
  const title = `${up.id} \u2192 ${down.id}: ${lh.text}${l !== null ? `, ${fmtBytes(l.lagBytes)} behind, data ${fmtSeconds(l.lagSeconds)} old` : ''}`;
  return h('div', { className: `link ${lh.level}`, 'data-link': `${up.id}>${down.id}`, title },
    h('span', { className: 'kind', text: expected }),
    svg,
    h('span', { className: 'lag', text: lag === '' ? '\u00a0' : lag }),
    h('span', { className: 'st', text: lh.text }));
}

function renderTopology(cur: Versioned | null): void {
  const st = cur?.state ?? null;
  if (st === null) {
    const text = model.shard !== null || model.watch !== null
      ? 'No cluster state yet: the shard has not been set up (it needs two active peers, or one-node-write mode).'
      : 'Loading\u2026';
    replace('topology', h('div', { className: 'empty', text }));
    return;
  }
  const chain: { peer: PeerInfo; role: PeerRole }[] = [{ peer: st.primary, role: 'primary' }];
  if (st.sync !== null) chain.push({ peer: st.sync, role: 'sync' });
  for (const a of st.async) chain.push({ peer: a, role: 'async' });
  const row = h('div', { className: 'chain', id: 'chain' });
  chain.forEach((c, j) => {
    const prev = chain[j - 1];
    if (prev !== undefined) append(row, [linkArrow(prev.peer, c.peer, j === 1 && st.sync !== null ? 'sync' : 'async')]);
    append(row, [peerCard(c.peer, c.role, st)]);
  });
  const placed = new Set<string>([...chain.map((c) => c.peer.id), ...st.deposed.map((p) => p.id)]);
  const candidates: PeerInfo[] = [...(model.shard?.peers ?? [])];
  for (const id of model.active ?? []) {
    const p = model.known.get(id);
    if (p !== undefined) candidates.push(p);
  }
  const unassigned: PeerInfo[] = [];
  for (const p of candidates) {
    if (!placed.has(p.id) && isActive(p.id) !== false) {
      placed.add(p.id);
      unassigned.push(p);
    }
  }
  let off: HTMLElement | null = null;
  if (st.deposed.length > 0 || unassigned.length > 0) {
    off = h('div', { className: 'offchain' },
      st.deposed.length > 0 ? h('h3', { text: 'Deposed (former primaries; each must be rebuilt before it serves again)' }) : null,
      st.deposed.length > 0 ? h('div', { className: 'cards' }, st.deposed.map((p) => peerCard(p, 'deposed', st))) : null,
      unassigned.length > 0 ? h('h3', { text: 'Unassigned (active, not yet placed in the chain by the primary)' }) : null,
      unassigned.length > 0 ? h('div', { className: 'cards' }, unassigned.map((p) => peerCard(p, 'unassigned', st))) : null);
  }
  replace('topology', h('div', null, row, off));
}

function yesNo(v: boolean | null, yes: string, no: string): HTMLElement {
  if (v === null) return h('span', { className: 'cell' }, h('span', { className: 'dot' }), '?');
  return h('span', { className: 'cell' }, h('span', { className: `dot ${v ? 'ok' : 'bad'}` }), v ? yes : no);
}

function roleIn(st: ClusterState | null, id: string): PeerRole {
  if (st === null) return 'unassigned';
  if (st.primary.id === id) return 'primary';
  if (st.sync?.id === id) return 'sync';
  if (st.async.some((p) => p.id === id)) return 'async';
  if (st.deposed.some((p) => p.id === id)) return 'deposed';
  return 'unassigned';
}

function pgCell(d: ShardPeer): HTMLElement {
  if (!d.reachable) return h('span', { className: 'cell' }, h('span', { className: 'dot' }), '?');
  if (d.pgOnline === false) return h('span', { className: 'cell', title: d.error ?? '' }, h('span', { className: 'dot bad' }), 'down');
  if (d.pgHealthy === false) return h('span', { className: 'cell', title: d.error ?? '' }, h('span', { className: 'dot warn' }), 'unhealthy');
  return h('span', { className: 'cell' }, h('span', { className: 'dot ok' }), 'healthy');
}

function renderPeers(cur: Versioned | null): void {
  const st = cur?.state ?? null;
  const sh = model.shard;
  if (sh === null) {
    replace('peers', h('div', { className: 'empty', text: model.shardError !== null ? `Cannot read /shard: ${model.shardError}` : 'Loading\u2026' }));
    return;
  }
  const head = h('tr', null, ['peer', 'role', 'session', 'sitter', 'PostgreSQL', 'writes', 'LSN (current / replay)', 'lag', 'check', 'last decision'].map((t) => h('th', { text: t })));
  const body = sh.peers.map((d) => {
    const role = roleIn(st, d.id);
    const lsn = d.reachable ? `${d.currentLsn ?? '-'} / ${d.replayLsn ?? '-'}` : '-';
    const dec = d.lastDecision;
    return h('tr', { 'data-peer-row': d.id },
      h('td', { className: 'mono' }, h('b', { text: d.id })),
      h('td', null, roleBadge(role)),
      h('td', null, yesNo(isActive(d.id), 'active', 'ended')),
      h('td', { title: d.reachable ? '' : (d.error ?? '') }, yesNo(d.reachable, 'up', 'unreachable')),
      h('td', null, pgCell(d)),
      h('td', null, d.writable === null ? '?' : d.writable ? 'read-write' : 'read-only'),
      h('td', { className: 'mono', text: lsn }),
      h('td', { className: 'mono', text: role === 'sync' || role === 'async' ? fmtSeconds(d.lagSeconds) : '-' }),
      h('td', { className: 'mono', text: d.checkLatencyMs === null ? '-' : `${Math.round(d.checkLatencyMs)} ms` }),
      h('td', { className: 'reason', title: dec !== null ? dec.at : '' }, dec !== null ? [h('b', { text: dec.kind }), ` · ${dec.reason} (${ago(dec.at)})`] : '-'));
  });
  replace('peers', h('table', null, h('thead', null, head), h('tbody', null, body)));
}

interface Band { readonly generation: number; readonly start: number; entry: HistoryEntry }

/** Generations as bands along a time axis, coloured by their primary; each state change is a tick. */
function timelineSvg(hist: readonly HistoryEntry[], first: HistoryEntry, last: HistoryEntry, st: ClusterState | null): SVGElement {
  // Drawn at the width of its box (in CSS pixels), so that its text is never stretched.
  const W = Math.max(320, Math.round(byId('timeline').clientWidth || 1000));
  const H = 118, X0 = 8, X1 = W - 8, Y = 34, BAND = 40;
  const t0 = new Date(first.time).getTime();
  const tEnd = Math.max(Date.now(), new Date(last.time).getTime());
  const span = Math.max(1000, tEnd - t0);
  const x = (t: number): number => X0 + (X1 - X0) * (t - t0) / span;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'generation timeline' });
  // Bands: one per run of entries with the same generation.
  const bands: Band[] = [];
  for (const e of hist) {
    const prev = bands[bands.length - 1];
    if (prev?.generation !== e.generation) bands.push({ generation: e.generation, start: new Date(e.time).getTime(), entry: e });
    else prev.entry = e;
  }
  bands.forEach((b, i) => {
    const end = bands[i + 1]?.start ?? tEnd;
    const xa = x(b.start), xb = Math.max(x(end), xa + 2);
    const prim = b.entry.state.primary.id;
    const sync = b.entry.state.sync?.id ?? '-';
    const title = s('title', null);
    title.textContent = `generation ${b.generation}: primary ${prim}, sync ${sync} (from ${fmtDateTime(new Date(b.start).toISOString())})`;
    const g = s('g', { 'data-generation': b.generation },
      s('rect', { x: xa, y: Y, width: xb - xa, height: BAND, fill: colourOf(prim), 'fill-opacity': i === bands.length - 1 ? 0.9 : 0.55, rx: 3 }, title));
    if (xb - xa > 46) {
      append(g, [svgText(xa + 6, Y + 17, `g${b.generation}`, { fill: '#fff', 'font-size': 13, 'font-weight': 700 })]);
      append(g, [svgText(xa + 6, Y + 33, prim + (xb - xa > 120 ? ` \u2192 ${sync}` : ''), { fill: '#fff', 'font-size': 11.5 })]);
    }
    append(svg, [g]);
  });
  // A tick per state change, with its summary as a tooltip.
  // A change of primary (a takeover or a switchover) is a red tick with a triangle over it.
  hist.forEach((e, i) => {
    const tx = x(new Date(e.time).getTime());
    const before = hist[i - 1];
    const failover = before !== undefined && before.state.primary.id !== e.state.primary.id;
    const tick = s('line', { x1: tx, y1: Y - 6, x2: tx, y2: Y + BAND + 6, stroke: failover ? '#c53030' : '#16202c', 'stroke-width': failover ? 2 : 1, 'stroke-opacity': failover ? 1 : 0.45 });
    if (failover) append(svg, [s('path', { d: `M${tx - 6} ${Y - 13} L${tx + 6} ${Y - 13} L${tx} ${Y - 4} Z`, fill: '#c53030' })]);
    const t = s('title', null);
    t.textContent = `${fmtDateTime(e.time)} g${e.generation}: ${e.summary}`;
    tick.appendChild(t);
    append(svg, [tick]);
  });
  // The axis: start, end ("now"), and a few times between.
  append(svg, [s('line', { x1: X0, y1: Y + BAND + 14, x2: X1, y2: Y + BAND + 14, stroke: '#b8c2cf', 'stroke-width': 1 })]);
  for (let k = 0; k <= 4; k++) {
    const tk = t0 + span * k / 4;
    const anchor = k === 0 ? 'start' : k === 4 ? 'end' : 'middle';
    append(svg, [svgText(x(tk), Y + BAND + 30, k === 4 ? 'now' : fmtTime(new Date(tk).toISOString()), { fill: '#5d6b7d', 'font-size': 11.5, 'text-anchor': anchor })]);
  }
  append(svg, [svgText(X0, 18, `generations since ${fmtDateTime(first.time)}${st !== null ? ` \u00b7 current: g${st.generation}` : ''}`, { fill: '#5d6b7d', 'font-size': 12 })]);
  return svg;
}

/** The list, newest first: generation changes are marked with what changed. */
function historyTable(hist: readonly HistoryEntry[]): HTMLElement {
  const rows: HTMLElement[] = [];
  for (let n = hist.length - 1; n >= 0 && rows.length < HISTORY_ROWS_MAX; n--) {
    const e = hist[n];
    if (e === undefined) break;
    const prev = hist[n - 1] ?? null;
    const badges: HTMLElement[] = [];
    if (prev !== null && prev.state.primary.id !== e.state.primary.id) badges.push(h('span', { className: 'badge failover', text: `new primary ${e.state.primary.id}` }));
    else if (prev !== null && (prev.state.sync?.id ?? null) !== (e.state.sync?.id ?? null)) badges.push(h('span', { className: 'badge newsync', text: 'new sync' }));
    if (e.state.freeze !== undefined) badges.push(h('span', { className: 'badge frozen', text: 'frozen' }));
    const chain = [e.state.primary.id, ...(e.state.sync !== null ? [e.state.sync.id] : []), ...e.state.async.map((a) => a.id)].join(' \u2192 ');
    const dot = h('span', { className: 'dot', 'data-c': '1' });
    dot.style.background = colourOf(e.state.primary.id);
    rows.push(h('tr', { className: prev !== null && prev.generation !== e.generation ? 'gen-change' : '' },
      h('td', { className: 'mono', text: fmtDateTime(e.time) }),
      h('td', { className: 'mono' }, dot, ` g${e.generation}`),
      h('td', { className: 'mono', text: chain }),
      h('td', null, e.summary, badges)));
  }
  return h('div', { className: 'scroll' }, h('table', null,
    h('thead', null, h('tr', null, ['time (UTC)', 'gen', 'chain', 'change'].map((t) => h('th', { text: t })))),
    h('tbody', null, rows)));
}

function renderTimeline(cur: Versioned | null): void {
  const hist = model.history;
  const first = hist[0];
  const last = hist[hist.length - 1];
  if (first === undefined || last === undefined) {
    replace('timeline', h('div', { className: 'empty', text: model.historyError !== null ? `Cannot read /history: ${model.historyError}` : 'No history yet.' }));
    replace('history', null);
    return;
  }
  replace('timeline', timelineSvg(hist, first, last, cur?.state ?? null));
  replace('history', historyTable(hist));
}

function liveText(live: Live): string {
  switch (live) {
    case 'live': return 'live';
    case 'reconnecting': return 'reconnecting\u2026';
    case 'down': return 'not connected';
    case 'connecting': return 'connecting\u2026';
  }
}

function renderHeader(cur: Versioned | null): void {
  const st = cur?.state ?? null;
  const sh = model.shard;
  const facts: HTMLElement[] = [];
  const fact = (k: string, v: string, id: string | null = null): void => { facts.push(h('span', null, `${k} `, h('b', { text: v, id }))); };
  fact('generation', st !== null ? String(st.generation) : '-', 'generation');
  fact('primary', st !== null ? st.primary.id : '-', 'primary-id');
  fact('state version', cur !== null ? String(cur.version) : '-');
  if (sh !== null) {
    fact('Raft leader', `${sh.raftLeader ?? 'none'} (term ${sh.raftTerm})`);
    fact('page served by', sh.answeredBy);
  }
  if (st?.freeze !== undefined) facts.push(h('span', { className: 'badge frozen', title: `${st.freeze.reason} (${st.freeze.date})`, text: `frozen: ${st.freeze.reason}` }));
  if (st?.oneNodeWriteMode === true) facts.push(h('span', { className: 'badge onwm', text: `one-node-write mode${st.onwmOverride === true ? ' (set by operator)' : ''}` }));
  // The operator's set-onwm before the primary acted on it (a freeze or a primary without PostgreSQL holds it).
  if (st !== null && typeof st.onwmOverride === 'boolean' && st.onwmOverride !== (st.oneNodeWriteMode === true)) {
    facts.push(h('span', { className: 'badge onwm', text: `one-node-write mode ${st.onwmOverride ? 'on' : 'off'} requested by operator` }));
  }
  replace('facts', h('div', { className: 'facts' }, facts));
  byId('live').className = `live is-${model.live}`;
  byId('live-text').textContent = liveText(model.live);
  document.body.setAttribute('data-generation', st !== null ? String(st.generation) : '');
  document.body.setAttribute('data-primary', st !== null ? st.primary.id : '');
  document.body.setAttribute('data-watch-events', String(model.watchEvents));
  document.title = `${st !== null ? `${st.primary.id} primary \u00b7 g${st.generation} \u00b7 ` : ''}Manatee shard`;
}

/** What an operator must look at first. */
function renderAlerts(cur: Versioned | null): void {
  const st = cur?.state ?? null;
  const out: HTMLElement[] = [];
  const alert = (level: string, text: string, extra: Child = null): void => { out.push(h('div', { className: `alert ${level}` }, text, extra)); };
  if (model.shardError !== null && model.live !== 'live') {
    const others = [...model.known.values()].filter((p) => model.shard === null || p.id !== model.shard.answeredBy);
    alert('bad', `This peer is not answering (${model.shardError}). The page retries; meanwhile open another peer\u2019s page: `,
      others.map((p, i) => [i > 0 ? ', ' : '', h('a', { href: `${p.apiUrl.replace(/\/+$/, '')}/`, text: p.id })]));
  } else if (model.shardError !== null) {
    alert('warn', `Cannot read /shard (${model.shardError}); showing the state from the watch stream.`);
  }
  if (st !== null) {
    const pd = detailOf(st.primary.id);
    const onwm = st.oneNodeWriteMode === true;
    if (isActive(st.primary.id) === false) alert('bad', `The primary ${st.primary.id}\u2019s session ended: the sync takes over once the store commits it.`);
    else if (pd?.reachable === true && pd.writable !== true && !onwm) alert('warn', `The primary ${st.primary.id} does not accept writes yet (it waits for its sync to catch up).`);
    if (st.sync === null && !onwm) alert('bad', 'There is no sync: the primary cannot commit writes.');
    if (st.sync !== null && st.async.length === 0 && !onwm) alert('warn', 'No async: if the primary fails now, the sync cannot take over (it needs an async to become its sync).');
    if (st.freeze !== undefined) alert('info', `The shard is frozen since ${fmtDateTime(st.freeze.date)}: no takeover, no sync replacement (${st.freeze.reason}).`);
    if (st.deposed.length > 0) alert('warn', `Deposed: ${st.deposed.map((p) => p.id).join(', ')} (former primary; rebuilt before it serves again).`);
    if (st.promote !== undefined) alert('info', `Planned switchover to ${st.promote.id} requested (expires ${fmtDateTime(st.promote.expireTime)}).`);
    if (model.shard !== null && cur !== null && model.shard.stateVersion === cur.version) {
      for (const l of model.shard.links) {
        if (!l.streaming) alert(l.expected === 'sync' ? 'bad' : 'warn', `Replication ${l.upstream} \u2192 ${l.downstream} (${l.expected}) is ${l.state ?? 'not running'}.`);
      }
    }
  }
  replace('alerts', out.length > 0 ? out : null);
}

function render(): void {
  const cur = current();
  if (cur !== null) rememberState(cur.state);
  renderHeader(cur);
  renderAlerts(cur);
  renderTopology(cur);
  renderPeers(cur);
  renderTimeline(cur);
  byId('updated').textContent = model.shardAt !== null ? `shard read at ${fmtTime(model.shardAt)} UTC (every ${POLL_MS / 1000} s) \u00b7 ${model.watchEvents} watch events` : '';
}

// ---------------------------------------------------------------- data
/** GET a route relative to the page; rejects with the API's error code, or why there was no answer. */
async function getJson(path: string): Promise<unknown> {
  const ctl = new AbortController();
  const timer = setTimeout(() => { ctl.abort(); }, FETCH_TIMEOUT_MS);
  let res: Response;
  try {
    res = await fetch(path, { headers: { accept: 'application/json' }, signal: ctl.signal, cache: 'no-store' });
  } catch (err) {
    clearTimeout(timer);
    throw new Error(err instanceof Error && err.name === 'AbortError' ? `no answer within ${FETCH_TIMEOUT_MS / 1000} s` : 'connection failed');
  }
  const body: unknown = await res.json().catch(() => null);
  clearTimeout(timer);
  if (!res.ok) {
    const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
    throw new Error(typeof code === 'string' && code !== '' ? code : `HTTP ${res.status}`);
  }
  return body;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

let shardInFlight = false;
let shardAgain = false;
function refreshShard(): void {
  if (shardInFlight) {
    shardAgain = true;
    return;
  }
  shardInFlight = true;
  getJson('shard').then((body) => {
    const report = body as ShardReport;
    model.shard = report;
    model.shardError = null;
    model.shardAt = new Date().toISOString();
    remember(report.peers);
    // A 'peers' event newer than this report's read is kept; otherwise the report is fresher.
    if (Date.now() - model.activeAt > POLL_MS) model.active = null;
  }, (err: unknown) => {
    model.shardError = messageOf(err);
  }).finally(() => {
    shardInFlight = false;
    render();
    if (shardAgain) {
      shardAgain = false;
      refreshShard();
    }
  }).catch(() => undefined);
}

let historyInFlight = false;
function refreshHistory(): void {
  if (historyInFlight) return;
  historyInFlight = true;
  getJson(`history?limit=${HISTORY_LIMIT}`).then((body) => {
    model.history = (body as { history: HistoryEntry[] }).history;
    model.historyError = null;
  }, (err: unknown) => {
    model.historyError = messageOf(err);
  }).finally(() => {
    historyInFlight = false;
    render();
  }).catch(() => undefined);
}

let changeTimer: ReturnType<typeof setTimeout> | null = null;
function onChange(): void {
  render();
  if (changeTimer !== null) return;
  // Several events in a burst (a failover commits a few) lead to one read of each.
  changeTimer = setTimeout(() => {
    changeTimer = null;
    refreshShard();
    refreshHistory();
  }, 150);
}

function parseEvent(ev: Event): unknown {
  try {
    return JSON.parse((ev as MessageEvent<string>).data);
  } catch {
    return null;
  }
}

let source: EventSource | null = null;
function watch(): void {
  if (typeof EventSource === 'undefined') {
    model.live = 'down';
    render();
    return;
  }
  const es = new EventSource('watch');
  source = es;
  es.onopen = () => {
    model.live = 'live';
    render();
  };
  es.addEventListener('state', (ev) => {
    const data = parseEvent(ev) as Versioned | null;
    if (data === null) return;
    model.watchEvents++;
    if (model.watch === null || data.version > model.watch.version) model.watch = { state: data.state, version: data.version };
    model.live = 'live';
    onChange();
  });
  es.addEventListener('peers', (ev) => {
    const data = parseEvent(ev) as { peers: PeerInfo[] } | null;
    if (data === null) return;
    model.watchEvents++;
    remember(data.peers);
    model.active = data.peers.map((p) => p.id);
    model.activeAt = Date.now();
    onChange();
  });
  es.onerror = () => {
    // The browser reconnects by itself (the stream says retry: 1000) unless the answer was not a
    // stream (a 503 when too many watchers are connected): then reconnect here, a bit later.
    if (es.readyState === EventSource.CLOSED) {
      model.live = 'down';
      if (source === es) source = null;
      setTimeout(watch, WATCH_RETRY_MS);
    } else {
      model.live = 'reconnecting';
    }
    render();
  };
}

let resizeTimer: ReturnType<typeof setTimeout> | null = null;
window.addEventListener('resize', () => {
  if (resizeTimer !== null) clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    resizeTimer = null;
    render();
  }, 100);
});

render();
refreshShard();
refreshHistory();
watch();
setInterval(refreshShard, POLL_MS);
setInterval(refreshHistory, HISTORY_POLL_MS);
