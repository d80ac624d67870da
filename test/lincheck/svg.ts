// A picture of a (sub-)history: one lane per client, each operation a bar from its call to its
// return, labelled with what it did. An operation with an unknown outcome runs off the right edge.
// The x axis is the order of events, not their times: short operations stay readable next to long ones.
import type { Model, Operation, Verdict } from './model.js';

const LANE_HEIGHT_PX = 34;
const STEP_PX = 64;
const LEFT_PX = 90;
const TOP_PX = 56;
const BAR_HEIGHT_PX = 22;
/** A picture never draws more than this many operations (the counterexample is small; a full history is cut). */
export const SVG_MAX_OPERATIONS = 400;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export interface HistoryPicture {
  readonly title: string;
  readonly verdict: Verdict;
  /** Lines of explanation under the title. */
  readonly notes?: readonly string[];
}

export function renderHistorySvg<S, I, O>(model: Model<S, I, O>, all: readonly Operation<I, O>[], picture: HistoryPicture): string {
  const ops = [...all].sort((a, b) => a.callMs - b.callMs).slice(0, SVG_MAX_OPERATIONS);
  const times = [...new Set(ops.flatMap((o) => (Number.isFinite(o.returnMs) ? [o.callMs, o.returnMs] : [o.callMs])))].sort((a, b) => a - b);
  const rank = new Map(times.map((t, i) => [t, i]));
  const clients = [...new Set(ops.map((o) => o.client))].sort((a, b) => a - b);
  const lane = new Map(clients.map((c, i) => [c, i]));
  const notes = picture.notes ?? [];
  const top = TOP_PX + notes.length * 16;
  const endX = LEFT_PX + (times.length + 1) * STEP_PX;
  const width = endX + 40;
  const height = top + clients.length * LANE_HEIGHT_PX + 30;
  const colour = picture.verdict === 'linearizable' ? '#2e7d32' : picture.verdict === 'unknown' ? '#b26a00' : '#c62828';
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(picture.title)}</text>`,
    `<text x="10" y="38" font-size="12" fill="${colour}">${esc(picture.verdict)} (${ops.length}${ops.length < all.length ? ` of ${all.length}` : ''} operations; x axis: order of calls and returns)</text>`,
  ];
  notes.forEach((n, i) => out.push(`<text x="10" y="${54 + i * 16}">${esc(n)}</text>`));
  clients.forEach((c, i) => {
    const y = top + i * LANE_HEIGHT_PX;
    out.push(`<text x="10" y="${y + BAR_HEIGHT_PX / 2 + 4}">client ${c}</text>`);
    out.push(`<line x1="${LEFT_PX}" y1="${y + LANE_HEIGHT_PX - 4}" x2="${endX}" y2="${y + LANE_HEIGHT_PX - 4}" stroke="#eee"/>`);
  });
  for (const op of ops) {
    const y = top + lane.get(op.client)! * LANE_HEIGHT_PX;
    const x1 = LEFT_PX + rank.get(op.callMs)! * STEP_PX;
    const unknown = !Number.isFinite(op.returnMs);
    const x2 = unknown ? endX : LEFT_PX + rank.get(op.returnMs)! * STEP_PX + STEP_PX * 0.8;
    const label = model.describeOperation(op.input, op.output);
    const call = Number.isFinite(op.callMs) ? op.callMs : '?';
    const ret = unknown ? '∞ (unknown outcome)' : op.returnMs;
    out.push(
      `<g><title>${esc(`${label}: client ${op.client}, call ${call}, return ${ret}`)}</title>`,
      `<rect x="${x1}" y="${y}" width="${Math.max(8, x2 - x1)}" height="${BAR_HEIGHT_PX}" rx="3" fill="${unknown ? '#fff3e0' : '#e3f2fd'}" stroke="${unknown ? '#b26a00' : '#1565c0'}"${unknown ? ' stroke-dasharray="4 3"' : ''}/>`,
      `<text x="${x1 + 4}" y="${y + BAR_HEIGHT_PX / 2 + 4}">${esc(label)}</text></g>`,
    );
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
