// The checker against histories with known verdicts: Jepsen's etcd register runs and Porcupine's
// key-value histories (test/lincheck/histories, from Porcupine; see its README and LICENSE), and
// negative controls: the known parsing mistakes and mutated histories must change verdicts.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkOperations, prefixAt } from './check.js';
import { kvModel, registerModel, registerModelStartingAt } from './models.js';
import { parseJepsenEtcd, parseKvEdn, type InfoReading, type RegisterOperation } from './parse.js';

const HISTORIES = join(dirname(fileURLToPath(import.meta.url)), 'histories');
const etcdExpected = JSON.parse(readFileSync(join(HISTORIES, 'expected.json'), 'utf8')) as Record<string, boolean>;
const kvExpected = JSON.parse(readFileSync(join(HISTORIES, 'kv', 'expected.json'), 'utf8')) as Record<string, boolean>;

function etcd(file: string, info: InfoReading = 'unknown'): RegisterOperation[] {
  return parseJepsenEtcd(readFileSync(join(HISTORIES, file), 'utf8'), file, info);
}

describe('linearizability checker on Jepsen etcd histories', () => {
  it('gives the known verdict for every one of the 102 histories (23 linearizable, 79 not)', () => {
    const started = performance.now();
    const wrong: string[] = [];
    let slowest = { file: '', ms: 0 };
    let linearizable = 0;
    for (const [file, expected] of Object.entries(etcdExpected)) {
      const t0 = performance.now();
      const report = checkOperations(registerModel, etcd(file), { shrink: false, timeBudgetMs: 60_000 });
      const ms = performance.now() - t0;
      if (ms > slowest.ms) slowest = { file, ms };
      if (report.verdict === 'linearizable') linearizable++;
      if (report.verdict !== (expected ? 'linearizable' : 'not linearizable')) wrong.push(`${file}: ${report.verdict}, expected ${expected}`);
    }
    const totalMs = performance.now() - started;
    console.log(`lincheck: 102 etcd histories checked in ${totalMs.toFixed(0)} ms (slowest ${slowest.file}: ${slowest.ms.toFixed(0)} ms)`);
    expect(Object.keys(etcdExpected)).toHaveLength(102);
    expect(wrong).toEqual([]);
    expect(linearizable).toBe(23);
  });

  it('shrinks a violation to a prefix from which no read can be dropped, and no shorter prefix fails', () => {
    for (const file of ['etcd_000.log', 'etcd_001.log', 'etcd_040.log']) {
      const report = checkOperations(registerModel, etcd(file));
      const c = report.counterexample!;
      expect(report.verdict, file).toBe('not linearizable');
      expect(c.minimal, file).toBe(true);
      expect(c.operations.length, file).toBeLessThan(c.originalOperations);
      expect(checkOperations(registerModel, c.operations, { shrink: false }).verdict, file).toBe('not linearizable');
      c.operations.forEach((op, i) => {
        if (op.input.f !== 'read' && !(op.input.f === 'cas' && op.output.status === 'fail')) return;
        const without = c.operations.filter((_, j) => j !== i);
        expect(checkOperations(registerModel, without, { shrink: false }).verdict, `${file} without operation ${i}`).toBe('linearizable');
      });
      // The prefix fails, and the prefix at the event just before its end does not.
      const end = c.prefixEndMs!;
      const ops = etcd(file);
      const before = Math.max(...ops.flatMap((o) => [o.callMs, o.returnMs]).filter((t) => t < end));
      expect(checkOperations(registerModel, prefixAt(registerModel, ops, end), { shrink: false }).verdict, file).toBe('not linearizable');
      expect(checkOperations(registerModel, prefixAt(registerModel, ops, before), { shrink: false }).verdict, file).toBe('linearizable');
    }
  });

  it('answers unknown, with the reason, when the time budget runs out', () => {
    const report = checkOperations(registerModel, etcd('etcd_002.log'), { timeBudgetMs: 1 });
    expect(report.verdict).toBe('unknown');
    expect(report.reason).toMatch(/time budget ran out after \d+ search steps/);
    expect(report.counterexample).toBeNull();
  });

  it('answers unknown when the cache of explored configurations passes its bound', () => {
    const report = checkOperations(registerModel, etcd('etcd_002.log'), { maxCacheEntries: 1000 });
    expect(report.verdict).toBe('unknown');
    expect(report.reason).toMatch(/cache of explored configurations passed 1000 entries/);
  });
});

describe('negative controls: known mistakes must change verdicts', () => {
  const linearizableFiles = Object.entries(etcdExpected).filter(([, v]) => v).map(([f]) => f);
  function countFailing(check: (file: string) => string): number {
    return linearizableFiles.filter((f) => check(f) === 'not linearizable').length;
  }

  it('dropping the timed-out (:info) operations makes 20 of the 23 linearizable histories fail', () => {
    expect(countFailing((f) => checkOperations(registerModel, etcd(f, 'mistake: drop'), { shrink: false }).verdict)).toBe(20);
  });

  it('returning timed-out operations at their :info line makes 21 of them fail', () => {
    expect(countFailing((f) => checkOperations(registerModel, etcd(f, 'mistake: return at the info line'), { shrink: false }).verdict)).toBe(21);
  });

  it('starting the register at 0 instead of nil makes 20 of them fail', () => {
    expect(countFailing((f) => checkOperations(registerModelStartingAt(0), etcd(f), { shrink: false }).verdict)).toBe(20);
  });

  it('a linearizable history with one read changed to a value nobody wrote is not linearizable', () => {
    for (const file of linearizableFiles) {
      const ops = etcd(file);
      const i = ops.findIndex((o) => o.input.f === 'read' && o.output.status === 'ok' && o.output.value !== null);
      const mutated = ops.map((o, j) => (j === i ? { ...o, output: { status: 'ok' as const, value: 99 } } : o));
      expect(checkOperations(registerModel, mutated, { shrink: false }).verdict, file).toBe('not linearizable');
    }
  });

  it('a linearizable history with a stale read inserted (nil, just after the first acknowledged write) is not linearizable', () => {
    for (const file of linearizableFiles) {
      const ops = etcd(file);
      const firstWrite = Math.min(...ops.filter((o) => o.input.f === 'write' && o.output.status === 'ok').map((o) => o.returnMs));
      const stale: RegisterOperation = { client: 999, input: { f: 'read' }, output: { status: 'ok', value: null }, callMs: firstWrite + 0.1, returnMs: firstWrite + 0.2 };
      const report = checkOperations(registerModel, [...ops, stale]);
      expect(report.verdict, file).toBe('not linearizable');
      expect(report.counterexample!.operations, file).toContainEqual(stale);
    }
  });
});

describe('linearizability checker on key-value histories (per key)', () => {
  it('gives the known verdict for each of the 6 histories', () => {
    const started = performance.now();
    for (const [file, expected] of Object.entries(kvExpected)) {
      const ops = parseKvEdn(readFileSync(join(HISTORIES, 'kv', file), 'utf8'), file);
      const report = checkOperations(kvModel, ops, { timeBudgetMs: 60_000, shrinkBudgetMs: 1000 });
      expect(report.verdict, file).toBe(expected ? 'linearizable' : 'not linearizable');
      if (!expected) expect(report.counterexample!.operations.length, file).toBeGreaterThan(0);
    }
    console.log(`lincheck: 6 key-value histories checked in ${(performance.now() - started).toFixed(0)} ms`);
  });
});
