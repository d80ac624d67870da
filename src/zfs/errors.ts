// The zfs command's failures as typed errors. `zfs` reports everything on stderr as free
// text ("cannot open 'p/a': dataset does not exist"), so the classification is by pattern;
// anything unrecognised keeps the full stderr in a ZfsCommandError so nothing is lost.
import { ManateeError } from '../errors.js';

export const ZFS_ERR_BAD_NAME = 'MANATEE_ERR_ZFS_BAD_NAME';
export const ZFS_ERR_NOT_FOUND = 'MANATEE_ERR_ZFS_NOT_FOUND';
export const ZFS_ERR_NO_SPACE = 'MANATEE_ERR_ZFS_NO_SPACE';
export const ZFS_ERR_BUSY = 'MANATEE_ERR_ZFS_BUSY';
export const ZFS_ERR_PERMISSION = 'MANATEE_ERR_ZFS_PERMISSION';
export const ZFS_ERR_COMMAND = 'MANATEE_ERR_ZFS_COMMAND';
export const ZFS_ERR_EXISTS = 'MANATEE_ERR_ZFS_EXISTS';

/** Base of every error from src/zfs. `args` is the zfs command line that failed, when there was one. */
export class ZfsError extends ManateeError {
  readonly args: readonly string[];
  readonly stderr: string;

  constructor(code: string, message: string, details: { args?: readonly string[]; stderr?: string; cause?: unknown } = {}) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.args = details.args ?? [];
    this.stderr = details.stderr ?? '';
  }
}

/** A dataset or snapshot name that breaks ZFS's naming rules (checked before anything runs). */
export class ZfsBadNameError extends ZfsError {
  readonly badName: string;
  readonly rule: string;
  constructor(badName: string, rule: string) {
    super(ZFS_ERR_BAD_NAME, `invalid ZFS name ${JSON.stringify(badName)}: ${rule}`);
    this.badName = badName;
    this.rule = rule;
  }
}

export class ZfsNotFoundError extends ZfsError {}
export class ZfsNoSpaceError extends ZfsError {}
export class ZfsBusyError extends ZfsError {}
export class ZfsPermissionError extends ZfsError {}
export class ZfsExistsError extends ZfsError {}
export class ZfsCommandError extends ZfsError {}

/** Last non-empty stderr lines, bounded so that a chatty failure does not flood logs. */
function summarize(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const text = lines.slice(0, 4).join('; ');
  return text.length > 500 ? `${text.slice(0, 500)}...` : text;
}

/**
 * Maps a failed zfs invocation to its typed error. The patterns come from zfs-fuse 0.7 and
 * OpenZFS messages (both use libzfs's wording).
 */
export function classifyZfsFailure(args: readonly string[], stderr: string, exitCode: number | undefined): ZfsError {
  const what = `zfs ${args.join(' ')}`;
  const detail = summarize(stderr);
  const msg = `${what} failed (exit ${exitCode ?? 'signal'}): ${detail === '' ? 'no error output' : detail}`;
  const d = { args, stderr };
  if (/out of space|no space left|quota exceeded/i.test(stderr)) return new ZfsNoSpaceError(ZFS_ERR_NO_SPACE, msg, d);
  if (/permission denied|insufficient privileges|operation not permitted/i.test(stderr)) {
    return new ZfsPermissionError(ZFS_ERR_PERMISSION, msg, d);
  }
  if (/does not exist|no such pool|no such dataset|could not find any snapshots|no such file or directory/i.test(stderr)) {
    return new ZfsNotFoundError(ZFS_ERR_NOT_FOUND, msg, d);
  }
  if (/busy/i.test(stderr)) return new ZfsBusyError(ZFS_ERR_BUSY, msg, d);
  if (/already exists/i.test(stderr)) return new ZfsExistsError(ZFS_ERR_EXISTS, msg, d);
  return new ZfsCommandError(ZFS_ERR_COMMAND, msg, d);
}
