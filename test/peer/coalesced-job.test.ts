// The one-at-a-time job under the shard settings keeper, the role passwords and pg_hba.conf's
// peer hosts: requests during a run coalesce into one more run, a failure is reported and does
// not stop the job, the timer asks only when due, and stop() ends the timer.
import { describe, expect, it } from 'vitest';
import { CoalescedJob } from '../../src/peer/coalesced-job.js';
import { waitFor } from '../../tools/lib/wait.js';

function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const wait = new Promise<void>((r) => { open = r; });
  return { wait, open };
}

describe('CoalescedJob', () => {
  it('runs once at a time; any number of requests during a run make exactly one more run', async () => {
    const g = gate();
    let runs = 0;
    let inFlight = 0;
    let most = 0;
    const job = new CoalescedJob({
      run: async () => {
        runs++;
        inFlight++;
        most = Math.max(most, inFlight);
        if (runs === 1) await g.wait;
        inFlight--;
      },
      failed: () => { throw new Error('no failure expected'); },
    });
    job.request();
    job.request();
    job.request();
    job.request();
    expect(runs).toBe(1);
    g.open();
    await job.settled();
    expect({ runs, most }).toEqual({ runs: 2, most: 1 });
  });

  it('a failed run is handed to failed() and the next request runs again', async () => {
    const failures: string[] = [];
    let fail = true;
    let ok = 0;
    const job = new CoalescedJob({
      run: () => (fail ? Promise.reject(new Error('PostgreSQL is starting')) : Promise.resolve().then(() => { ok++; })),
      failed: (err) => { failures.push((err as Error).message); },
    });
    job.request();
    await job.settled();
    expect(failures).toEqual(['PostgreSQL is starting']);
    fail = false;
    job.request();
    await job.settled();
    expect(ok).toBe(1);
  });

  it('a failure handler that throws does not stop the job: a process warning says so', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => { warnings.push(w.message); };
    process.on('warning', onWarning);
    try {
      let runs = 0;
      const job = new CoalescedJob({
        run: () => { runs++; return Promise.reject(new Error('boom')); },
        failed: () => { throw new Error('the logger broke'); },
      });
      job.request();
      await job.settled();
      job.request();
      await job.settled();
      expect(runs).toBe(2);
      await waitFor('the warning', () => warnings.length >= 2, { timeoutMs: 5000 });
      expect(warnings[0]).toBe('coalesced job: the failure handler threw: the logger broke');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('the timer asks for a run only when due, and stop() ends it', async () => {
    let due = false;
    let runs = 0;
    const job = new CoalescedJob({ run: () => Promise.resolve().then(() => { runs++; }), failed: () => undefined, intervalMs: 5, due: () => due });
    job.start();
    await job.settled();
    expect(runs).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toBe(1);
    due = true;
    await waitFor('timer runs', () => runs >= 3, { timeoutMs: 5000 });
    job.stop();
    await job.settled();
    const after = runs;
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toBe(after);
  });
});
