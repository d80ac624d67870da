// Every sitter applies the shard-wide PostgreSQL settings (manatee-adm config, kept in the
// store): it renders them into manatee-shard.conf and reloads. A sighup setting takes effect
// at once; a postmaster setting waits for a restart (manatee-adm restart --pending), and is
// shown as pending in /status, /shard, manatee-adm show and /metrics. The per-peer overrides
// file, read after the shard file, stays the last word for its peer.
//
// One apply at a time. A failed apply (PostgreSQL restarting) is tried again at the next tick;
// the report (value and source of each setting, pending restarts, and the lines of the files that
// PostgreSQL refuses: a bad value, or an unknown name, which blocks every change at a reload) is
// refreshed after each apply, after each start of PostgreSQL, and every tick.
import { errorMessage, hasCode } from '../errors.js';
import type { Logger } from '../log.js';
import { isSecretSetting, SETTING_REDACTED, type PeerSettingReport, type PeerSettingsStatus, type RejectedSetting } from '../model/index.js';
import type { ShardSettingsApplied } from '../postgres/index.js';
import type { VersionedSettings } from '../store/settings.js';
import { CoalescedJob } from './coalesced-job.js';
import type { Every } from './clock.js';

/** A line of a configuration file that PostgreSQL refuses (logged, and shown per peer). */
export const PG_ERR_SETTING_REJECTED = 'MANATEE_ERR_PG_SETTING_REJECTED';

export type { PeerSettingsStatus } from '../model/index.js';

/** What the keeper needs of PostgreSQL (PostgresServer has these). */
export interface SettingsTarget {
  readonly running: boolean;
  applyShardSettings(settings: Readonly<Record<string, string>>, version: number): Promise<ShardSettingsApplied>;
  settingsReport(names: readonly string[]): Promise<PeerSettingReport[]>;
  rejectedSettings(): Promise<RejectedSetting[]>;
}

export interface ShardSettingsKeeperOptions {
  /** The interval's clock (default a timer of its own): see clock.ts everyFrom. */
  readonly every?: Every;
  readonly target: SettingsTarget;
  readonly settings: () => VersionedSettings;
  readonly log: Logger;
  /** False until the store has caught up with the shard (a stale local log must not be applied). */
  readonly ready: () => boolean;
  /** How often a failed apply is retried and the report refreshed. Default 5 s. */
  readonly tickMs?: number;
}

export class ShardSettingsKeeper {
  private appliedVersion: number | null = null;
  private pendingRestart: readonly string[] = [];
  private report: readonly PeerSettingReport[] = [];
  private rejected: readonly RejectedSetting[] = [];
  private error: string | null = null;
  /** The version whose reload PostgreSQL applied nothing of (a bad line in a file), or null. */
  private blockedVersion: number | null = null;
  private readonly job: CoalescedJob;

  constructor(private readonly opts: ShardSettingsKeeperOptions) {
    // run() catches its own errors: `failed` is only for a bug.
    this.job = new CoalescedJob({ run: () => this.run(), intervalMs: opts.tickMs ?? 5000, ...(opts.every !== undefined ? { every: opts.every } : {}), failed: (err) => { this.opts.log.error({ err: errorMessage(err) }, 'shard settings: unexpected failure'); } });
  }

  start(): void {
    this.job.start();
  }

  stop(): void {
    this.job.stop();
  }

  /** The settings changed, or PostgreSQL (re)started: apply and report (coalesced). */
  changed(): void {
    this.job.request();
  }

  /** Resolves once the apply in flight (if any) is done. */
  async settled(): Promise<void> {
    await this.job.settled();
  }

  status(): PeerSettingsStatus {
    return {
      version: this.opts.settings().version,
      appliedVersion: this.appliedVersion,
      pendingRestart: this.pendingRestart,
      // /status and /shard answer without the admin token: a value that may hold a credential is not shown.
      settings: this.report.map((s) => (isSecretSetting(s.name)
        ? { ...s, value: s.value === null ? null : SETTING_REDACTED, running: s.running === null || s.running === '' ? s.running : SETTING_REDACTED }
        : s)),
      rejected: this.rejected,
      error: this.error,
    };
  }

  private async run(): Promise<void> {
    if (!this.opts.ready()) return;
    const { settings, version } = this.opts.settings();
    let error: string | null = null;
    // A reload that a bad line blocks is sent again only once the report no longer shows one:
    // each try would only add PostgreSQL's complaint to its log.
    const blocked = this.blockedVersion === version && this.rejected.some((r) => r.blocksReload);
    if (this.appliedVersion !== version && !blocked) {
      try {
        const r = await this.opts.target.applyShardSettings(settings, version);
        // Written to the file, but not yet read by a running server: applied at its next start.
        this.appliedVersion = version;
        this.blockedVersion = null;
        this.opts.log.info({ decision: 'shard-settings-applied', version, reloaded: r.reloaded, pendingRestart: r.pendingRestart },
          r.reloaded ? `shard settings version ${version} reloaded` : `shard settings version ${version} written; PostgreSQL reads them when it starts`);
      } catch (err) {
        if (hasCode(err, 'MANATEE_ERR_PG_RELOAD_BLOCKED')) this.blockedVersion = version;
        error = errorMessage(err);
      }
    } else if (blocked) {
      error = this.error;
    }
    // Also after a failed apply: the lines that block a reload are what the operator must fix.
    try {
      await this.refreshReport(Object.keys(settings));
    } catch (err) {
      error ??= errorMessage(err);
    }
    if (error !== null && error !== this.error) this.opts.log.warn({ decision: 'shard-settings-failed', version, err: error }, `shard settings version ${version}: ${error}; trying again`);
    this.error = error;
  }

  private async refreshReport(names: readonly string[]): Promise<void> {
    const target = this.opts.target;
    if (!target.running) {
      this.pendingRestart = [];
      return;
    }
    this.report = await target.settingsReport(names);
    this.pendingRestart = this.report.filter((s) => s.pendingRestart).map((s) => s.name);
    this.noteRejected(await target.rejectedSettings());
  }

  /** Keeps the lines PostgreSQL refuses, and logs when they change (once, not every tick). */
  private noteRejected(rejected: readonly RejectedSetting[]): void {
    const key = (r: readonly RejectedSetting[]): string => JSON.stringify(r.map((x) => [x.file, x.line, x.name, x.error]));
    if (key(rejected) === key(this.rejected)) return;
    this.rejected = rejected;
    if (rejected.length === 0) {
      this.opts.log.info({ decision: 'shard-settings-rejected', rejected: [] }, 'PostgreSQL accepts every line of its configuration files again');
    } else {
      this.opts.log.warn({ decision: 'shard-settings-rejected', code: PG_ERR_SETTING_REJECTED, rejected: rejected.map((r) => ({ name: r.name, file: r.file, line: r.line, error: r.error })) },
        `PostgreSQL refuses ${rejected.length} line${rejected.length === 1 ? '' : 's'} of its configuration files: ${rejected.map((r) => r.reason).join('; ')}`);
    }
  }
}
