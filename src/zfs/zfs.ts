// Datasets, snapshots, rollback and isolation through the zfs command. Every name is
// validated before a command runs. Snapshots that Manatee manages are named by 13-digit
// epoch milliseconds, so that sorting by name is sorting by time (as in Joyent's Manatee,
// and because zfs-fuse's `creation` property has one-second resolution).
import type { Logger } from '../log.js';
import { ZfsCommand, type ZfsCommandOptions } from './command.js';
import { classifyZfsFailure, ZfsBusyError, ZfsCommandError, ZfsNotFoundError, ZFS_ERR_COMMAND } from './errors.js';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import {
  isManateeSnapshot,
  isolatedName,
  parentOf,
  snapshotShortName,
  validateDatasetName,
  validateSnapshotName,
} from './names.js';
import { receiveFromSocket, receiveStream, sendStream, sendToSocket, type ZfsReceiveOptions, type ZfsSendStream, type ZfsSocketStream } from './stream.js';
import type { Readable } from 'node:stream';
import type { Socket } from 'node:net';

export interface SnapshotInfo {
  /** Full name, "pool/a@1700000000000". */
  readonly name: string;
  readonly dataset: string;
  /** The part after "@": 13-digit epoch milliseconds. */
  readonly short: string;
  readonly epochMs: number;
}

export interface CreateDatasetOptions {
  /** Where to mount it; inherited from the parent when absent. */
  readonly mountpoint?: string;
  /** Other properties to set at creation, e.g. { compression: 'lz4' }. */
  readonly properties?: Readonly<Record<string, string>>;
  /** Create missing parents (-p). */
  readonly parents?: boolean;
}

/** The user property that remembers an isolated dataset's mountpoint, so that un-isolating restores it. */
export const ISOLATED_MOUNTPOINT_PROPERTY = 'manatee:mountpoint';
/** Stored instead of a path when the mountpoint was inherited. */
const INHERITED = '-inherited-';
/** Renames and unmounts can meet a transient "busy" (zfs-fuse holds a handle briefly): retry a few times. */
// zfs-fuse holds a dataset busy for a while after its mount was used (seen for 5 s in the full
// suite, whose zfs files share one daemon): about 12 s of retries, each wait at most 2 s.
const BUSY_RETRIES_MAX = 10;
const BUSY_RETRY_DELAY_MAX_MS = 2000;
const BUSY_RETRY_DELAY_MS = 300;

const PROPERTY_RE = /^[a-z][a-z0-9_.:@-]{0,255}$/;
// Property values go to zfs as one argument; control characters would only corrupt `zfs get -H` output.
const PROPERTY_VALUE_RE = /^[^\t\n\r\0]{0,1024}$/;

function validateProperty(prop: string, value?: string): void {
  if (!PROPERTY_RE.test(prop)) {
    throw new ZfsCommandError(ZFS_ERR_COMMAND, `invalid ZFS property name ${JSON.stringify(prop)}: lowercase letters, digits and "_.:@-"`);
  }
  if (value !== undefined && !PROPERTY_VALUE_RE.test(value)) {
    throw new ZfsCommandError(ZFS_ERR_COMMAND, `invalid value for ZFS property ${prop}: no tabs, newlines or NULs, at most 1024 characters`);
  }
}

/** Where zfs-fuse mounted a dataset (from /proc/mounts), or null (not mounted, or not zfs-fuse). */
async function fuseMountpointOf(dataset: string): Promise<string | null> {
  let mounts: string;
  try {
    mounts = await readFile('/proc/mounts', 'utf8');
  } catch {
    return null;
  }
  for (const line of mounts.split('\n')) {
    const [source, target, fstype] = line.split(' ');
    // /proc/mounts escapes spaces as \040; Manatee's names and mountpoints have none.
    if (source === dataset && fstype === 'fuse.zfs' && target !== undefined) return target;
  }
  return null;
}

