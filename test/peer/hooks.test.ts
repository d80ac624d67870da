// HookRunner with real child processes: small shell scripts in a temp directory. A hook that
// fails, one that hangs (killed after the timeout, with what it started), one that reads its
// JSON document and writes it to a file; bounded output, bounded queues, and stop().
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/log.js';
import { HOOKS_CONFIG_DEFAULT, type HookDocument, type HookResult, type HooksConfig, type Observation } from '../../src/peer/hooks.js';
import { HookRunner } from '../../src/peer/hook-runner.js';
import { SitterHooks } from '../../src/peer/sitter-hooks.js';
import type { HookEvent, ClusterState, PeerInfo } from '../../src/model/index.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { waitFor } from '../../tools/lib/wait.js';
import { pidAlive } from '../../tools/lib/pid-alive.js';

function peer(id: string): PeerInfo {
  return { id, pgUrl: `postgres://127.0.0.1:1/${id}`, apiUrl: `http://127.0.0.1:1/${id}`, host: '127.0.0.1' };
}
const A = peer('a');
const B = peer('b');
const C = peer('c');
const STATE: ClusterState = { generation: 2, primary: A, sync: B, async: [C], deposed: [], initWal: '0/3000060' };

function doc(event: HookEvent, details: Record<string, unknown> = {}): HookDocument {
  return { event, time: new Date().toISOString(), peer: A, role: 'primary', state: STATE, version: 7, activePeers: [A, B, C], details };
}

/** A logger whose JSON lines the test reads. */
function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.startsWith('{')) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

let dir: { path: string; cleanup: () => Promise<void> };
const runners: HookRunner[] = [];

async function script(name: string, body: string): Promise<string> {
  const path = join(dir.path, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

function runner(config: Partial<HooksConfig>, log = capturingLogger().log): HookRunner {
  const r = new HookRunner({ config: { ...HOOKS_CONFIG_DEFAULT, ...config }, log });
  runners.push(r);
  return r;
}

function nextResult(r: HookRunner): Promise<HookResult> {
  return new Promise((resolve) => r.once('result', resolve));
}

beforeEach(async () => {
  dir = await makeTmpDir('hooks');
});

afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop(100);
  await dir.cleanup();
});

