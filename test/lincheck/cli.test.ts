// `npm run lincheck -- <history-file>` as a real process: verdicts as exit codes, the picture of a
// violation, and a clear error (with its code) for a file that cannot be read or is not a history.
import { execa } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTmpDir } from '../../tools/lib/tmp.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const HISTORIES = join(ROOT, 'test/lincheck/histories');

async function lincheck(...args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa('node', ['--import', 'tsx', 'test/lincheck/cli.ts', ...args], { cwd: ROOT, reject: false, timeout: 120_000 });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('npm run lincheck', () => {
  let tmp: { path: string; cleanup: () => Promise<void> };
  beforeAll(async () => { tmp = await makeTmpDir('lc-cli'); });
  afterAll(async () => { await tmp.cleanup(); });

  it('exits 0 for a linearizable history and 1 for a violation, drawing it where --svg says', async () => {
    const ok = await lincheck(join(HISTORIES, 'etcd_002.log'));
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^linearizable: 77 operations \(jepsen-etcd, register model\)/);
    const svg = join(tmp.path, 'stale.svg');
    const bad = await lincheck(join(HISTORIES, 'hand/stale-read.log'), '--svg', svg);
    expect(bad.exitCode, bad.stderr).toBe(1);
    expect(bad.stdout).toContain('not linearizable: 3 operations');
    expect(bad.stdout).toContain('client 1: read -> 1 [6, 7]');
    expect(readFileSync(svg, 'utf8')).toMatch(/^<svg /);
  });

  it('exits 3 with the reason when the time budget runs out', async () => {
    const r = await lincheck(join(HISTORIES, 'etcd_002.log'), '--budget-ms', '1');
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toMatch(/^unknown: /);
    expect(r.stdout).toMatch(/why unknown: key "": the time budget ran out/);
  });

  it('names a file that cannot be read (MANATEE_ERR_LINCHECK_FILE, exit 2)', async () => {
    const missing = join(tmp.path, 'nope.log');
    const r = await lincheck(missing);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`lincheck: MANATEE_ERR_LINCHECK_FILE: cannot read history file ${missing}: ENOENT`);
    expect(existsSync(missing)).toBe(false);
  });

  it('names the line and the problem of a file that is not a history (MANATEE_ERR_LINCHECK_FORMAT, exit 2)', async () => {
    const cases: [string, string, RegExp][] = [
      ['unknown.txt', 'hello\n', /unknown\.txt:1: unknown history format/],
      ['empty.log', '# only a comment\n', /empty\.log:1: empty history \(no operations\)/],
      ['badline.log', 'INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:frobnicate\t1\n', /badline\.log:2: not a Jepsen log line/],
      ['badvalue.log', 'INFO  jepsen.util - 0\t:invoke\t:cas\t7\n', /badvalue\.log:1: :invoke :cas needs \[from to\], got 7/],
      ['orphan.log', 'INFO  jepsen.util - 3\t:ok\t:read\t1\n', /orphan\.log:1: process 3 completes read but has no operation in flight/],
      ['twice.log', 'INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n', /twice\.log:2: process 0 invokes read while its read from line 1 has not completed/],
      ['field.jsonl', '{"client":0,"key":"a","f":"write","status":"ok","callMs":0,"returnMs":1}\n', /field\.jsonl:1: field "value" is missing; expected the integer written/],
      ['order.jsonl', '{"client":0,"key":"a","f":"read","value":null,"status":"ok","callMs":5,"returnMs":1}\n', /order\.jsonl:1: returnMs 1 is before callMs 5/],
      ['json.jsonl', '{"client":0,\n', /json\.jsonl:1: not JSON/],
      ['kv.txt', '{:process 0, :type :invoke, :f :get, :key 1, :value nil}\n', /kv\.txt:1: not a key-value history line/],
    ];
    for (const [name, content, message] of cases) {
      const file = join(tmp.path, name);
      writeFileSync(file, content);
      const r = await lincheck(file);
      expect(r.exitCode, name).toBe(2);
      expect(r.stderr, name).toMatch(/^lincheck: MANATEE_ERR_LINCHECK_FORMAT: /);
      expect(r.stderr, name).toMatch(message);
    }
  });

  it('rejects a bad option value and a missing file argument (exit 2)', async () => {
    const r = await lincheck(join(HISTORIES, 'etcd_002.log'), '--budget-ms', 'soon');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('expected a positive integer');
    const none = await lincheck();
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain("missing required argument 'history-file'");
  });
});