async function delay(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

export interface ZfsOptions extends ZfsCommandOptions {
  /** Tries of a command that meets "busy" (default 10, about 12 s in all); tests of the busy path use fewer. */
  readonly busyRetriesMax?: number;
}

export class Zfs {
  readonly cmd: ZfsCommand;
  readonly log: Logger;
  private readonly busyRetriesMax: number;

  constructor(opts: ZfsOptions) {
    this.cmd = new ZfsCommand(opts);
    this.log = opts.log;
    this.busyRetriesMax = Math.max(1, opts.busyRetriesMax ?? BUSY_RETRIES_MAX);
  }

  // ---- datasets ----

  async createDataset(dataset: string, opts: CreateDatasetOptions = {}): Promise<void> {
    validateDatasetName(dataset);
    const args = ['create'];
    if (opts.parents === true) args.push('-p');
    if (opts.mountpoint !== undefined) {
      validateProperty('mountpoint', opts.mountpoint);
      args.push('-o', `mountpoint=${opts.mountpoint}`);
    }
    for (const [k, v] of Object.entries(opts.properties ?? {})) {
      validateProperty(k, v);
      args.push('-o', `${k}=${v}`);
    }
    args.push(dataset);
    await this.cmd.run(args);
    this.log.info({ dataset, mountpoint: opts.mountpoint }, 'zfs: created dataset');
  }

  /** True when the dataset (or snapshot) exists. */
  async exists(name: string): Promise<boolean> {
    if (name.includes('@')) validateSnapshotName(name);
    else validateDatasetName(name);
    try {
      await this.cmd.run(['list', '-H', '-o', 'name', '-t', 'all', name]);
      return true;
    } catch (err) {
      if (err instanceof ZfsNotFoundError) return false;
      throw err;
    }
  }

  async getProperties(name: string, props: readonly string[]): Promise<Record<string, string>> {
    if (name.includes('@')) validateSnapshotName(name);
    else validateDatasetName(name);
    for (const p of props) validateProperty(p);
    const out = await this.cmd.run(['get', '-H', '-p', '-o', 'property,value', props.join(','), name]);
    const result: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const tab = line.indexOf('\t');
      if (tab < 0) continue;
      result[line.slice(0, tab)] = line.slice(tab + 1);
    }
    return result;
  }

  async getProperty(name: string, prop: string): Promise<string> {
    const props = await this.getProperties(name, [prop]);
    const v = props[prop];
    if (v === undefined) throw new ZfsCommandError(ZFS_ERR_COMMAND, `zfs get ${prop} ${name} returned no value`);
    return v;
  }

  /** A numeric property (used, referenced, available...) in bytes. */
  async getBytes(name: string, prop: string): Promise<number> {
    const v = await this.getProperty(name, prop);
    const n = Number(v);
    if (!Number.isFinite(n)) throw new ZfsCommandError(ZFS_ERR_COMMAND, `zfs get ${prop} ${name}: not a number: ${v}`);
    return n;
  }

  async setProperty(name: string, prop: string, value: string): Promise<void> {
    validateDatasetName(name);
    validateProperty(prop, value);
    await this.cmd.run(['set', `${prop}=${value}`, name]);
    this.log.info({ dataset: name, property: prop, value }, 'zfs: set property');
  }

  async inheritProperty(name: string, prop: string): Promise<void> {
    validateDatasetName(name);
    validateProperty(prop);
    await this.cmd.run(['inherit', prop, name]);
  }

  async isMounted(dataset: string): Promise<boolean> {
    return (await this.getProperty(validateDatasetName(dataset), 'mounted')) === 'yes';
  }

  async mount(dataset: string): Promise<void> {
    validateDatasetName(dataset);
    if (await this.isMounted(dataset)) return;
    await this.cmd.run(['mount', dataset]);
    this.log.info({ dataset }, 'zfs: mounted');
  }

  async unmount(dataset: string, opts: { force?: boolean } = {}): Promise<void> {
    validateDatasetName(dataset);
    if (!(await this.isMounted(dataset))) return;
    const fuseMount = await fuseMountpointOf(dataset);
    if (fuseMount !== null && opts.force !== true) {
      // zfs-fuse: a `zfs unmount` that fails because the mount is in use leaves the dataset held
      // by the daemon for good (busy until it restarts). The kernel's umount fails harmlessly
      // instead, so it goes first; zfs then sees the dataset unmounted.
      await this.retryBusy(async () => {
        const r = await execa('umount', [fuseMount], { reject: false, timeout: 60_000 });
        if (r.failed) throw classifyZfsFailure(['unmount', dataset], r.stderr, r.exitCode);
      });
    } else {
      await this.retryBusy(() => this.cmd.run(opts.force === true ? ['unmount', '-f', dataset] : ['unmount', dataset]));
    }
    this.log.info({ dataset }, 'zfs: unmounted');
  }

  /** Every filesystem below a dataset (not itself), parents before children. */
  private async listDescendants(dataset: string): Promise<string[]> {
    const out = await this.cmd.run(['list', '-H', '-o', 'name', '-t', 'filesystem', '-r', dataset]);
    return out.split('\n').filter((n) => n !== '' && n !== dataset).sort();
  }

  /** The direct child filesystems of a dataset (not itself, not snapshots). */
  async listChildren(dataset: string): Promise<string[]> {
    validateDatasetName(dataset);
    const out = await this.cmd.run(['list', '-H', '-o', 'name', '-t', 'filesystem', '-r', '-d', '1', dataset]);
    return out.split('\n').filter((n) => n !== '' && n !== dataset).sort();
  }

  async destroy(name: string, opts: { recursive?: boolean } = {}): Promise<void> {
    if (name.includes('@')) validateSnapshotName(name);
    else {
      validateDatasetName(name);
      // Unmount through the safe path first (see unmount()), children before parents.
      if (opts.recursive === true) {
        for (const child of (await this.listDescendants(name)).reverse()) await this.unmount(child);
      }
      if (await this.exists(name)) await this.unmount(name);
    }
    const args = opts.recursive === true ? ['destroy', '-r', name] : ['destroy', name];
    await this.retryBusy(() => this.cmd.run(args));
    this.log.info({ name, recursive: opts.recursive === true }, 'zfs: destroyed');
  }

  async rename(from: string, to: string): Promise<void> {
    validateDatasetName(from);
    validateDatasetName(to);
    await this.retryBusy(() => this.cmd.run(['rename', from, to]));
    this.log.info({ from, to }, 'zfs: renamed');
  }

  // ---- snapshots ----

  /** Takes snapshot `<dataset>@<epochMs>`; a later time is used if that name is taken. */
  async createSnapshot(dataset: string, epochMs: number = Date.now()): Promise<SnapshotInfo> {
    validateDatasetName(dataset);
    const newest = await this.newestSnapshot(dataset);
    // Names must strictly increase so that name order stays time order.
    const t = newest !== null && newest.epochMs >= epochMs ? newest.epochMs + 1 : epochMs;
    const short = snapshotShortName(t);
    const name = `${dataset}@${short}`;
    await this.cmd.run(['snapshot', name]);
    this.log.info({ snapshot: name }, 'zfs: created snapshot');
    return { name, dataset, short, epochMs: t };
  }

  /** Manatee's snapshots of one dataset (13-digit names only), oldest first. */
  async listSnapshots(dataset: string): Promise<SnapshotInfo[]> {
    validateDatasetName(dataset);
    const out = await this.cmd.run(['list', '-H', '-o', 'name', '-t', 'snapshot', '-r', '-d', '1', dataset]);
    const snaps: SnapshotInfo[] = [];
    const prefix = `${dataset}@`;
    for (const name of out.split('\n')) {
      if (!name.startsWith(prefix)) continue;
      const short = name.slice(prefix.length);
      if (!isManateeSnapshot(short)) continue;
      snaps.push({ name, dataset, short, epochMs: Number(short) });
    }
    return snaps.sort((a, b) => a.epochMs - b.epochMs);
  }

  async newestSnapshot(dataset: string): Promise<SnapshotInfo | null> {
    const snaps = await this.listSnapshots(dataset);
    return snaps.at(-1) ?? null;
  }

  async destroySnapshot(snapshot: string): Promise<void> {
    validateSnapshotName(snapshot);
    await this.destroy(snapshot);
  }

  /** Rolls a dataset back to a snapshot, destroying later snapshots (-r) when asked. */
  async rollback(snapshot: string, opts: { destroyLater?: boolean } = {}): Promise<void> {
    validateSnapshotName(snapshot);
    const args = opts.destroyLater === true ? ['rollback', '-r', snapshot] : ['rollback', snapshot];
    await this.retryBusy(() => this.cmd.run(args));
    this.log.info({ snapshot, destroyLater: opts.destroyLater === true }, 'zfs: rolled back');
  }

  // ---- send / receive ----

  /**
   * Estimated size of a send stream. zfs-fuse has no `zfs send -nP`, so the estimate is the
   * snapshot's `referenced` (full) or the growth between the two snapshots (incremental);
   * streams carry some overhead, so percentages are capped below 100 until the end.
   */
  async estimateSendBytes(snapshot: string, fromSnapshot?: string): Promise<number> {
    validateSnapshotName(snapshot);
    const to = await this.getProperties(snapshot, ['referenced', 'used']);
    const refTo = Number(to['referenced'] ?? 0);
    if (fromSnapshot === undefined) return refTo;
    validateSnapshotName(fromSnapshot);
    const refFrom = await this.getBytes(fromSnapshot, 'referenced');
    return Math.max(Math.abs(refTo - refFrom), Number(to['used'] ?? 0));
  }

  /** `zfs send [-i from] snapshot` as a readable stream. The caller must consume or abort it. */
  send(snapshot: string, opts: { fromSnapshot?: string } = {}): ZfsSendStream {
    validateSnapshotName(snapshot);
    if (opts.fromSnapshot !== undefined) validateSnapshotName(opts.fromSnapshot);
    return sendStream(this.cmd, snapshot, opts.fromSnapshot);
  }

  /**
   * `zfs send [-i from] snapshot` written straight into a plain TCP socket (its stdout): no byte
   * passes through this process. See stream.ts for what the caller may still do with the socket.
   */
  sendToSocket(snapshot: string, socket: Socket, opts: { fromSnapshot?: string } = {}): ZfsSocketStream {
    validateSnapshotName(snapshot);
    if (opts.fromSnapshot !== undefined) validateSnapshotName(opts.fromSnapshot);
    return sendToSocket(this.cmd, snapshot, socket, opts.fromSnapshot);
  }

  /** `zfs recv [-F] dataset` reading straight from a plain TCP socket (its stdin). */
  receiveFromSocket(dataset: string, socket: Socket, opts: Pick<ZfsReceiveOptions, 'force'> = {}): ZfsSocketStream {
    validateDatasetName(dataset);
    return receiveFromSocket(this.cmd, dataset, socket, opts);
  }

  /** `zfs recv [-F] dataset` from a readable stream; resolves when the snapshot is received. */
  async receive(dataset: string, input: Readable, opts: ZfsReceiveOptions = {}): Promise<void> {
    validateDatasetName(dataset);
    await receiveStream(this.cmd, dataset, input, opts);
    this.log.info({ dataset, force: opts.force === true }, 'zfs: received stream');
  }

  // ---- isolation ----

  /**
   * Moves a dataset aside to `<parent>/isolated/<reason>-<epochMs>` instead of destroying it,
   * unmounted (mountpoint=none) so that a new dataset can take its mountpoint. The original
   * mountpoint is kept in a user property for unisolate(). Returns the isolated name.
   */
  async isolate(dataset: string, reason: string, epochMs: number = Date.now()): Promise<string> {
    validateDatasetName(dataset);
    const target = isolatedName(dataset, reason, epochMs);
    const parent = parentOf(dataset)!;
    const { value, source } = await this.mountpointWithSource(dataset);
    const remembered = source === 'local' ? value : INHERITED;
    await this.setProperty(dataset, ISOLATED_MOUNTPOINT_PROPERTY, remembered);
    // Unmount through the safe path first: if the data is in use this fails (busy) before
    // anything moved. mountpoint=none then keeps the copy from mounting over the new dataset.
    try {
      await this.unmount(dataset);
      await this.cmd.run(['set', 'mountpoint=none', dataset]);
    } catch (err) {
      await this.inheritProperty(dataset, ISOLATED_MOUNTPOINT_PROPERTY).catch(() => undefined);
      throw err;
    }
    try {
      const container = `${parent}/isolated`;
      if (!(await this.exists(container))) {
        try {
          await this.cmd.run(['create', '-o', 'mountpoint=none', container]);
        } catch (err) {
          // Two isolations at once may race to create it.
          if (!(await this.exists(container))) throw err;
        }
      }
      await this.rename(dataset, target);
    } catch (err) {
      // Not moved (zfs-fuse can hold a dataset busy past every retry): put its mountpoint back and
      // mount it again, as it was. Left with mountpoint=none, it could never be mounted again, and
      // every later rebuild of this peer would fail at its first step (seen in a chaos run).
      await this.restoreMountpoint(dataset, remembered).catch((e: unknown) => {
        this.log.error({ dataset, mountpoint: remembered, err: String(e) }, 'zfs: could not put the mountpoint of a dataset that failed to move aside back');
      });
      throw err;
    }
    this.log.info({ dataset, isolated: target, reason, mountpoint: remembered }, 'zfs: isolated dataset (moved aside, not destroyed)');
    return target;
  }

  /**
   * Gives a dataset left with mountpoint=none by an isolation that did not finish (a failed
   * rename, or a sitter killed in between) its remembered mountpoint back, forgets the memory, and
   * mounts it. Returns false when the dataset is not in that state.
   */
  async repairHalfIsolated(dataset: string): Promise<boolean> {
    validateDatasetName(dataset);
    const remembered = await this.getProperty(dataset, ISOLATED_MOUNTPOINT_PROPERTY);
    if (remembered === '-' || remembered === '') return false;
    if ((await this.getProperty(dataset, 'mountpoint')) !== 'none') return false;
    await this.restoreMountpoint(dataset, remembered);
    this.log.warn({ dataset, mountpoint: remembered }, 'zfs: repaired a dataset left half isolated (mountpoint none, not moved aside): its mountpoint is back');
    return true;
  }

  private async restoreMountpoint(dataset: string, remembered: string): Promise<void> {
    if (remembered === INHERITED || remembered === '-' || remembered === '') await this.inheritProperty(dataset, 'mountpoint');
    else await this.setProperty(dataset, 'mountpoint', remembered);
    await this.inheritProperty(dataset, ISOLATED_MOUNTPOINT_PROPERTY);
    await this.mount(dataset);
  }

  /** Puts an isolated dataset back under its original name and mountpoint, and mounts it. */
  async unisolate(isolated: string, dataset: string): Promise<void> {
    validateDatasetName(isolated);
    validateDatasetName(dataset);
    const remembered = await this.getProperty(isolated, ISOLATED_MOUNTPOINT_PROPERTY);
    await this.rename(isolated, dataset);
    if (remembered === INHERITED || remembered === '-' || remembered === '') {
      await this.inheritProperty(dataset, 'mountpoint');
    } else {
      await this.setProperty(dataset, 'mountpoint', remembered);
    }
    await this.inheritProperty(dataset, ISOLATED_MOUNTPOINT_PROPERTY);
    await this.mount(dataset);
    this.log.info({ isolated, dataset, mountpoint: remembered }, 'zfs: un-isolated dataset (put back)');
  }

  /** Isolated copies under `<parent>/isolated`, oldest first. */
  async listIsolated(parent: string): Promise<string[]> {
    const container = `${validateDatasetName(parent)}/isolated`;
    if (!(await this.exists(container))) return [];
    return this.listChildren(container);
  }

  private async mountpointWithSource(dataset: string): Promise<{ value: string; source: string }> {
    const out = await this.cmd.run(['get', '-H', '-o', 'value,source', 'mountpoint', dataset]);
    const [value = '', source = ''] = out.split('\t');
    return { value, source };
  }

  private async retryBusy<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof ZfsBusyError) || attempt >= this.busyRetriesMax) throw err;
        this.log.debug({ attempt, err: err.message }, 'zfs: busy, retrying');
        await delay(Math.min(BUSY_RETRY_DELAY_MS * attempt, BUSY_RETRY_DELAY_MAX_MS));
      }
    }
  }
}
