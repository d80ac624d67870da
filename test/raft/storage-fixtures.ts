// What the Raft storage tests share: temporary directories and open stores closed after each test
// (in reverse order), and runs of log entries.
import { afterEach } from 'vitest';
import type { Entry } from '../../src/raft/core/types.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs after the current test (newest first), whether it passed or not. */
export function afterThisTest(cleanup: () => Promise<void>): void {
  cleanups.push(cleanup);
}

/** A fresh temporary directory, removed after the current test. */
export async function tmp(prefix: string): Promise<string> {
  const d = await makeTmpDir(prefix);
  afterThisTest(d.cleanup);
  return d.path;
}

/** Entries from..to (inclusive) of one term, each with a distinct command. */
export function ents(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ term, index: i, type: 'normal', data: `cmd-${i}-t${term}` });
  return out;
}
