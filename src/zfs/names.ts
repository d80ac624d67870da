// ZFS names are checked before any command runs: a name is passed to execa as one argument
// (never through a shell), but a bad name must still fail early with an error that says
// which rule it broke, instead of whatever the zfs command prints.
import { ZfsBadNameError } from './errors.js';

/** ZFS's limit on a full name (ZFS_MAX_DATASET_NAME_LEN is 256 including the NUL). */
export const ZFS_NAME_LENGTH_MAX = 255;

// libzfs's valid characters for a component: alphanumerics and "_-:.". Spaces are legal in
// OpenZFS but Manatee never creates them and they make logs ambiguous, so they are refused.
const COMPONENT_RE = /^[A-Za-z0-9_\-:.]+$/;
/** Manatee's snapshot names: 13-digit epoch milliseconds, as in Joyent's Manatee. */
const MANATEE_SNAPSHOT_RE = /^\d{13}$/;

function checkComponent(name: string, component: string, what: string): void {
  if (component === '') throw new ZfsBadNameError(name, `${what} has an empty component (leading, trailing or double "/")`);
  if (!COMPONENT_RE.test(component)) {
    throw new ZfsBadNameError(name, `${what} may contain only letters, digits and "_-:." in each "/"-separated component`);
  }
  if (component === '.' || component === '..') throw new ZfsBadNameError(name, `${what} may not have "." or ".." components`);
  if (component.startsWith('-')) throw new ZfsBadNameError(name, `${what} components may not start with "-"`);
}

/** Throws ZfsBadNameError unless `name` is a valid dataset name ("pool/a/b"). */
export function validateDatasetName(name: string): string {
  if (name.length === 0) throw new ZfsBadNameError(name, 'dataset name is empty');
  if (name.length > ZFS_NAME_LENGTH_MAX) throw new ZfsBadNameError(name, `name is longer than ${ZFS_NAME_LENGTH_MAX} characters`);
  if (name.includes('@')) throw new ZfsBadNameError(name, 'a dataset name may not contain "@" (that names a snapshot)');
  const parts = name.split('/');
  for (const p of parts) checkComponent(name, p, 'dataset name');
  if (!/^[A-Za-z]/.test(parts[0] ?? '')) throw new ZfsBadNameError(name, 'the pool name must start with a letter');
  return name;
}

/** Throws ZfsBadNameError unless `name` is "<dataset>@<snapshot>". */
export function validateSnapshotName(name: string): string {
  const at = name.indexOf('@');
  if (at < 0 || name.indexOf('@', at + 1) >= 0) {
    throw new ZfsBadNameError(name, 'a snapshot name must be "<dataset>@<snapshot>" with exactly one "@"');
  }
  if (name.length > ZFS_NAME_LENGTH_MAX) throw new ZfsBadNameError(name, `name is longer than ${ZFS_NAME_LENGTH_MAX} characters`);
  validateDatasetName(name.slice(0, at));
  checkComponent(name, name.slice(at + 1), 'snapshot name');
  return name;
}

/** Throws ZfsBadNameError unless `short` is a 13-digit epoch-milliseconds snapshot name (the part after "@"). */
export function validateManateeSnapshot(short: string): string {
  if (!MANATEE_SNAPSHOT_RE.test(short)) throw new ZfsBadNameError(short, 'a Manatee snapshot name is 13 digits (epoch milliseconds)');
  return short;
}

export function isManateeSnapshot(short: string): boolean {
  return MANATEE_SNAPSHOT_RE.test(short);
}

/** The snapshot name for a moment: 13-digit epoch milliseconds (valid until the year 2286). */
export function snapshotShortName(epochMs: number): string {
  if (!Number.isSafeInteger(epochMs) || epochMs < 1e12 || epochMs >= 1e13) {
    throw new ZfsBadNameError(String(epochMs), 'snapshot time must be a 13-digit epoch milliseconds integer');
  }
  return String(epochMs);
}

/** "pool/a" → "pool"; a pool's root dataset has no parent. */
export function parentOf(dataset: string): string | null {
  const i = dataset.lastIndexOf('/');
  return i < 0 ? null : dataset.slice(0, i);
}

/** The name a dataset is isolated under: `<parent>/isolated/<reason>-<epochMs>`. */
export function isolatedName(dataset: string, reason: string, epochMs: number): string {
  const parent = parentOf(dataset);
  if (parent === null) throw new ZfsBadNameError(dataset, 'a pool root dataset cannot be isolated (it has no parent)');
  if (!/^[a-z][a-z0-9_-]{0,31}$/.test(reason)) {
    throw new ZfsBadNameError(reason, 'an isolation reason is 1-32 lowercase letters, digits, "_" or "-", starting with a letter');
  }
  return validateDatasetName(`${parent}/isolated/${reason}-${snapshotShortName(epochMs)}`);
}
