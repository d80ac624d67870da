// Runs the zfs command through execa with an argument array (never a shell), a timeout, and
// failures turned into typed errors. The binary is configurable for hosts where it is not on PATH.
import { execa } from 'execa';
import type { Logger } from '../log.js';
import { classifyZfsFailure, ZfsCommandError, ZFS_ERR_COMMAND, type ZfsError } from './errors.js';

export interface ZfsCommandOptions {
  readonly log: Logger;
  /** Path of the zfs binary; "zfs" (found on PATH) by default. */
  readonly zfsPath?: string;
  /** Limit for one non-streaming command; zfs-fuse can be slow on a busy 2-core machine. */
  readonly commandTimeoutMs?: number;
}

/** Bound on captured stderr: a failing zfs prints a usage page at most. */
export const ZFS_STDERR_BYTES_MAX = 256 * 1024;
export const ZFS_STDOUT_BYTES_MAX = 64 * 1024 * 1024;

export class ZfsCommand {
  readonly zfsPath: string;
  readonly log: Logger;
  private readonly commandTimeoutMs: number;

  constructor(opts: ZfsCommandOptions) {
    this.zfsPath = opts.zfsPath ?? 'zfs';
    this.log = opts.log;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 120_000;
  }

  /** Runs `zfs <args>` to completion and returns stdout; throws a ZfsError on failure. */
  async run(args: readonly string[]): Promise<string> {
    const started = Date.now();
    const r = await execa(this.zfsPath, args, {
      reject: false,
      timeout: this.commandTimeoutMs,
      stdin: 'ignore',
      maxBuffer: { stdout: ZFS_STDOUT_BYTES_MAX, stderr: ZFS_STDERR_BYTES_MAX },
      stripFinalNewline: true,
    });
    const durationMs = Date.now() - started;
    if (r.failed) {
      const err = this.failure(args, r.stderr, r.exitCode, r.timedOut, r.code);
      this.log.debug({ args, durationMs, code: err.code, stderr: r.stderr }, 'zfs command failed');
      throw err;
    }
    this.log.debug({ args, durationMs }, 'zfs command done');
    return r.stdout;
  }

  /** The typed error for a finished invocation (shared with the streaming commands). */
  failure(args: readonly string[], stderr: string, exitCode: number | undefined, timedOut: boolean, spawnCode?: string): ZfsError {
    if (timedOut) {
      return new ZfsCommandError(ZFS_ERR_COMMAND, `zfs ${args.join(' ')} timed out after ${this.commandTimeoutMs} ms`, { args, stderr });
    }
    if (spawnCode === 'ENOENT') {
      return new ZfsCommandError(ZFS_ERR_COMMAND, `cannot run ${this.zfsPath}: not found (is ZFS installed? set zfsPath)`, { args });
    }
    return classifyZfsFailure(args, stderr, exitCode);
  }
}
