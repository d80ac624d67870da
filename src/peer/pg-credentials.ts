// PostgreSQL's role passwords through a rotation of the shard secret. The replication role's
// password (and the superuser's, unless configured) derives from the secret; PostgreSQL keeps one
// password per role, shared by every peer through WAL. So during the window:
// - the primary sets the roles' passwords to the ones derived from its current `secret` (ALTER
//   ROLE with a SCRAM verifier); the change replicates over the open streams, which do not
//   authenticate again;
// - every other peer gives libpq (its passfile: walreceiver, pg_basebackup, pg_rewind) the
//   candidate password (one per accepted secret) that the role's verifier in its own replicated
//   catalog matches, so it follows the primary's change as it replays it. A standby whose stream
//   is down cannot replay the change: it asks its upstream which candidate it accepts.
// Open replication connections are never dropped, so replication goes on through every step.
// With TLS the peers replicate with their certificates (pg_hba.conf `cert` with a pg_ident.conf map),
// not with this password: it is kept in step all the same (a shard may turn TLS off), the logs say
// it is unused, and a standby does not ask its upstream (which admits the certificate, whatever
// the password).
import type { Logger } from '../log.js';
import { errorMessage, ManateeError } from '../errors.js';
import type { PeerInfo, PeerRole } from '../model/index.js';
import { scramVerifier, scramVerifierMatches } from '../postgres/scram.js';
import type { ShardCredentials } from './credentials.js';
import { credentialsLogFields, secretFingerprint } from './credentials.js';
import { CoalescedJob } from './coalesced-job.js';
import type { Every } from './clock.js';

/** No candidate password matches the role's verifier, and the upstream took none: the peer may not stream. */
export const PG_ERR_PASSWORD_UNKNOWN = 'MANATEE_ERR_PG_PASSWORD_UNKNOWN';

/** What this job needs of the local PostgreSQL (PostgresServer). */
export interface PgCredentialsTarget {
  readonly running: boolean;
  readonly superuser: string;
  readonly replicationUser: string;
  readonly currentReplicationPassword: string;
  roleVerifiers(roles: readonly string[]): Promise<Map<string, string | null>>;
  setRoleVerifier(role: string, verifier: string): Promise<void>;
  setReplicationPassword(password: string): Promise<boolean>;
  /** Whether the walreceiver streams now. */
  streaming(): Promise<boolean>;
}

export interface PgCredentialsOptions {
  /** The interval's clock (default a timer of its own): see clock.ts everyFrom. */
  readonly every?: Every;
  readonly target: PgCredentialsTarget;
  readonly credentials: ShardCredentials;
  /** This peer's role and upstream in the committed state. */
  readonly role: () => { readonly role: PeerRole; readonly upstream: PeerInfo | null };
  /** PostgreSQL is a writable primary (the monitor's last check). */
  readonly writable: () => boolean;
  /** Whether `upstream`'s PostgreSQL accepts `password` for the replication role (null: could not tell). */
  readonly upstreamAccepts: (upstream: PeerInfo, password: string) => Promise<boolean | null>;
  readonly log: Logger;
  /** How often it checks while a rotation's window is open. Default 2000 ms. */
  readonly intervalMs?: number;
  /** TLS is on: the replication role logs in with the peers' certificates, not with its password. */
  readonly tls?: boolean;
}

/** What the logs add about the replication role's password when TLS is on. */
const UNUSED_WITH_TLS = 'unused while TLS is on: the peers replicate with their certificates (pg_hba.conf cert, pg_ident.conf)';

const MATCHES_MAX = 64;

export type PgCredentialsOutcome = 'primary-set' | 'primary-current' | 'standby-followed' | 'not-running' | 'unknown';

export class PgCredentials {
  /** The last outcome: a peer that has not settled checks again at the next interval. */
  private settled = false;
  private warnedUnknown = false;
  /** Verifier and password -> whether they match: a verifier changes once per rotation, PBKDF2 is not rerun every check. */
  private readonly matches = new Map<string, boolean>();
  private readonly job: CoalescedJob;

  constructor(private readonly o: PgCredentialsOptions) {
    this.job = new CoalescedJob({
      run: async () => { await this.sync(); },
      intervalMs: o.intervalMs ?? 2000,
      ...(o.every !== undefined ? { every: o.every } : {}),
      due: () => this.o.credentials.rotating || !this.settled,
      failed: (err) => {
        this.settled = false;
        // Outside a rotation a failure (PostgreSQL still starting) is retried quietly.
        this.o.log[this.o.credentials.rotating ? 'warn' : 'debug']({ decision: 'pg-password', err: errorMessage(err), code: err instanceof ManateeError ? err.code : undefined }, `role passwords: check failed, retrying: ${errorMessage(err)}`);
      },
    });
  }

