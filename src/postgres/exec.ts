// Running a PostgreSQL program (initdb, pg_basebackup, pg_rewind, postgres --single) to
// completion as the PostgreSQL OS user, with its output split into lines for progress parsing
// and the tail kept for error messages.
import { execa } from 'execa';
import { spawnIdentity, type OsUser } from './os-user.js';
import { LineRing, lineSplitter } from './progress.js';

export interface ToolRun {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly aborted: boolean;
  /** The last lines of stdout+stderr. */
  readonly outputTail: string;
}

export interface ToolOptions {
  readonly user: OsUser;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly input?: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  readonly onLine?: (line: string) => void;
}

/** A clean environment: no PG* variables of the sitter leak into the programs. */
export function toolEnv(user: OsUser, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    LANG: 'C',
    LC_ALL: 'C',
    USER: user.name,
    ...extra,
  };
}

export async function runTool(file: string, args: readonly string[], opts: ToolOptions): Promise<ToolRun> {
  const ring = new LineRing(60);
  const split = lineSplitter((line) => {
    ring.push(line);
    opts.onLine?.(line);
  });
  if (opts.signal?.aborted === true) {
    return { exitCode: null, signal: null, timedOut: false, aborted: true, outputTail: '' };
  }
  const child = execa(file, args, {
    ...spawnIdentity(opts.user),
    env: toolEnv(opts.user, opts.env),
    extendEnv: false,
    cwd: opts.cwd ?? '/',
    // Its own process group: pg_basebackup forks a WAL-streaming child that holds our pipes,
    // so a cancel or a timeout signals the whole group, not only the parent.
    detached: true,
    reject: false,
    buffer: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  child.stdout.on('data', split);
  child.stderr.on('data', split);
  let timedOut = false;
  let aborted = false;
  const killGroup = (): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => { timedOut = true; killGroup(); }, opts.timeoutMs);
  const onAbort = (): void => { aborted = true; killGroup(); };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const r = await child;
    return {
      exitCode: r.exitCode ?? null,
      signal: r.signal ?? null,
      timedOut,
      aborted,
      outputTail: ring.text(),
    };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

export function describeRun(r: ToolRun): string {
  if (r.timedOut) return 'timed out';
  if (r.aborted) return 'was cancelled';
  if (r.signal !== null) return `was killed by ${r.signal}`;
  return `exited with code ${r.exitCode}`;
}
