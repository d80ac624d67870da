// `zfs send` and `zfs recv` as streams. Both run through execa with argument arrays; the
// stream's bytes never pass through a shell or a buffer of unbounded size.
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import type { ZfsCommand } from './command.js';
import { ZFS_STDERR_BYTES_MAX } from './command.js';
import { ZfsError, ZfsNoSpaceError } from './errors.js';
import { asError } from '../errors.js';

export const ZFS_ERR_STREAM_INTERRUPTED = 'MANATEE_ERR_ZFS_STREAM_INTERRUPTED';

/** The stream into `zfs recv` ended early or failed (network cut, sender killed). */
export class ZfsStreamInterruptedError extends ZfsError {}

export interface ZfsSendStream {
  /** The raw send stream. */
  readonly stdout: Readable;
  /** Resolves when zfs send exits 0; rejects with a typed ZfsError otherwise. */
  readonly done: Promise<void>;
  /** Stops the send (SIGTERM); `done` then rejects. */
  abort(): void;
  readonly pid: number | undefined;
}

export interface ZfsReceiveOptions {
  /** -F: roll the target back to its newest snapshot first (needed for increments into a used dataset). */
  readonly force?: boolean;
  /** How long to wait for zfs recv to exit after its input ended. */
  readonly exitTimeoutMs?: number;
}

export function sendStream(cmd: ZfsCommand, snapshot: string, fromSnapshot?: string): ZfsSendStream {
  const args = fromSnapshot === undefined ? ['send', snapshot] : ['send', '-i', fromSnapshot, snapshot];
  const sub = execa(cmd.zfsPath, args, {
    reject: false,
    stdin: 'ignore',
    buffer: { stdout: false, stderr: true },
    maxBuffer: { stderr: ZFS_STDERR_BYTES_MAX },
  });
  let aborted = false;
  const done = sub.then((r) => {
    if (!r.failed) return;
    if (aborted) throw new ZfsStreamInterruptedError(ZFS_ERR_STREAM_INTERRUPTED, `zfs ${args.join(' ')} was aborted`, { args, stderr: r.stderr });
    throw cmd.failure(args, r.stderr, r.exitCode, r.timedOut, (r as { code?: string }).code);
  });
  // The caller may look at `done` only after the stream ended; that is not an unhandled rejection.
  done.catch(() => undefined);
  cmd.log.info({ args, pid: sub.pid }, 'zfs: send started');
  return {
    stdout: sub.stdout,
    done,
    pid: sub.pid,
    abort: () => {
      aborted = true;
      sub.kill('SIGTERM');
      // With zfs-fuse the daemon, not the zfs process, writes the stream into the pipe: killing
      // zfs does not stop it. Closing our end of the pipe does (EPIPE); until then the daemon
      // blocks on the full pipe and the pool stays busy.
      sub.stdout.destroy();
    },
  };
}

function isPipeError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

export async function receiveStream(cmd: ZfsCommand, dataset: string, input: Readable, opts: ZfsReceiveOptions): Promise<void> {
  const args = opts.force === true ? ['recv', '-F', dataset] : ['recv', dataset];
  const sub = execa(cmd.zfsPath, args, {
    reject: false,
    stdin: 'pipe',
    stdout: 'ignore',
    maxBuffer: { stderr: ZFS_STDERR_BYTES_MAX },
  });
  cmd.log.info({ args, pid: sub.pid }, 'zfs: receive started');
  // If the input fails, pipeline() destroys recv's stdin: recv then reads a truncated stream
  // and exits with an error by itself, which rolls back the partial receive.
  // A holder object: TypeScript does not see assignments made inside the callback below.
  const failed: { inputError: Error | null } = { inputError: null };
  const piped = pipeline(input, sub.stdin).catch((err: unknown) => {
    failed.inputError = asError(err);
  });
  const exitTimeoutMs = opts.exitTimeoutMs ?? 120_000;
  const timer = setTimeout(() => {
    // Only once the input is over: a receive may legitimately run for hours while data flows.
    if (input.readableEnded || input.destroyed) sub.kill('SIGKILL');
  }, exitTimeoutMs);
  timer.unref();
  let result;
  try {
    await piped;
    clearTimeout(timer);
    const t2 = setTimeout(() => sub.kill('SIGKILL'), exitTimeoutMs);
    t2.unref();
    result = await sub;
    clearTimeout(t2);
  } finally {
    clearTimeout(timer);
  }
  const { inputError } = failed;
  if (!result.failed) {
    if (inputError !== null) cmd.log.warn({ dataset, err: inputError.message }, 'zfs: input failed after zfs recv had the whole stream');
    return;
  }
  const err = cmd.failure(args, result.stderr, result.exitCode, result.timedOut, (result as { code?: string }).code);
  // A full pool is the more useful diagnosis even if the sender also broke off.
  if (inputError !== null && !isPipeError(inputError) && !(err instanceof ZfsNoSpaceError)) {
    const reason = inputError.message;
    throw new ZfsStreamInterruptedError(
      ZFS_ERR_STREAM_INTERRUPTED,
      `stream into zfs recv ${dataset} was interrupted: ${reason} (zfs recv: ${result.stderr.trim() || 'no output'})`,
      { args, stderr: result.stderr, cause: inputError },
    );
  }
  throw err;
}
