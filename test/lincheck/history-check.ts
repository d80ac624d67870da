// A parsed history file checked with its model, and the verdict in words and as a picture.
import { checkOperations, describeCounterexample, type CheckOptions, type CheckReport } from './check.js';
import type { Model } from './model.js';
import { kvModel, registerModel } from './models.js';
import type { ParsedHistory } from './parse.js';
import { renderHistorySvg } from './svg.js';

type AnyReport = CheckReport<unknown, unknown>;

function modelOf(history: ParsedHistory): Model<unknown, unknown, unknown> {
  return (history.model === 'register' ? registerModel : kvModel) as unknown as Model<unknown, unknown, unknown>;
}

export function checkHistory(history: ParsedHistory, options: CheckOptions = {}): AnyReport {
  return history.model === 'register'
    ? checkOperations(registerModel, history.operations, options)
    : checkOperations(kvModel, history.operations, options);
}

export function summaryLines(history: ParsedHistory, report: AnyReport): string[] {
  const lines = [
    `${report.verdict}: ${report.operations} operations (${history.format}, ${history.model} model), ${report.partitions.length} keys checked, ${report.elapsedMs.toFixed(0)} ms`,
  ];
  if (report.reason !== null) lines.push(`  why unknown: ${report.reason}`);
  const c = report.counterexample;
  if (c !== null) {
    const upTo = c.prefixEndMs === null ? '' : `, the history up to ${c.prefixEndMs} (operations in flight then: outcome unknown)`;
    lines.push(`  key ${JSON.stringify(c.key)}: these ${c.operations.length} of its ${c.originalOperations} operations cannot be ordered${upTo}${c.minimal ? '; minimal: no shorter prefix fails, no read and no unseen write can be dropped' : ''}:`);
    for (const l of describeCounterexample(modelOf(history), c)) lines.push(`    ${l}`);
  }
  return lines;
}

export function pictureOf(history: ParsedHistory, report: AnyReport, name: string): string {
  const c = report.counterexample;
  if (c === null) throw new Error('no counterexample to draw');
  return renderHistorySvg(modelOf(history), c.operations, {
    title: `${name}: key ${JSON.stringify(c.key)}, ${c.operations.length} of ${c.originalOperations} operations that cannot be ordered`,
    verdict: report.verdict,
    notes: [
      c.prefixEndMs === null ? 'The whole history of this key is needed.' : `The history up to ${c.prefixEndMs}: operations still in flight then have an unknown outcome (dashed).`,
      c.minimal ? 'Minimal: no shorter prefix fails, and no read, nor any write that no kept operation saw, can be dropped.' : 'Shrunk within its budget (may not be minimal).',
    ],
  });
}
