// Hand-made histories (test/lincheck/histories/hand, each file says what it shows): the violations
// that the register workload must catch, and outcomes that are unknown, which may go either way.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkOperations, describeCounterexample } from './check.js';
import { checkHistory, pictureOf, summaryLines } from './history-check.js';
import { registerModel } from './models.js';
import { parseHistory, parseJepsenEtcd, type RegisterOperation } from './parse.js';

const HAND = join(dirname(fileURLToPath(import.meta.url)), 'histories', 'hand');
const expected = JSON.parse(readFileSync(join(HAND, 'expected.json'), 'utf8')) as Record<string, boolean>;

function hand(file: string): RegisterOperation[] {
  return parseJepsenEtcd(readFileSync(join(HAND, file), 'utf8'), file);
}

describe('hand-made register histories', () => {
  it('every hand-made history has its expected verdict', () => {
    const files = readdirSync(HAND).filter((f) => f.endsWith('.log')).sort();
    expect(files.sort()).toEqual(Object.keys(expected).sort());
    for (const file of files) {
      expect(checkOperations(registerModel, hand(file)).verdict, file).toBe(expected[file] === true ? 'linearizable' : 'not linearizable');
    }
  });

  it('a stale read is reported with the two writes and the read that cannot be ordered', () => {
    const c = checkOperations(registerModel, hand('stale-read.log')).counterexample!;
    expect(describeCounterexample(registerModel, c)).toEqual(['client 0: write(1) [2, 3]', 'client 0: write(2) [4, 5]', 'client 1: read -> 1 [6, 7]']);
    expect(c.minimal).toBe(true);
  });

  it('a compare-and-set that acted on a stale value is reported with the write it missed', () => {
    const c = checkOperations(registerModel, hand('stale-cas.log')).counterexample!;
    expect(describeCounterexample(registerModel, c)).toEqual(['client 0: write(1) [2, 3]', 'client 0: write(2) [4, 5]', 'client 1: cas(1, 3) -> ok [6, 7]']);
  });

  it('an unknown write is allowed either way: applied (a read sees it) or never applied (reads never see it)', () => {
    expect(checkOperations(registerModel, hand('unknown-applied.log')).verdict).toBe('linearizable');
    expect(checkOperations(registerModel, hand('unknown-not-applied.log')).verdict).toBe('linearizable');
    // ...but not both: once seen, it cannot be undone.
    expect(checkOperations(registerModel, hand('unknown-undone.log')).verdict).toBe('not linearizable');
  });

  it('the unknown write that must be taken as applied fails when it is read as failed (a control of the reading)', () => {
    const asFailed = hand('unknown-applied.log').map((o) => (o.output.status === 'unknown' ? { ...o, output: { status: 'fail' as const }, returnMs: o.callMs + 0.5 } : o));
    expect(checkOperations(registerModel, asFailed).verdict).toBe('not linearizable');
  });

  it('an unknown write may take effect long after later writes returned', () => {
    const op = (client: number, input: RegisterOperation['input'], output: RegisterOperation['output'], callMs: number, returnMs: number): RegisterOperation => ({ client, input, output, callMs, returnMs });
    const ops = [
      op(0, { f: 'write', value: 2 }, { status: 'unknown' }, 1, Infinity),
      op(1, { f: 'write', value: 1 }, { status: 'ok' }, 3, 4),
      op(2, { f: 'read' }, { status: 'ok', value: 1 }, 5, 6),
      op(2, { f: 'read' }, { status: 'ok', value: 2 }, 100, 101),
    ];
    expect(checkOperations(registerModel, ops).verdict).toBe('linearizable');
    // Had it returned (at 2), it could not: write(1) came after it, and the last read saw 2.
    expect(checkOperations(registerModel, ops.map((o, i) => (i === 0 ? { ...o, output: { status: 'ok' as const }, returnMs: 2 } : o))).verdict).toBe('not linearizable');
  });

  it('the shrinker drops operations anywhere, writes too, past the failing prefix, but keeps every write the violation needs', () => {
    const op = (client: number, input: RegisterOperation['input'], output: RegisterOperation['output'], callMs: number, returnMs: number): RegisterOperation => ({ client, input, output, callMs, returnMs });
    // A stale read at the very end (so the shortest failing prefix is the whole history): write(3)
    // was acknowledged before the last read began, which still returns 2. write(1) and the first
    // read play no part; write(2) and write(3) do.
    const ops = [
      op(0, { f: 'write', value: 1 }, { status: 'ok' }, 0, 10),
      op(1, { f: 'write', value: 2 }, { status: 'ok' }, 20, 30),
      op(2, { f: 'read' }, { status: 'ok', value: 2 }, 35, 40),
      op(3, { f: 'cas', from: 7, to: 8 }, { status: 'fail' }, 42, 45),
      op(0, { f: 'write', value: 3 }, { status: 'ok' }, 50, 60),
      op(2, { f: 'read' }, { status: 'ok', value: 2 }, 70, 80),
    ];
    const c = checkOperations(registerModel, ops).counterexample!;
    expect(c.prefixEndMs).toBe(80);
    expect(describeCounterexample(registerModel, c)).toEqual(['client 1: write(2) [20, 30]', 'client 0: write(3) [50, 60]', 'client 2: read -> 2 [70, 80]']);
    expect(c.minimal).toBe(true);
    // Dropping write(2) outright would leave "read -> 2" of a value nobody wrote: not linearizable
    // for a reason that is not the violation. The shrinker does not, as a control shows.
    expect(checkOperations(registerModel, [ops[4]!, ops[5]!]).verdict).toBe('not linearizable');
  });

  it('the shrinker keeps a write whose timing the violation needs: had it come later, a failed compare-and-set would be fine', () => {
    const op = (client: number, input: RegisterOperation['input'], output: RegisterOperation['output'], callMs: number, returnMs: number): RegisterOperation => ({ client, input, output, callMs, returnMs });
    // cas(1, 5) failed although write(1) was the last acknowledged write: it acted on a stale value.
    // write(9) stays: were it free to take effect after write(1), the failure would be explained.
    // The read of 1 goes (nothing depends on it). With an unknown write(4) as well, which may take
    // effect late, the history is linearizable (a control).
    const ops = [
      op(0, { f: 'write', value: 9 }, { status: 'ok' }, 0, 5),
      op(2, { f: 'write', value: 4 }, { status: 'unknown' }, 1, Infinity),
      op(0, { f: 'write', value: 1 }, { status: 'ok' }, 10, 20),
      op(2, { f: 'read' }, { status: 'ok', value: 1 }, 21, 22),
      op(1, { f: 'cas', from: 1, to: 5 }, { status: 'fail' }, 30, 40),
    ];
    expect(checkOperations(registerModel, ops).verdict).toBe('linearizable');
    const failing = ops.filter((o) => o.input.f !== 'write' || o.input.value !== 4);
    const c = checkOperations(registerModel, failing).counterexample!;
    expect(describeCounterexample(registerModel, c)).toEqual(['client 0: write(9) [0, 5]', 'client 0: write(1) [10, 20]', 'client 1: cas(1, 5) -> fail [30, 40]']);
    expect(c.minimal).toBe(true);
  });

  it('checks each key on its own and reports the key that fails (JSON lines, two keys)', () => {
    const history = parseHistory(readFileSync(join(HAND, 'two-keys.jsonl'), 'utf8'), 'two-keys.jsonl');
    const report = checkHistory(history);
    expect(report.verdict).toBe('not linearizable');
    expect(report.counterexample!.key).toBe('b');
    const lines = summaryLines(history, report);
    expect(lines[0]).toMatch(/^not linearizable: 6 operations \(register-jsonl, register model\)/);
    expect(lines.join('\n')).toContain('read[b] -> 7 [30, 40]');
    // Key "a" alone is linearizable.
    if (history.model !== 'register') throw new Error('expected a register history');
    const a = history.operations.filter((o) => o.input.key === 'a');
    expect(checkOperations(registerModel, a).verdict).toBe('linearizable');
  });

  it('draws the counterexample as an SVG with one lane per client and each operation labelled', () => {
    const history = parseHistory(readFileSync(join(HAND, 'unknown-undone.log'), 'utf8'), 'unknown-undone.log');
    const svg = pictureOf(history, checkHistory(history), 'unknown-undone.log');
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('not linearizable');
    for (const label of ['client 0', 'client 1', 'client 2', 'write(1)', 'write(2) -&gt; ?', 'read -&gt; 2', 'read -&gt; 1']) expect(svg, label).toContain(label);
    // The unknown write runs to the right edge, dashed.
    expect(svg).toContain('stroke-dasharray');
  });
});
