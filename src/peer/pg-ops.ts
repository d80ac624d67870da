// An operator's reload or restart of this peer's PostgreSQL (manatee-adm reload, and each step
// of manatee-adm restart). A reload is harmless at any time and runs at once. A restart runs
// between two evaluations of the sitter's loop, never during one, so that the reconciler does
// not start or reconfigure the server while it is down. A primary is never restarted this way:
// its writes would stop; manatee-adm restart switches over first, then restarts it as a standby.
import { ManateeError, asError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PeerRole } from '../model/index.js';

/** The answer of POST /admin/reload-postgres and /admin/restart-postgres. */
export interface PgOpResult {
  readonly peerId: string;
  readonly action: 'reloaded' | 'restarted';
  /** Settings still waiting for a restart afterwards. */
  readonly pendingRestart: readonly string[];
  readonly message: string;
}

export interface PgOpsTarget {
  readonly running: boolean;
  reload(): Promise<string[]>;
  restart(mode: 'fast'): Promise<void>;
  pendingRestart(): Promise<string[]>;
}

export class PostgresOps {
  private queued: { readonly run: () => Promise<void> }[] = [];

  constructor(private readonly o: {
    readonly peerId: string;
    readonly postgres: PgOpsTarget;
    readonly role: () => PeerRole;
    /** Wakes the loop, which runs what is queued before its next evaluation. */
    readonly kick: () => void;
    readonly log: Logger;
  }) {}

  async reload(): Promise<PgOpResult> {
    if (!this.o.postgres.running) throw new ManateeError('MANATEE_ERR_PG_NOT_RUNNING', `${this.o.peerId}: PostgreSQL is not running; nothing to reload`);
    const pendingRestart = await this.o.postgres.reload();
    const message = `${this.o.peerId}: PostgreSQL reloaded its configuration${pendingRestart.length === 0 ? '' : `; waiting for a restart: ${pendingRestart.join(', ')}`}`;
    this.o.log.info({ decision: 'operator-reload', pendingRestart }, message);
    return { peerId: this.o.peerId, action: 'reloaded', pendingRestart, message };
  }

  /** Restarts a standby's PostgreSQL (fast shutdown, start) between two evaluations. */
  restart(): Promise<PgOpResult> {
    const role = this.o.role();
    if (role === 'primary') {
      return Promise.reject(new ManateeError('MANATEE_ERR_RESTART_PRIMARY',
        `${this.o.peerId} is the primary: restarting it would stop the shard's writes; switch over first (manatee-adm restart does)`));
    }
    if (!this.o.postgres.running) {
      return Promise.reject(new ManateeError('MANATEE_ERR_PG_NOT_RUNNING', `${this.o.peerId}: PostgreSQL is not running (role ${role}); nothing to restart`));
    }
    return new Promise<PgOpResult>((resolve, reject) => {
      this.queued.push({
        run: async () => {
          try {
            // Checked again: the role may have changed while this waited for the loop.
            if (this.o.role() === 'primary') throw new ManateeError('MANATEE_ERR_RESTART_PRIMARY', `${this.o.peerId} became the primary; not restarting it`);
            this.o.log.info({ decision: 'operator-restart', role }, `${this.o.peerId}: restarting PostgreSQL (${role}) at an operator's request`);
            await this.o.postgres.restart('fast');
            const pendingRestart = await this.o.postgres.pendingRestart();
            resolve({ peerId: this.o.peerId, action: 'restarted', pendingRestart, message: `${this.o.peerId}: PostgreSQL restarted (${role})` });
          } catch (err) {
            reject(asError(err));
          }
        },
      });
      this.o.kick();
    });
  }

  /** Runs what is queued (the loop calls it before each evaluation). */
  async runQueued(): Promise<void> {
    for (const q of this.queued.splice(0)) await q.run();
  }
}