describe('HookRunner', () => {
  it('gives a hook its JSON document on stdin: the hook writes it to a file that the test reads back', async () => {
    const out = join(dir.path, 'got.json');
    const hook = await script('record.sh', `cat > '${out}'\necho "recorded $MANATEE_HOOK_EVENT"`);
    const { log, lines } = capturingLogger();
    const r = runner({ events: { primary_changed: [hook] } }, log);
    const done = nextResult(r);
    const sent = doc('primary_changed', { previous: B, current: A, generation: 2 });
    expect(r.submit(sent)).toBe(true);
    const result = await done;
    expect(result).toMatchObject({ ok: true, exitCode: 0, timedOut: false, event: 'primary_changed', command: hook });
    expect(result.stdout).toBe('recorded primary_changed\n');
    const got = JSON.parse(await readFile(out, 'utf8')) as HookDocument;
    expect(got).toEqual(JSON.parse(JSON.stringify(sent)));
    expect(got.state?.primary.id).toBe('a');
    expect(got.details['current']).toEqual(A);
    // Its output is logged with the run.
    expect(lines.some((l) => l['hooks'] === 'ok' && l['stdout'] === 'recorded primary_changed\n')).toBe(true);
  });

  it('runs a hook with a scrubbed environment: PATH, HOME and the locale, no secrets the sitter was started with', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { MANATEE_ADMIN_TOKEN: 'leaked-token', PGPASSWORD: 'leaked-pw', AWS_SECRET_ACCESS_KEY: 'leaked-key', LC_TIME: 'C', HOME: '/home/op' });
    try {
      const hook = await script('env.sh', 'env');
      const r = runner({ events: { peer_up: [hook] } });
      const done = nextResult(r);
      r.submit(doc('peer_up', { peer: B }));
      const env = Object.fromEntries((await done).stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      expect(env['MANATEE_HOOK_EVENT']).toBe('peer_up');
      expect(env['PATH']).toBe(process.env['PATH']);
      expect(env['HOME']).toBe('/home/op');
      expect(env['LC_TIME']).toBe('C');
      for (const leaked of ['MANATEE_ADMIN_TOKEN', 'PGPASSWORD', 'AWS_SECRET_ACCESS_KEY']) expect(env[leaked], leaked).toBeUndefined();
      // Only what the shell itself adds (PWD, SHLVL, _) besides the kept variables.
      expect(Object.keys(env).filter((k) => !['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'TZ', 'TMPDIR', 'MANATEE_HOOK_EVENT', 'PWD', 'SHLVL', '_', 'OLDPWD'].includes(k) && !k.startsWith('LC_'))).toEqual([]);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) Reflect.deleteProperty(process.env, k);
      Object.assign(process.env, saved);
    }
  });

  it('logs a failing hook (non-zero exit) with its stderr, counts it, and keeps running later hooks', async () => {
    const fail = await script('fail.sh', 'echo "cannot reach the pager" >&2\nexit 3');
    const { log, lines } = capturingLogger();
    const r = runner({ events: { peer_down: [fail] } }, log);
    const first = nextResult(r);
    r.submit(doc('peer_down', { peer: C }));
    const result = await first;
    expect(result).toMatchObject({ ok: false, exitCode: 3, timedOut: false, stderr: 'cannot reach the pager\n' });
    expect(r.counters).toMatchObject({ runs: 1, failures: 1, timeouts: 0 });
    const line = lines.find((l) => l['hooks'] === 'failed');
    expect(line?.['msg']).toMatch(/exited with status 3/);
    expect(line?.['stderr']).toBe('cannot reach the pager\n');
    // The runner goes on.
    const second = nextResult(r);
    r.submit(doc('peer_down', { peer: B }));
    expect((await second).exitCode).toBe(3);
    expect(r.counters.runs).toBe(2);
  });

  it('kills a hanging hook and what it started (its process group) after the timeout; the runner keeps going', async () => {
    const pidFile = join(dir.path, 'grandchild.pid');
    // The hook starts a grandchild that would outlive it, then hangs.
    const hang = await script('hang.sh', `sleep 300 &\necho $! > '${pidFile}'\nsleep 300`);
    const ok = await script('ok.sh', 'cat > /dev/null');
    const { log, lines } = capturingLogger();
    const r = runner({ timeoutMs: 500, killGraceMs: 200, events: { heartbeat: [hang], sitter_up: [ok] } }, log);
    const hung = new Promise<HookResult>((resolve) => r.on('result', (x) => { if (x.event === 'heartbeat') resolve(x); }));
    const t0 = Date.now();
    r.submit(doc('heartbeat'));
    // Another event is not blocked by the hanging one.
    const okDone = new Promise<HookResult>((resolve) => r.on('result', (x) => { if (x.event === 'sitter_up') resolve(x); }));
    r.submit(doc('sitter_up'));
    expect((await okDone).ok).toBe(true);
    const result = await hung;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(result).toMatchObject({ ok: false, timedOut: true, exitCode: null, signal: 'SIGTERM' });
    expect(r.counters.timeouts).toBe(1);
    expect(lines.some((l) => l['hooks'] === 'failed' && /timed out after 500 ms/.test(String(l['msg'])))).toBe(true);
    const grandchild = Number(await readFile(pidFile, 'utf8'));
    await waitFor('the grandchild to be killed with the group', () => !pidAlive(grandchild), { timeoutMs: 10_000 });
    // The same event runs again afterwards.
    const again = new Promise<HookResult>((resolve) => r.on('result', (x) => { if (x.event === 'heartbeat' && x !== result) resolve(x); }));
    r.submit(doc('heartbeat'));
    expect((await again).timedOut).toBe(true);
  });

  it('escalates to SIGKILL when a hook ignores SIGTERM', async () => {
    const stubborn = await script('stubborn.sh', "trap '' TERM\nwhile true; do sleep 0.1; done");
    const r = runner({ timeoutMs: 300, killGraceMs: 300, events: { heartbeat: [stubborn] } });
    const done = nextResult(r);
    r.submit(doc('heartbeat'));
    const result = await done;
    expect(result).toMatchObject({ timedOut: true, signal: 'SIGKILL', ok: false });
    expect(pidAlive(result.pid!)).toBe(false);
  });

  it('reports a hook that cannot be started, without throwing', async () => {
    const missing = join(dir.path, 'no-such-hook');
    const notExecutable = join(dir.path, 'plain.txt');
    await writeFile(notExecutable, 'echo hi\n');
    const r = runner({ events: { deposed: [missing, notExecutable] } });
    const results: HookResult[] = [];
    r.on('result', (x) => results.push(x));
    r.submit(doc('deposed'));
    await waitFor('two results', () => results.length === 2, { timeoutMs: 10_000 });
    for (const x of results) expect(x).toMatchObject({ ok: false, exitCode: null });
    expect(results.map((x) => x.spawnError)).toEqual([expect.stringMatching(/ENOENT/), expect.stringMatching(/EACCES/)]);
  });

  it('keeps at most outputBytesMax of each stream and counts the rest', async () => {
    const loud = await script('loud.sh', 'head -c 100000 /dev/zero | tr "\\0" x\nhead -c 10 /dev/zero | tr "\\0" y >&2');
    const r = runner({ outputBytesMax: 64, events: { heartbeat: [loud] } });
    const done = nextResult(r);
    r.submit(doc('heartbeat'));
    const result = await done;
    expect(result.stdout).toBe('x'.repeat(64));
    expect(result.stderr).toBe('y'.repeat(10));
    expect(result.outputBytesDropped).toBe(100_000 - 64);
  });

  it('runs one event at a time, in order, and drops runs past queueMax with a log line', async () => {
    const order = join(dir.path, 'order.txt');
    const slow = await script('slow.sh', `read line\nsleep 0.3\necho "$line" | sed 's/.*"n":\\([0-9]*\\).*/\\1/' >> '${order}'`);
    const { log, lines } = capturingLogger();
    const r = runner({ queueMax: 2, events: { peer_up: [slow] } }, log);
    const accepted = [1, 2, 3, 4].map((n) => r.submit(doc('peer_up', { n })));
    // 1 runs, 2 and 3 wait, 4 is dropped.
    expect(accepted).toEqual([true, true, true, false]);
    expect(r.counters.dropped).toBe(1);
    expect(lines.some((l) => l['hooks'] === 'dropped' && l['event'] === 'peer_up')).toBe(true);
    await r.whenIdle();
    expect((await readFile(order, 'utf8')).trim().split('\n')).toEqual(['1', '2', '3']);
  });

  it('ignores events with no configured executable, and everything after stop()', async () => {
    const out = join(dir.path, 'never');
    const hook = await script('never.sh', `touch '${out}'`);
    const r = runner({ events: { rebuild_done: [hook] } });
    expect(r.submit(doc('heartbeat'))).toBe(false);
    await r.stop();
    expect(r.submit(doc('rebuild_done'))).toBe(false);
    expect(existsSync(out)).toBe(false);
  });

  it('stop() kills running hooks after its grace period', async () => {
    const hang = await script('hang2.sh', 'sleep 300');
    const r = runner({ timeoutMs: 60_000, events: { heartbeat: [hang] } });
    const done = nextResult(r);
    r.submit(doc('heartbeat'));
    await waitFor('the hook to start', () => (r.idle ? null : true));
    const t0 = Date.now();
    await r.stop(200);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect((await done).signal).toBe('SIGKILL');
  });
});

describe('SitterHooks', () => {
  it('fires sitter_up at start, then the events of each change, and heartbeats on its interval', async () => {
    const out = join(dir.path, 'events.log');
    const hook = await script('log.sh', `read line\necho "$MANATEE_HOOK_EVENT $line" >> '${out}'`);
    const all = Object.fromEntries((['sitter_up', 'primary_changed', 'sync_changed', 'deposed', 'peer_up', 'peer_down', 'heartbeat', 'rebuild_done'] as const).map((e) => [e, [hook]]));
    const r = runner({ events: all });
    let now: Observation & { role: string } = { state: STATE, version: 7, activePeers: [A, B, C], role: 'primary' };
    const hooks = new SitterHooks({ runner: r, self: A, observe: () => now, heartbeatIntervalMs: 300, log: capturingLogger().log });
    hooks.start();
    try {
      // B takes over: A is deposed, C becomes the sync, A's session is gone.
      now = { state: { ...STATE, generation: 3, primary: B, sync: C, async: [], deposed: [A] }, version: 8, activePeers: [B, C], role: 'deposed' };
      hooks.changed();
      hooks.rebuildDone({ source: 'b' });
      await waitFor('a heartbeat', async () => (await readFile(out, 'utf8').catch(() => '')).includes('heartbeat '), { timeoutMs: 10_000 });
      await r.whenIdle();
      const seen = (await readFile(out, 'utf8')).trim().split('\n').map((l) => l.split(' ')[0]);
      expect(new Set(seen)).toEqual(new Set(['sitter_up', 'primary_changed', 'sync_changed', 'deposed', 'peer_down', 'rebuild_done', 'heartbeat']));
      const lines = (await readFile(out, 'utf8')).trim().split('\n');
      const deposed = JSON.parse(lines.find((l) => l.startsWith('deposed '))!.slice('deposed '.length)) as HookDocument;
      expect(deposed).toMatchObject({ event: 'deposed', role: 'deposed', version: 8, peer: A, details: { generation: 3 } });
    } finally {
      await hooks.stop(100);
    }
  });
});
