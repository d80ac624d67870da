// Every sitter applies the shard-wide PostgreSQL settings (manatee-adm config, kept in the
// store): it renders them into manatee-shard.conf and reloads. A sighup setting takes effect
// at once; a postmaster setting waits for a restart (manatee-adm restart --pending), and is
// shown as pending in /status, /shard, manatee-adm show and /metrics. The per-peer overrides
// file, read after the shard file, stays the last word for its peer.
//
// One apply at a time. A failed apply (PostgreSQL restarting) is tried again at the next tick;
// the report (value and source of each setting, pending restarts) is refreshed after each apply,
// after each start of PostgreSQL, and every tick.
import type { Logger } from '../log.js';
import { isSecretSetting, SETTING_REDACTED, type PeerSettingReport, type PeerSettingsStatus } from '../model/index.js';
import type { ShardSettingsApplied } from '../postgres/index.js';
import type { VersionedSettings } from '../store/settings.js';

export type { PeerSettingsStatus } from '../model/index.js';

/** What the keeper needs of PostgreSQL (PostgresServer has these). */
export interface SettingsTarget {
  readonly running: boolean;
  applyShardSettings(settings: Readonly<Record<string, string>>, version: number): Promise<ShardSettingsApplied>;
  settingsReport(names: readonly string[]): Promise<PeerSettingReport[]>;
}

export interface ShardSettingsKeeperOptions {
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
  private error: string | null = null;
  private busy: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: ShardSettingsKeeperOptions) {}

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => { this.changed(); }, this.opts.tickMs ?? 5000);
    this.timer.unref();
    this.changed();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** The settings changed, or PostgreSQL (re)started: apply and report (coalesced). */
  changed(): void {
    if (this.busy !== null) {
      this.again = true;
      return;
    }
    this.busy = this.run().finally(() => {
      this.busy = null;
      if (this.again) {
        this.again = false;
        this.changed();
      }
    });
  }

  /** Resolves once the apply in flight (if any) is done. */
  async settled(): Promise<void> {
    while (this.busy !== null) await this.busy;
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
      error: this.error,
    };
  }

  private async run(): Promise<void> {
    if (!this.opts.ready()) return;
    const { settings, version } = this.opts.settings();
    const target = this.opts.target;
    try {
      if (this.appliedVersion !== version) {
        const r = await target.applyShardSettings(settings, version);
        // Written to the file, but not yet read by a running server: applied at its next start.
        this.appliedVersion = version;
        this.opts.log.info({ decision: 'shard-settings-applied', version, reloaded: r.reloaded, pendingRestart: r.pendingRestart },
          r.reloaded ? `shard settings version ${version} reloaded` : `shard settings version ${version} written; PostgreSQL reads them when it starts`);
      }
      if (target.running) {
        this.report = await target.settingsReport(Object.keys(settings));
        this.pendingRestart = this.report.filter((s) => s.pendingRestart).map((s) => s.name);
      } else {
        this.pendingRestart = [];
      }
      this.error = null;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message !== this.error) this.opts.log.warn({ decision: 'shard-settings-failed', version, err: message }, `shard settings version ${version}: ${message}; trying again`);
      this.error = message;
    }
  }
}
