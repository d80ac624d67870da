// The timeline picture (SVG): operations over time coloured by outcome, one lane per client,
// the fault intervals, the primary of each generation as the status API reported it, and the
// windows without successful writes. Operations are binned per pixel column, so the file's size
// does not grow with the length of the run.
import type { UnavailabilityWindow } from './checker.js';
import type { FaultRecord, Op, StatusSample } from './history.js';

const WIDTH = 1600;
const LEFT = 130;
const RIGHT = 20;
const LANE = 22;
const COLORS = { ok: '#2e9e44', fail: '#d62728', unknown: '#ff9f1c' } as const;
const PEER_COLORS = ['#1f77b4', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function faultColor(kind: string): string {
  if (kind.startsWith('partition')) return '#4a90d9';
  if (kind.startsWith('pause')) return '#a36bd1';
  if (kind === 'restart-all') return '#333333';
  if (kind === 'disk-full' || kind === 'slow-io') return '#b8860b';
  if (kind === 'membership') return '#2a9d8f';
  return '#d9534f';
}

export interface TimelineInput {
  readonly title: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly ops: readonly Op[];
  readonly faults: readonly FaultRecord[];
  readonly samples: readonly StatusSample[];
  readonly windows: readonly UnavailabilityWindow[];
  readonly peers: readonly string[];
  /** More lanes after the clients' (the register workload's clients): each a label and its operations. */
  readonly extraLanes?: readonly { readonly label: string; readonly ops: readonly { readonly atMs: number; readonly outcome: 'ok' | 'fail' | 'unknown' }[] }[];
}

export function renderTimeline(input: TimelineInput): string {
  const span = Math.max(1, input.endMs - input.startMs);
  const plotW = WIDTH - LEFT - RIGHT;
  const x = (t: number): number => LEFT + (Math.min(Math.max(t, input.startMs), input.endMs) - input.startMs) / span * plotW;
  const clients = [...new Set(input.ops.map((o) => o.client))].sort((a, b) => a - b);
  const peerColor = (id: string): string => PEER_COLORS[Math.max(0, input.peers.indexOf(id)) % PEER_COLORS.length]!;
  const out: string[] = [];
  let y = 40;
  const label = (text: string, yy: number): void => {
    out.push(`<text x="${LEFT - 8}" y="${yy + LANE / 2 + 4}" text-anchor="end" font-size="12">${esc(text)}</text>`);
  };

  // Faults: one lane, each fault a bar from its start to its heal, labelled.
  label('faults', y);
  const labelEnds = [0, 0];
  for (const f of input.faults) {
    const x0 = x(f.startedAtMs);
    const w = Math.max(2, x(f.healedAtMs) - x0);
    out.push(`<rect x="${x0.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${LANE - 4}" fill="${faultColor(f.kind)}" opacity="0.85"><title>${esc(`#${f.seq} ${f.kind}${f.parts !== undefined ? ` (${f.parts.join(' + ')})` : ''} ${f.targets.join(',')}: ${f.detail}`)}</title></rect>`);
    // Labels go on two rows, each label only where it does not overprint the previous one of its row
    // (the bar's tooltip names every fault).
    const text = `#${f.seq} ${f.parts !== undefined ? f.parts.join(' + ') : f.kind}`;
    const row = labelEnds[0]! <= x0 ? 0 : labelEnds[1]! <= x0 ? 1 : -1;
    if (row >= 0) {
      out.push(`<text x="${(x0 + 2).toFixed(1)}" y="${y + LANE + 6 + row * 9}" font-size="9" fill="#333">${esc(text)}</text>`);
      labelEnds[row] = x0 + 4 + text.length * 5;
    }
    // A faint band over the lanes below, so that effects line up with causes.
    out.push(`<rect x="${x0.toFixed(1)}" y="${y + LANE + 20}" width="${w.toFixed(1)}" height="__BAND__" fill="${faultColor(f.kind)}" opacity="0.08"/>`);
  }
  y += LANE + 24;

  // The primary of each generation, as the peers' status reported it (the claim with the highest generation).
  label('primary (gen)', y);
  let cur: { peer: string; gen: number; from: number } | null = null;
  const flush = (until: number): void => {
    if (cur === null) return;
    const x0 = x(cur.from);
    const w = Math.max(1, x(until) - x0);
    out.push(`<rect x="${x0.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${LANE - 4}" fill="${peerColor(cur.peer)}"><title>${esc(`${cur.peer} primary, generation ${cur.gen}`)}</title></rect>`);
    if (w > 28) out.push(`<text x="${(x0 + 3).toFixed(1)}" y="${y + LANE - 9}" font-size="10" fill="#fff">${esc(`${cur.peer} g${cur.gen}`)}</text>`);
  };
  for (const s of input.samples) {
    let best: { id: string; generation: number } | null = null;
    for (const p of s.peers) {
      if (p.role === 'primary' && p.writable && p.generation !== null && (best === null || p.generation > best.generation)) best = { id: p.id, generation: p.generation };
    }
    const key = best === null ? null : `${best.id}/${best.generation}`;
    const curKey = cur === null ? null : `${cur.peer}/${cur.gen}`;
    if (key !== curKey) {
      flush(s.atMs);
      cur = best === null ? null : { peer: best.id, gen: best.generation, from: s.atMs };
    }
  }
  flush(input.endMs);
  y += LANE + 6;

  // Windows without successful writes.
  label('no writes', y);
  for (const w of input.windows) {
    out.push(`<rect x="${x(w.startMs).toFixed(1)}" y="${y}" width="${Math.max(1, x(w.endMs) - x(w.startMs)).toFixed(1)}" height="${LANE - 4}" fill="#555" opacity="0.6"><title>${esc(`${(w.durationMs / 1000).toFixed(1)} s without a successful write; cause: ${w.cause ?? 'none recorded'}`)}</title></rect>`);
  }
  y += LANE + 6;

  // One lane per client: per pixel column, a stack of ok / fail / unknown proportional to their counts.
  const lanes = [
    ...clients.map((c) => {
      const ops = input.ops.filter((o) => o.client === c);
      return { label: `${ops[0]?.f === 'read' ? 'reader' : 'writer'} ${c}`, ops: ops.map((o) => ({ atMs: o.invokedAtMs, outcome: o.outcome })) };
    }),
    ...(input.extraLanes ?? []),
  ];
  for (const lane of lanes) {
    label(lane.label, y);
    const bins = new Map<number, { ok: number; fail: number; unknown: number }>();
    for (const o of lane.ops) {
      const col = Math.floor(x(o.atMs));
      const b = bins.get(col) ?? { ok: 0, fail: 0, unknown: 0 };
      b[o.outcome]++;
      bins.set(col, b);
    }
    for (const [col, b] of bins) {
      const total = b.ok + b.fail + b.unknown;
      let yy = y;
      for (const k of ['unknown', 'fail', 'ok'] as const) {
        if (b[k] === 0) continue;
        const h = Math.max(2, (LANE - 4) * b[k] / total);
        out.push(`<rect x="${col}" y="${yy.toFixed(1)}" width="1" height="${h.toFixed(1)}" fill="${COLORS[k]}"/>`);
        yy += h;
      }
    }
    y += LANE;
  }

  // Time axis.
  const stepS = [5, 10, 30, 60, 120, 300, 600].find((s) => span / 1000 / s <= 20) ?? 1200;
  for (let t = 0; t <= span / 1000; t += stepS) {
    const xx = x(input.startMs + t * 1000);
    out.push(`<line x1="${xx.toFixed(1)}" y1="36" x2="${xx.toFixed(1)}" y2="${y}" stroke="#ccc" stroke-width="0.5"/>`);
    out.push(`<text x="${xx.toFixed(1)}" y="${y + 14}" font-size="10" text-anchor="middle">${t}s</text>`);
  }
  y += 24;
  const legend = [
    ['ok', COLORS.ok], ['fail', COLORS.fail], ['unknown', COLORS.unknown],
    ['crash', '#d9534f'], ['pause', '#a36bd1'], ['partition', '#4a90d9'], ['restart all', '#333333'],
    ...input.peers.map((p) => [`primary ${p}`, peerColor(p)] as const),
  ] as const;
  let lx = LEFT;
  for (const [name, color] of legend) {
    out.push(`<rect x="${lx}" y="${y}" width="10" height="10" fill="${color}"/><text x="${lx + 14}" y="${y + 9}" font-size="11">${esc(name)}</text>`);
    lx += 24 + name.length * 7;
  }
  y += 20;
  const bandHeight = Math.max(0, y - 24 - 20 - (40 + LANE + 20));
  const body = out.join('\n').replaceAll('__BAND__', bandHeight.toFixed(0));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${LEFT}" y="22" font-size="15" font-weight="bold">${esc(input.title)}</text>
${body}
</svg>
`;
}
