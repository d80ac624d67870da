// The status page's script, inlined into the document. It reads the shard from the peer that
// served the page: GET shard (roles, health, LSNs, lag per link), GET history, and GET watch
// (server-sent events of each committed state change). A committed change is drawn as soon as
// its event arrives, before /shard is read again, so that a failover shows within the time the
// store takes to commit it; /shard is also polled, because lag and health are not events.
//
// Written as plain browser JavaScript in a string (no template literal substitutions and no
// backticks inside): it is sent as is, with no build step. Every text that comes from the shard
// is set with textContent (never innerHTML), so a summary or an error message cannot inject markup.
export const PAGE_SCRIPT = String.raw`
(function () {
  'use strict';
  var POLL_MS = 2000;
  var HISTORY_POLL_MS = 15000;
  var HISTORY_LIMIT = 200;
  var HISTORY_ROWS_MAX = 60;
  var FETCH_TIMEOUT_MS = 5000;
  var WATCH_RETRY_MS = 2000;
  var KNOWN_PEERS_MAX = 100;
  // The namespace of SVG elements, taken from the inline <svg> in the document rather than spelled out.
  var SVG_NS = document.getElementById('svg-ns').namespaceURI;

  var model = {
    shard: null, shardError: null, shardAt: null,
    history: [], historyError: null,
    watch: null,           // {state, version} of the newest 'state' event
    active: null,          // ids of active peers from the newest 'peers' event (or /shard)
    activeAt: 0,           // when 'active' was set by a 'peers' event (ms)
    live: 'connecting',
    watchEvents: 0,
    known: {}              // id -> PeerInfo of every peer seen (for links when this peer is down)
  };

  // ---------------------------------------------------------------- DOM helpers
  function append(el, children) {
    for (var i = 0; i < children.length; i++) {
      var c = children[i];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) { append(el, c); continue; }
      el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return el;
  }
  function h(tag, props) {
    var el = document.createElement(tag);
    if (props) {
      for (var k in props) {
        var v = props[k];
        if (v === null || v === undefined) continue;
        if (k === 'className') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k === 'title') el.title = v;
        else if (k === 'href') el.setAttribute('href', v);
        else if (k.indexOf('data-') === 0) el.setAttribute(k, v);
        else el.setAttribute(k, v);
      }
    }
    return append(el, Array.prototype.slice.call(arguments, 2));
  }
  function s(tag, attrs) {
    var el = document.createElementNS(SVG_NS, tag);
    for (var k in attrs) if (attrs[k] !== null && attrs[k] !== undefined) el.setAttribute(k, String(attrs[k]));
    return append(el, Array.prototype.slice.call(arguments, 2));
  }
  function svgText(x, y, text, attrs) {
    var t = s('text', Object.assign({ x: x, y: y }, attrs || {}));
    t.textContent = text;
    return t;
  }
  function replace(id, node) {
    var el = document.getElementById(id);
    while (el.firstChild) el.removeChild(el.firstChild);
    if (node) append(el, [node]);
  }

  // ---------------------------------------------------------------- formatting
  function fmtBytes(n) {
    if (n === null || n === undefined) return '?';
    if (n < 1024) return n + ' B';
    var units = ['kB', 'MB', 'GB', 'TB'];
    var v = n / 1024;
    for (var i = 0; i < units.length - 1 && v >= 1024; i++) v = v / 1024;
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + ' ' + units[i];
  }
  function fmtSeconds(sec) {
    if (sec === null || sec === undefined) return '?';
    if (sec < 10) return sec.toFixed(1) + ' s';
    if (sec < 120) return Math.round(sec) + ' s';
    if (sec < 7200) return Math.round(sec / 60) + ' min';
    return (sec / 3600).toFixed(1) + ' h';
  }
  function fmtTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toISOString().slice(11, 19);
  }
  function fmtDateTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function ago(iso) {
    var ms = Date.now() - new Date(iso).getTime();
    if (isNaN(ms)) return '';
    return fmtSeconds(Math.max(0, ms / 1000)) + ' ago';
  }
  function pgAddress(pgUrl) {
    var m = /@([^/?]+)/.exec(pgUrl || '') || /^[a-z]+:\/\/([^/?]+)/i.exec(pgUrl || '');
    return m ? m[1] : (pgUrl || '?');
  }
  // A stable colour for each peer id (the timeline's bands are coloured by their primary).
  // (Not the role colours: a band's colour names a peer, not a role.)
  var PALETTE = ['#0f766e', '#c2410c', '#a21caf', '#4d7c0f', '#b45309', '#0e7490', '#be185d', '#57534e', '#9a3412', '#3f6212'];
  function colourOf(id) {
    var hsh = 0;
    for (var i = 0; i < id.length; i++) hsh = (hsh * 31 + id.charCodeAt(i)) >>> 0;
    return PALETTE[hsh % PALETTE.length];
  }

  // ---------------------------------------------------------------- the model
  // The committed state to draw: the newer of /shard's and the watch stream's.
  function current() {
    var sh = model.shard, w = model.watch;
    if (w && (!sh || w.version > sh.stateVersion)) return { state: w.state, version: w.version };
    if (sh) return { state: sh.state, version: sh.stateVersion };
    return null;
  }
  function detailOf(id) {
    if (!model.shard) return null;
    for (var i = 0; i < model.shard.peers.length; i++) if (model.shard.peers[i].id === id) return model.shard.peers[i];
    return null;
  }
  function isActive(id) {
    if (model.active) return model.active.indexOf(id) >= 0;
    var d = detailOf(id);
    return d ? d.active : null;
  }
  function linkOf(up, down) {
    if (!model.shard) return null;
    for (var i = 0; i < model.shard.links.length; i++) {
      var l = model.shard.links[i];
      if (l.upstream === up && l.downstream === down) return l;
    }
    return null;
  }
  function remember(peers) {
    for (var i = 0; i < peers.length; i++) {
      var p = peers[i];
      if (!p || !p.id) continue;
      if (!model.known[p.id] && Object.keys(model.known).length >= KNOWN_PEERS_MAX) continue;
      model.known[p.id] = p;
    }
  }
  function rememberState(st) {
    if (!st) return;
    remember([st.primary]);
    if (st.sync) remember([st.sync]);
    remember(st.async); remember(st.deposed);
  }

  // How a peer is doing, in one word and a colour.
  function healthOf(role, d, active, state) {
    if (!d) return { level: 'unknown', text: 'no report yet' };
    if (!d.reachable) return { level: 'bad', text: 'sitter unreachable', why: d.error };
    if (role === 'deposed') return d.rebuild && d.rebuild.running ? { level: 'warn', text: 'rebuilding' } : { level: 'warn', text: 'waiting for rebuild' };
    if (active === false) return { level: 'bad', text: 'session ended' };
    if (d.pgOnline === false) return { level: role === 'unassigned' ? 'unknown' : 'bad', text: 'PostgreSQL down', why: d.error };
    if (d.pgHealthy === false) return { level: 'warn', text: 'PostgreSQL unhealthy', why: d.error };
    if (role === 'primary') {
      if (d.writable) return { level: 'ok', text: 'writable' };
      return { level: 'warn', text: state && state.oneNodeWriteMode ? 'read-only' : 'read-only: waiting for the sync' };
    }
    if (role === 'sync' || role === 'async') return { level: 'ok', text: 'replaying' };
    return { level: 'unknown', text: 'not in the chain yet' };
  }
  function linkHealth(l, expected) {
    if (!l) return { level: 'unknown', text: 'no report yet' };
    if (l.streaming) {
      if (expected === 'sync' && l.syncState && l.syncState !== 'sync') return { level: 'warn', text: 'streaming (' + l.syncState + ')' };
      return { level: 'ok', text: 'streaming' + (expected === 'sync' && l.syncState ? ' · ' + l.syncState : '') };
    }
    if (l.state) return { level: 'warn', text: l.state };
    return { level: 'bad', text: 'not replicating' };
  }

  // ---------------------------------------------------------------- rendering
  function roleBadge(role) { return h('span', { className: 'role ' + role, text: role }); }

  function peerCard(info, role, state) {
    var d = detailOf(info.id);
    var active = isActive(info.id);
    var hl = healthOf(role, d, active, state);
    var rows = [];
    function row(k, v, title) { rows.push(h('dt', { text: k }), h('dd', { text: v, title: title || v })); }
    row('postgres', pgAddress(info.pgUrl));
    if (d && d.reachable) {
      if (role === 'primary') row('wal lsn', d.currentLsn || '?');
      else if (d.replayLsn) row('replay lsn', d.replayLsn + (d.receiveLsn && d.receiveLsn !== d.replayLsn ? ' (recv ' + d.receiveLsn + ')' : ''));
      if (role === 'sync' || role === 'async') row('lag', fmtSeconds(d.lagSeconds));
      row('pids', 'sitter ' + (d.sitterPid === null ? '-' : d.sitterPid) + ' · pg ' + (d.postgresPid === null ? '-' : d.postgresPid));
      if (d.checkLatencyMs !== null && d.checkLatencyMs !== undefined) row('check', Math.round(d.checkLatencyMs) + ' ms');
    }
    row('session', active === null ? '?' : active ? 'active' : 'ended');
    if (model.shard && model.shard.raftLeader === info.id) row('raft', 'leader (term ' + model.shard.raftTerm + ')');
    var extra = [];
    if (d && d.rebuild && (d.rebuild.running || d.rebuild.lastError)) {
      var r = d.rebuild;
      var p = r.progress;
      var pct = p && p.percent !== null ? Math.max(0, Math.min(100, p.percent)) : null;
      var label = r.running
        ? 'rebuild' + (r.source ? ' from ' + r.source : '') + (p ? ': ' + p.phase + (pct !== null ? ' ' + pct.toFixed(0) + '%' : '') + ' · ' + fmtBytes(p.bytesDone) + (p.rateBytesPerSec ? ' at ' + fmtBytes(p.rateBytesPerSec) + '/s' : '') : '')
        : 'last rebuild failed: ' + r.lastError;
      extra.push(h('div', { className: 'decision', title: label }, label));
      if (r.running) {
        var bar = h('div');
        bar.style.width = (pct === null ? 5 : pct) + '%';
        extra.push(h('div', { className: 'progress' }, bar));
      }
    }
    if (d && d.lastDecision) {
      var dec = d.lastDecision;
      extra.push(h('div', { className: 'decision', title: dec.kind + ': ' + dec.reason + ' (' + dec.at + ')' }, h('b', { text: dec.kind }), ' · ' + dec.reason));
    }
    var idNode = info.apiUrl ? h('a', { href: info.apiUrl.replace(/\/+$/, '') + '/', title: 'this peer\u2019s page: ' + info.apiUrl, text: info.id }) : info.id;
    return h('div', { className: 'card role-' + role + (hl.level === 'bad' ? ' is-gone' : ''), 'data-peer': info.id, 'data-role': role },
      h('div', { className: 'head' }, h('span', { className: 'peer-id' }, idNode), roleBadge(role)),
      h('div', { className: 'health ' + hl.level, title: hl.why || hl.text, 'data-health': hl.level }, h('span', { className: 'dot' }), hl.text),
      h('dl', null, rows),
      extra);
  }

  function linkArrow(up, down, expected) {
    var l = linkOf(up.id, down.id);
    var lh = linkHealth(l, expected);
    var svg = s('svg', { viewBox: '0 0 150 22', preserveAspectRatio: 'none', 'aria-hidden': 'true' },
      s('line', { x1: 4, y1: 11, x2: 136, y2: 11, stroke: 'currentColor', 'stroke-width': 3, 'stroke-dasharray': lh.level === 'ok' ? null : '6 5' }),
      s('path', { d: 'M134 4 L146 11 L134 18 Z', fill: 'currentColor' }));
    var lag = l ? fmtBytes(l.lagBytes) + ' · ' + fmtSeconds(l.lagSeconds) : '';
    return h('div', { className: 'link ' + lh.level, 'data-link': up.id + '>' + down.id, title: up.id + ' \u2192 ' + down.id + ': ' + lh.text + (l ? ', ' + fmtBytes(l.lagBytes) + ' behind, data ' + fmtSeconds(l.lagSeconds) + ' old' : '') },
      h('span', { className: 'kind', text: expected }),
      svg,
      h('span', { className: 'lag', text: lag || '\u00a0' }),
      h('span', { className: 'st', text: lh.text }));
  }

  function renderTopology(cur) {
    var st = cur && cur.state;
    if (!st) {
      replace('topology', h('div', { className: 'empty', text: model.shard || model.watch ? 'No cluster state yet: the shard has not been set up (it needs two active peers, or one-node-write mode).' : 'Loading\u2026' }));
      return;
    }
    var chain = [{ peer: st.primary, role: 'primary' }];
    if (st.sync) chain.push({ peer: st.sync, role: 'sync' });
    for (var i = 0; i < st.async.length; i++) chain.push({ peer: st.async[i], role: 'async' });
    var row = h('div', { className: 'chain', id: 'chain' });
    for (var j = 0; j < chain.length; j++) {
      if (j > 0) append(row, [linkArrow(chain[j - 1].peer, chain[j].peer, j === 1 && st.sync ? 'sync' : 'async')]);
      append(row, [peerCard(chain[j].peer, chain[j].role, st)]);
    }
    var placed = {};
    chain.forEach(function (c) { placed[c.peer.id] = true; });
    st.deposed.forEach(function (p) { placed[p.id] = true; });
    var unassigned = [];
    var candidates = (model.shard ? model.shard.peers : []).map(function (p) { return p; });
    (model.active || []).forEach(function (id) { if (model.known[id]) candidates.push(model.known[id]); });
    candidates.forEach(function (p) {
      if (!placed[p.id] && isActive(p.id) !== false) { placed[p.id] = true; unassigned.push(p); }
    });
    var off = null;
    if (st.deposed.length > 0 || unassigned.length > 0) {
      off = h('div', { className: 'offchain' },
        st.deposed.length > 0 ? h('h3', { text: 'Deposed (former primaries; each must be rebuilt before it serves again)' }) : null,
        st.deposed.length > 0 ? h('div', { className: 'cards' }, st.deposed.map(function (p) { return peerCard(p, 'deposed', st); })) : null,
        unassigned.length > 0 ? h('h3', { text: 'Unassigned (active, not yet placed in the chain by the primary)' }) : null,
        unassigned.length > 0 ? h('div', { className: 'cards' }, unassigned.map(function (p) { return peerCard(p, 'unassigned', st); })) : null);
    }
    var box = h('div', null, row, off);
    replace('topology', box);
  }

  function yesNo(v, yes, no) {
    if (v === null || v === undefined) return h('span', { className: 'cell' }, h('span', { className: 'dot' }), '?');
    return h('span', { className: 'cell' }, h('span', { className: 'dot ' + (v ? 'ok' : 'bad') }), v ? yes : no);
  }

  function renderPeers(cur) {
    var st = cur && cur.state;
    var sh = model.shard;
    if (!sh) { replace('peers', h('div', { className: 'empty', text: model.shardError ? 'Cannot read /shard: ' + model.shardError : 'Loading\u2026' })); return; }
    var head = h('tr', null, ['peer', 'role', 'session', 'sitter', 'PostgreSQL', 'writes', 'LSN (current / replay)', 'lag', 'check', 'last decision'].map(function (t) { return h('th', { text: t }); }));
    var body = sh.peers.map(function (p) {
      var role = roleIn(st, p.id);
      var d = p;
      var pg = !d.reachable ? h('span', { className: 'cell' }, h('span', { className: 'dot' }), '?')
        : d.pgOnline === false ? h('span', { className: 'cell', title: d.error || '' }, h('span', { className: 'dot bad' }), 'down')
        : d.pgHealthy === false ? h('span', { className: 'cell', title: d.error || '' }, h('span', { className: 'dot warn' }), 'unhealthy')
        : h('span', { className: 'cell' }, h('span', { className: 'dot ok' }), 'healthy');
      var lsn = d.reachable ? (d.currentLsn || '-') + ' / ' + (d.replayLsn || '-') : '-';
      var dec = d.lastDecision;
      return h('tr', { 'data-peer-row': p.id },
        h('td', { className: 'mono' }, h('b', { text: p.id })),
        h('td', null, roleBadge(role)),
        h('td', null, yesNo(isActive(p.id), 'active', 'ended')),
        h('td', { title: d.reachable ? '' : (d.error || '') }, yesNo(d.reachable, 'up', 'unreachable')),
        h('td', null, pg),
        h('td', null, d.writable === null ? '?' : d.writable ? 'read-write' : 'read-only'),
        h('td', { className: 'mono', text: lsn }),
        h('td', { className: 'mono', text: role === 'sync' || role === 'async' ? fmtSeconds(d.lagSeconds) : '-' }),
        h('td', { className: 'mono', text: d.checkLatencyMs === null || d.checkLatencyMs === undefined ? '-' : Math.round(d.checkLatencyMs) + ' ms' }),
        h('td', { className: 'reason', title: dec ? dec.at : '' }, dec ? [h('b', { text: dec.kind }), ' · ' + dec.reason + ' (' + ago(dec.at) + ')'] : '-'));
    });
    replace('peers', h('table', null, h('thead', null, head), h('tbody', null, body)));
  }

  function roleIn(st, id) {
    if (!st) return 'unassigned';
    if (st.primary.id === id) return 'primary';
    if (st.sync && st.sync.id === id) return 'sync';
    for (var i = 0; i < st.async.length; i++) if (st.async[i].id === id) return 'async';
    for (var j = 0; j < st.deposed.length; j++) if (st.deposed[j].id === id) return 'deposed';
    return 'unassigned';
  }

  // Generations as bands along a time axis, coloured by their primary; each state change is a tick.
  function renderTimeline(cur) {
    var hist = model.history.slice();
    var st = cur && cur.state;
    if (hist.length === 0) {
      replace('timeline', h('div', { className: 'empty', text: model.historyError ? 'Cannot read /history: ' + model.historyError : 'No history yet.' }));
      replace('history', null);
      return;
    }
    // Drawn at the width of its box (in CSS pixels), so that its text is never stretched.
    var W = Math.max(320, Math.round(document.getElementById('timeline').clientWidth || 1000)), H = 118, X0 = 8, X1 = W - 8, Y = 34, BAND = 40;
    var t0 = new Date(hist[0].time).getTime();
    var now = Date.now();
    var tEnd = Math.max(now, new Date(hist[hist.length - 1].time).getTime());
    var span = Math.max(1000, tEnd - t0);
    function x(t) { return X0 + (X1 - X0) * (t - t0) / span; }
    var svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'aria-label': 'generation timeline' });
    // Bands: one per run of entries with the same generation.
    var bands = [];
    hist.forEach(function (e) {
      var last = bands[bands.length - 1];
      if (!last || last.generation !== e.generation) bands.push({ generation: e.generation, start: new Date(e.time).getTime(), entry: e });
      else last.entry = e;
    });
    for (var i = 0; i < bands.length; i++) {
      var b = bands[i];
      var end = i + 1 < bands.length ? bands[i + 1].start : tEnd;
      var xa = x(b.start), xb = Math.max(x(end), xa + 2);
      var prim = b.entry.state.primary.id;
      var sync = b.entry.state.sync ? b.entry.state.sync.id : '-';
      var g = s('g', { 'data-generation': b.generation });
      append(g, [s('rect', { x: xa, y: Y, width: xb - xa, height: BAND, fill: colourOf(prim), 'fill-opacity': i === bands.length - 1 ? 0.9 : 0.55, rx: 3 },
        s('title', null))]);
      g.firstChild.firstChild.textContent = 'generation ' + b.generation + ': primary ' + prim + ', sync ' + sync + ' (from ' + fmtDateTime(new Date(b.start).toISOString()) + ')';
      if (xb - xa > 46) {
        append(g, [svgText(xa + 6, Y + 17, 'g' + b.generation, { fill: '#fff', 'font-size': 13, 'font-weight': 700 })]);
        append(g, [svgText(xa + 6, Y + 33, prim + (xb - xa > 120 ? ' \u2192 ' + sync : ''), { fill: '#fff', 'font-size': 11.5 })]);
      }
      append(svg, [g]);
    }
    // A tick per state change, with its summary as a tooltip.
    // A change of primary (a takeover or a switchover) is a red tick with a triangle over it.
    hist.forEach(function (e, i) {
      var tx = x(new Date(e.time).getTime());
      var failover = i > 0 && hist[i - 1].state.primary.id !== e.state.primary.id;
      var tick = s('line', { x1: tx, y1: Y - 6, x2: tx, y2: Y + BAND + 6, stroke: failover ? '#c53030' : '#16202c', 'stroke-width': failover ? 2 : 1, 'stroke-opacity': failover ? 1 : 0.45 });
      if (failover) append(svg, [s('path', { d: 'M' + (tx - 6) + ' ' + (Y - 13) + ' L' + (tx + 6) + ' ' + (Y - 13) + ' L' + tx + ' ' + (Y - 4) + ' Z', fill: '#c53030' })]);
      var t = s('title'); t.textContent = fmtDateTime(e.time) + ' g' + e.generation + ': ' + e.summary;
      tick.appendChild(t);
      append(svg, [tick]);
    });
    // The axis: start, end ("now"), and a few times between.
    append(svg, [s('line', { x1: X0, y1: Y + BAND + 14, x2: X1, y2: Y + BAND + 14, stroke: '#b8c2cf', 'stroke-width': 1 })]);
    for (var k = 0; k <= 4; k++) {
      var tk = t0 + span * k / 4;
      var anchor = k === 0 ? 'start' : k === 4 ? 'end' : 'middle';
      append(svg, [svgText(x(tk), Y + BAND + 30, k === 4 ? 'now' : fmtTime(new Date(tk).toISOString()), { fill: '#5d6b7d', 'font-size': 11.5, 'text-anchor': anchor })]);
    }
    append(svg, [svgText(X0, 18, 'generations since ' + fmtDateTime(hist[0].time) + (st ? ' \u00b7 current: g' + st.generation : ''), { fill: '#5d6b7d', 'font-size': 12 })]);
    replace('timeline', svg);

    // The list, newest first: generation changes are marked with what changed.
    var rows = [];
    for (var n = hist.length - 1; n >= 0 && rows.length < HISTORY_ROWS_MAX; n--) {
      var e = hist[n], prev = n > 0 ? hist[n - 1] : null;
      var badges = [];
      if (prev && prev.state.primary.id !== e.state.primary.id) badges.push(h('span', { className: 'badge failover', text: 'new primary ' + e.state.primary.id }));
      else if (prev && (prev.state.sync ? prev.state.sync.id : null) !== (e.state.sync ? e.state.sync.id : null)) badges.push(h('span', { className: 'badge newsync', text: 'new sync' }));
      if (e.state.freeze) badges.push(h('span', { className: 'badge frozen', text: 'frozen' }));
      var chain = [e.state.primary.id].concat(e.state.sync ? [e.state.sync.id] : [], e.state.async.map(function (a) { return a.id; })).join(' \u2192 ');
      rows.push(h('tr', { className: prev && prev.generation !== e.generation ? 'gen-change' : '' },
        h('td', { className: 'mono', text: fmtDateTime(e.time) }),
        h('td', { className: 'mono' }, h('span', { className: 'dot', 'data-c': '1' }), ' g' + e.generation),
        h('td', { className: 'mono', text: chain }),
        h('td', null, e.summary, badges)));
      rows[rows.length - 1].children[1].firstChild.style.background = colourOf(e.state.primary.id);
    }
    replace('history', h('div', { className: 'scroll' }, h('table', null,
      h('thead', null, h('tr', null, ['time (UTC)', 'gen', 'chain', 'change'].map(function (t) { return h('th', { text: t }); }))),
      h('tbody', null, rows))));
  }

  function renderHeader(cur) {
    var st = cur && cur.state;
    var sh = model.shard;
    var facts = [];
    function fact(k, v, id) { facts.push(h('span', null, k + ' ', h('b', { text: v, id: id || null }))); }
    fact('generation', st ? String(st.generation) : '-', 'generation');
    fact('primary', st ? st.primary.id : '-', 'primary-id');
    fact('state version', cur ? String(cur.version) : '-');
    if (sh) {
      fact('Raft leader', (sh.raftLeader || 'none') + ' (term ' + sh.raftTerm + ')');
      fact('page served by', sh.answeredBy);
    }
    if (st && st.freeze) facts.push(h('span', { className: 'badge frozen', title: st.freeze.reason + ' (' + st.freeze.date + ')', text: 'frozen: ' + st.freeze.reason }));
    if (st && st.oneNodeWriteMode) facts.push(h('span', { className: 'badge onwm', text: 'one-node-write mode' + (st.onwmOverride === true ? ' (set by operator)' : '') }));
    // The operator's set-onwm before the primary acted on it (a freeze or a primary without PostgreSQL holds it).
    if (st && typeof st.onwmOverride === 'boolean' && st.onwmOverride !== (st.oneNodeWriteMode === true)) {
      facts.push(h('span', { className: 'badge onwm', text: 'one-node-write mode ' + (st.onwmOverride ? 'on' : 'off') + ' requested by operator' }));
    }
    replace('facts', h('div', { className: 'facts' }, facts));
    var live = document.getElementById('live');
    live.className = 'live is-' + model.live;
    document.getElementById('live-text').textContent = model.live === 'live' ? 'live' : model.live === 'reconnecting' ? 'reconnecting\u2026' : model.live === 'down' ? 'not connected' : 'connecting\u2026';
    document.body.setAttribute('data-generation', st ? String(st.generation) : '');
    document.body.setAttribute('data-primary', st ? st.primary.id : '');
    document.body.setAttribute('data-watch-events', String(model.watchEvents));
    document.title = (st ? st.primary.id + ' primary \u00b7 g' + st.generation + ' \u00b7 ' : '') + 'Manatee shard';
  }

  // What an operator must look at first.
  function renderAlerts(cur) {
    var st = cur && cur.state;
    var out = [];
    function alert(level, text, extra) { out.push(h('div', { className: 'alert ' + level }, text, extra || null)); }
    if (model.shardError && model.live !== 'live') {
      var others = Object.keys(model.known).filter(function (id) { return !model.shard || id !== model.shard.answeredBy; });
      alert('bad', 'This peer is not answering (' + model.shardError + '). The page retries; meanwhile open another peer\u2019s page: ',
        others.map(function (id, i) { var p = model.known[id]; return [i > 0 ? ', ' : '', h('a', { href: p.apiUrl.replace(/\/+$/, '') + '/', text: id })]; }));
    } else if (model.shardError) {
      alert('warn', 'Cannot read /shard (' + model.shardError + '); showing the state from the watch stream.');
    }
    if (st) {
      var pd = detailOf(st.primary.id);
      if (isActive(st.primary.id) === false) alert('bad', 'The primary ' + st.primary.id + '\u2019s session ended: the sync takes over once the store commits it.');
      else if (pd && pd.reachable && !pd.writable && !st.oneNodeWriteMode) alert('warn', 'The primary ' + st.primary.id + ' does not accept writes yet (it waits for its sync to catch up).');
      if (!st.sync && !st.oneNodeWriteMode) alert('bad', 'There is no sync: the primary cannot commit writes.');
      if (st.sync && st.async.length === 0 && !st.oneNodeWriteMode) alert('warn', 'No async: if the primary fails now, the sync cannot take over (it needs an async to become its sync).');
      if (st.freeze) alert('info', 'The shard is frozen since ' + fmtDateTime(st.freeze.date) + ': no takeover, no sync replacement (' + st.freeze.reason + ').');
      if (st.deposed.length > 0) alert('warn', 'Deposed: ' + st.deposed.map(function (p) { return p.id; }).join(', ') + ' (former primary; rebuilt before it serves again).');
      if (st.promote) alert('info', 'Planned switchover to ' + st.promote.id + ' requested (expires ' + fmtDateTime(st.promote.expireTime) + ').');
      if (model.shard && model.shard.stateVersion === cur.version) {
        model.shard.links.forEach(function (l) {
          if (!l.streaming) alert(l.expected === 'sync' ? 'bad' : 'warn', 'Replication ' + l.upstream + ' \u2192 ' + l.downstream + ' (' + l.expected + ') is ' + (l.state || 'not running') + '.');
        });
      }
    }
    replace('alerts', out.length ? out : null);
  }

  function render() {
    var cur = current();
    if (cur) rememberState(cur.state);
    renderHeader(cur);
    renderAlerts(cur);
    renderTopology(cur);
    renderPeers(cur);
    renderTimeline(cur);
    var upd = document.getElementById('updated');
    upd.textContent = model.shardAt ? 'shard read at ' + fmtTime(model.shardAt) + ' UTC (every ' + POLL_MS / 1000 + ' s) \u00b7 ' + model.watchEvents + ' watch events' : '';
  }

  // ---------------------------------------------------------------- data
  function getJson(path) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, FETCH_TIMEOUT_MS);
    return fetch(path, { headers: { accept: 'application/json' }, signal: ctl.signal, cache: 'no-store' }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (body) {
        clearTimeout(timer);
        if (!res.ok) throw new Error((body && body.error && body.error.code) || ('HTTP ' + res.status));
        return body;
      });
    }, function (err) {
      clearTimeout(timer);
      throw new Error(err && err.name === 'AbortError' ? 'no answer within ' + FETCH_TIMEOUT_MS / 1000 + ' s' : 'connection failed');
    });
  }

  var shardInFlight = false, shardAgain = false;
  function refreshShard() {
    if (shardInFlight) { shardAgain = true; return; }
    shardInFlight = true;
    getJson('shard').then(function (body) {
      model.shard = body; model.shardError = null; model.shardAt = new Date().toISOString();
      remember(body.peers);
      // A 'peers' event newer than this report's read is kept; otherwise the report is fresher.
      if (Date.now() - model.activeAt > POLL_MS) model.active = null;
    }, function (err) {
      model.shardError = err.message;
    }).then(function () {
      shardInFlight = false;
      render();
      if (shardAgain) { shardAgain = false; refreshShard(); }
    });
  }

  var historyInFlight = false;
  function refreshHistory() {
    if (historyInFlight) return;
    historyInFlight = true;
    getJson('history?limit=' + HISTORY_LIMIT).then(function (body) {
      model.history = body.history; model.historyError = null;
    }, function (err) {
      model.historyError = err.message;
    }).then(function () { historyInFlight = false; render(); });
  }

  var changeTimer = null;
  function onChange() {
    render();
    if (changeTimer !== null) return;
    // Several events in a burst (a failover commits a few) lead to one read of each.
    changeTimer = setTimeout(function () { changeTimer = null; refreshShard(); refreshHistory(); }, 150);
  }

  var source = null;
  function watch() {
    if (typeof EventSource === 'undefined') { model.live = 'down'; render(); return; }
    source = new EventSource('watch');
    source.onopen = function () { model.live = 'live'; render(); };
    source.addEventListener('state', function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      model.watchEvents++;
      if (!model.watch || data.version > model.watch.version) model.watch = { state: data.state, version: data.version };
      model.live = 'live';
      onChange();
    });
    source.addEventListener('peers', function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      model.watchEvents++;
      remember(data.peers);
      model.active = data.peers.map(function (p) { return p.id; });
      model.activeAt = Date.now();
      onChange();
    });
    source.onerror = function () {
      // The browser reconnects by itself (the stream says retry: 1000) unless the answer was not a
      // stream (a 503 when too many watchers are connected): then reconnect here, a bit later.
      if (source.readyState === EventSource.CLOSED) {
        model.live = 'down';
        source = null;
        setTimeout(watch, WATCH_RETRY_MS);
      } else {
        model.live = 'reconnecting';
      }
      render();
    };
  }

  var resizeTimer = null;
  window.addEventListener('resize', function () {
    if (resizeTimer !== null) clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { resizeTimer = null; render(); }, 100);
  });

  render();
  refreshShard();
  refreshHistory();
  watch();
  setInterval(refreshShard, POLL_MS);
  setInterval(refreshHistory, HISTORY_POLL_MS);
})();
`;