  start(): void {
    this.job.start();
  }

  stop(): void {
    this.job.stop();
  }

  /** The credentials or the role changed: check now (one run at a time; a call during one runs it again after). */
  changed(): void {
    this.job.request();
  }

  /** Resolves when no check runs (tests, stop). */
  async settledRun(): Promise<void> {
    await this.job.settled();
  }

  private async match(verifier: string, password: string): Promise<boolean> {
    const key = `${verifier}\0${password}`;
    let m = this.matches.get(key);
    if (m === undefined) {
      m = await scramVerifierMatches(verifier, password);
      if (this.matches.size >= MATCHES_MAX) this.matches.clear();
      this.matches.set(key, m);
    }
    return m;
  }

  /** One check: the primary sets the passwords, any other peer follows them. */
  async sync(): Promise<PgCredentialsOutcome> {
    const { target: pg, credentials: creds, log } = this.o;
    const replication = creds.rolePasswords('replication');
    const want = replication[0]!;
    if (!pg.running) {
      // Nothing to read: keep a password still accepted, else the current one.
      if (!replication.includes(pg.currentReplicationPassword)) await pg.setReplicationPassword(want);
      this.settled = false;
      return 'not-running';
    }
    const { role, upstream } = this.o.role();
    if (role === 'primary' && this.o.writable()) {
      let changed = false;
      for (const purpose of ['replication', 'superuser'] as const) {
        if (!creds.derives(purpose)) continue;
        const name = purpose === 'replication' ? pg.replicationUser : pg.superuser;
        const password = creds.rolePasswords(purpose)[0]!;
        const verifier = (await pg.roleVerifiers([name])).get(name) ?? null;
        if (verifier !== null && (await this.match(verifier, password))) continue;
        await pg.setRoleVerifier(name, await scramVerifier(password));
        changed = true;
        const unused = purpose === 'replication' && this.o.tls === true;
        log.info({ decision: 'pg-password-set', role: name, secretFingerprint: secretFingerprint(creds.secret), usedForReplication: purpose === 'replication' ? !unused : undefined, reason: 'the primary sets the role passwords derived from its current shard secret' },
          `role passwords: ${name}'s password is now the one derived from the current shard secret${unused ? ` (${UNUSED_WITH_TLS})` : ''}`);
      }
      await pg.setReplicationPassword(want);
      this.settled = true;
      return changed ? 'primary-set' : 'primary-current';
    }
    if (!creds.derives('replication')) {
      await pg.setReplicationPassword(want);
      this.settled = true;
      return 'standby-followed';
    }
    const verifier = (await pg.roleVerifiers([pg.replicationUser])).get(pg.replicationUser) ?? null;
    let chosen: string | undefined;
    for (const p of verifier === null ? [] : replication) {
      if (await this.match(verifier!, p)) {
        chosen = p;
        break;
      }
    }
    let how = 'the role\'s verifier in the local catalog';
    // A standby that does not stream cannot replay a change of the password: its upstream tells.
    // Not with TLS: the upstream admits this peer's certificate whatever the password, so its
    // answer says nothing, and the password does not stop the stream.
    if (upstream !== null && replication.length > 1 && this.o.tls !== true && !(await pg.streaming())) {
      for (const p of replication) {
        if ((await this.o.upstreamAccepts(upstream, p)) === true) {
          chosen = p;
          how = `${upstream.id} accepted it`;
          break;
        }
      }
    }
    if (chosen === undefined) {
      if (!this.warnedUnknown) {
        const tls = this.o.tls === true;
        log[tls ? 'info' : 'warn']({ decision: 'pg-password', code: PG_ERR_PASSWORD_UNKNOWN, accepted: credentialsLogFields(creds.summary()), usedForReplication: !tls, reason: 'the role\'s password is none of those derived from the accepted shard secrets' },
          `role passwords: the replication role's password matches no accepted shard secret; keeping the current one${tls ? ` (${UNUSED_WITH_TLS})` : ''}`);
        this.warnedUnknown = true;
      }
      this.settled = false;
      return 'unknown';
    }
    this.warnedUnknown = false;
    if (await pg.setReplicationPassword(chosen)) {
      const tls = this.o.tls === true;
      log.info({ decision: 'pg-password-followed', reason: how, current: chosen === want, usedForReplication: !tls },
        `role passwords: the passfile now holds the replication password ${chosen === want ? 'of the current shard secret' : 'of an accepted shard secret'} (${how})${tls ? `; ${UNUSED_WITH_TLS}` : ''}`);
    }
    this.settled = true;
    return 'standby-followed';
  }
}
