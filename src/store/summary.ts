// The one-line summary of a state change that goes into the history when the writer gave none,
// e.g. "generation 3: primary b (was a), sync c (was b), async [], deposed [a], initWal 0/3000060".
// Every field is named; a changed one carries "(was ...)". Pure.
import type { ClusterState, PeerInfo } from '../model/index.js';

/** Longest summary kept in the history (a writer's summary is cut to this length). */
export const SUMMARY_CHARS_MAX = 500;

function ids(list: readonly PeerInfo[]): string {
  return `[${list.map((p) => p.id).join(', ')}]`;
}

function field(name: string, now: string, was: string | undefined): string {
  return was === undefined || was === now ? `${name} ${now}` : `${name} ${now} (was ${was})`;
}

export function summarizeChange(previous: ClusterState | null, next: ClusterState): string {
  const parts: string[] = [];
  parts.push(field('primary', next.primary.id, previous?.primary.id));
  parts.push(field('sync', next.sync?.id ?? 'none', previous === null ? undefined : (previous.sync?.id ?? 'none')));
  parts.push(field('async', ids(next.async), previous === null ? undefined : ids(previous.async)));
  parts.push(field('deposed', ids(next.deposed), previous === null ? undefined : ids(previous.deposed)));
  parts.push(field('initWal', next.initWal, previous?.initWal));

  const extras: string[] = [];
  if (previous === null) extras.push('initial setup');
  const wasFrozen = previous?.freeze !== undefined;
  if (next.freeze !== undefined && !wasFrozen) extras.push(`frozen: ${next.freeze.reason || 'no reason given'}`);
  if (next.freeze === undefined && wasFrozen) extras.push('unfrozen');
  const onwm = next.oneNodeWriteMode === true;
  const wasOnwm = previous?.oneNodeWriteMode === true;
  if (onwm && (previous === null || !wasOnwm)) extras.push('one-node-write mode on');
  if (!onwm && wasOnwm) extras.push('one-node-write mode off');
  const override = next.onwmOverride;
  const wasOverride = previous?.onwmOverride;
  if (override !== wasOverride) {
    extras.push(override === undefined ? 'operator override of one-node-write mode cleared' : `operator override: one-node-write mode ${override ? 'on' : 'off'}`);
  }
  const p = next.promote;
  const pp = previous?.promote;
  if (p !== undefined && JSON.stringify(p) !== JSON.stringify(pp)) {
    const at = p.asyncIndex === undefined ? '' : ` at async[${p.asyncIndex}]`;
    extras.push(`promote ${p.id} (${p.role}${at}) requested for generation ${p.generation} until ${p.expireTime}`);
  }
  if (p === undefined && pp !== undefined) extras.push(`promote of ${pp.id} cleared`);
  const r = next.restart;
  const pr = previous?.restart;
  if (r !== undefined && JSON.stringify(r) !== JSON.stringify(pr)) extras.push(`rolling restart scheduled for ${r.at}`);
  if (r === undefined && pr !== undefined) extras.push(`scheduled restart for ${pr.at} cleared`);

  const line = `generation ${next.generation}${previous !== null && previous.generation !== next.generation ? ` (was ${previous.generation})` : ''}: ${parts.join(', ')}${extras.length > 0 ? `; ${extras.join('; ')}` : ''}`;
  return clampSummary(line);
}

/** Summaries are one line of bounded length. */
export function clampSummary(summary: string): string {
  const oneLine = summary.replace(/[\r\n]+/g, ' ');
  return oneLine.length <= SUMMARY_CHARS_MAX ? oneLine : `${oneLine.slice(0, SUMMARY_CHARS_MAX - 3)}...`;
}
