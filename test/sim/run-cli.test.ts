// npm run sim's options: --help prints them, and an unknown option or one without its value exits 2
// naming it (before, `--help` or a typo was ignored and 1000 seeds ran as if it were not there).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const RUN = join(import.meta.dirname, 'run.ts');

function sim(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', RUN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('npm run sim', () => {
  it('--help prints the options, the fix names among them, and runs nothing', () => {
    const r = sim('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: npm run sim -- \[options\]/);
    expect(r.stdout).toContain('holdFenceUntilSettled');
    expect(r.stdout).not.toMatch(/seeds\/s/);
  });

  it('exits 2 on an unknown option, and on an option without its value, naming it', () => {
    const typo = sim('--sed', '3');
    expect(typo.status).toBe(2);
    expect(typo.stderr).toMatch(/^unknown option "--sed"\nusage:/);
    const bare = sim('--seeds');
    expect(bare.status).toBe(2);
    expect(bare.stderr).toMatch(/^--seeds: expects a value\n/);
    const flagged = sim('--without', '--load');
    expect(flagged.status).toBe(2);
    expect(flagged.stderr).toMatch(/^--without: expects a value\n/);
  });
});
