// The shard secret and the admin token as a running peer holds them, so that both can be rotated
// without downtime (issue #14 item 5). For a window a peer accepts more than one value of each
// (config `acceptedSecrets`, `acceptedAdminTokens`) while it proves itself with `secret` alone;
// SIGHUP reads the configuration file again and update() swaps the set in. Every user reads it
// at each use (the Raft hello, a backup request, an admin call, a PostgreSQL password), so the
// new set holds for the next connection; open ones keep going.
//
// The steps (README, "Security"): add the new value as an accepted one on every peer + SIGHUP;
// make it `secret` (the old one accepted) on every peer + SIGHUP; drop the old one + SIGHUP.
import { scryptSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { CredentialsStatus } from '../model/index.js';
import { ConfigError, derivedPassword, type SitterConfig } from './config.js';

/** A reload whose shard secrets share no value with the current ones: the peer would lose its shard. */
export const CREDENTIALS_ERR_DISJOINT = 'MANATEE_ERR_CREDENTIALS_DISJOINT';

/** The credential fields of a configuration. */
export type CredentialFields = Pick<SitterConfig, 'secret' | 'acceptedSecrets' | 'adminToken' | 'acceptedAdminTokens' | 'postgres'>;

/** A reload whose admin tokens share no value with the current ones: every operator would be locked out at once. */
export const CREDENTIALS_ERR_TOKENS_DISJOINT = 'MANATEE_ERR_CREDENTIALS_TOKENS_DISJOINT';

// GET /status answers without a token, so a fingerprint there must not let anyone test guesses of
// a weak admin token offline at hash speed: scrypt (1 MiB, about 3 ms a value on this machine,
// computed once per value and cached: a SIGHUP or the first /status must not stall the event loop
// that keeps the session), instead of one SHA-256.
const FINGERPRINT_SCRYPT = { N: 1024, r: 8, p: 1 } as const;
const FINGERPRINTS_CACHED_MAX = 64;
const fingerprints = new Map<string, string>();

/** A short, one-way name of a secret or token for logs and /status: which value is in use, never the value. */
export function secretFingerprint(secret: string): string {
  const known = fingerprints.get(secret);
  if (known !== undefined) return known;
  const fp = scryptSync(secret, 'manatee-fingerprint', 6, FINGERPRINT_SCRYPT).toString('hex');
  if (fingerprints.size >= FINGERPRINTS_CACHED_MAX) fingerprints.clear();
  fingerprints.set(secret, fp);
  return fp;
}

/** What a log line or GET /status shows of the credentials (src/model CredentialsStatus): fingerprints only. */
export type CredentialsSummary = CredentialsStatus;

/**
 * The summary as a log line carries it: pino redacts every field named secret or adminToken
 * (src/log.ts), so the fingerprints go under names of their own.
 */
export function credentialsLogFields(c: CredentialsSummary): Record<string, unknown> {
  return {
    secretFingerprint: c.secret, acceptedSecretFingerprints: c.acceptedSecrets,
    adminTokenFingerprint: c.adminToken, acceptedAdminTokenFingerprints: c.acceptedAdminTokens,
  };
}

interface Events {
  change: [CredentialsSummary];
}

export class ShardCredentials extends EventEmitter<Events> {
  private fields: CredentialFields;

  constructor(config: CredentialFields) {
    super();
    this.fields = ShardCredentials.pick(config);
  }

  private static pick(c: CredentialFields): CredentialFields {
    return {
      secret: c.secret,
      acceptedSecrets: [...(c.acceptedSecrets ?? [])],
      adminToken: c.adminToken,
      acceptedAdminTokens: [...(c.acceptedAdminTokens ?? [])],
      postgres: c.postgres,
    };
  }

  /** The secret this peer proves itself with (Raft hello, backup requests). */
  get secret(): string {
    return this.fields.secret;
  }

  /** Every secret accepted from a peer, the current one first. */
  secrets(): readonly string[] {
    return [this.fields.secret, ...(this.fields.acceptedSecrets ?? [])];
  }

  /** Every admin token accepted, the configured one first. */
  adminTokens(): readonly string[] {
    return [this.fields.adminToken, ...(this.fields.acceptedAdminTokens ?? [])];
  }

  /** True while more than one secret is accepted (a rotation's window). */
  get rotating(): boolean {
    return (this.fields.acceptedSecrets ?? []).length > 0;
  }

  /**
   * The passwords the role may have, the one this peer sets first: the configured password (it
   * does not rotate with the secret), or the one derived from each accepted secret.
   */
  rolePasswords(purpose: 'replication' | 'superuser'): readonly string[] {
    const configured = purpose === 'replication' ? this.fields.postgres.replicationPassword : this.fields.postgres.superuserPassword;
    if (configured !== undefined) return [configured];
    return this.secrets().map((s) => derivedPassword(s, purpose));
  }

  /** Whether the role's password derives from the shard secret (and so moves with it). */
  derives(purpose: 'replication' | 'superuser'): boolean {
    return (purpose === 'replication' ? this.fields.postgres.replicationPassword : this.fields.postgres.superuserPassword) === undefined;
  }

  summary(): CredentialsSummary {
    return {
      secret: secretFingerprint(this.fields.secret),
      acceptedSecrets: (this.fields.acceptedSecrets ?? []).map(secretFingerprint),
      adminToken: secretFingerprint(this.fields.adminToken),
      acceptedAdminTokens: (this.fields.acceptedAdminTokens ?? []).map(secretFingerprint),
    };
  }

  /**
   * Takes the credentials of a configuration read again (SIGHUP). Returns whether anything changed.
   * Throws ConfigError CREDENTIALS_ERR_DISJOINT, and keeps the current set, when the new secrets
   * share none with the current ones: the peer could then talk to no peer that has not switched,
   * which a rotation never needs (the new value is first added as an accepted one everywhere).
   * Throws ConfigError CREDENTIALS_ERR_TOKENS_DISJOINT, and keeps the current set, when the new
   * admin tokens share none with the current ones: every operator and script holding a token would
   * be refused at once, with no window to move them over.
   */
  update(next: CredentialFields): boolean {
    // Configured PostgreSQL passwords do not rotate with the secret: they change with a restart.
    const n = ShardCredentials.pick({ ...next, postgres: this.fields.postgres });
    const before = this.secrets();
    const after = [n.secret, ...(n.acceptedSecrets ?? [])];
    if (!after.some((s) => before.includes(s))) {
      throw new ConfigError(
        'the new shard secrets share no value with the current ones: this peer would be cut off from its shard. Add the new secret to acceptedSecrets on every peer first (README, "Security"), or restart the sitter to force it',
        { code: CREDENTIALS_ERR_DISJOINT },
      );
    }
    const tokensAfter = [n.adminToken, ...(n.acceptedAdminTokens ?? [])];
    if (!tokensAfter.some((t) => this.adminTokens().includes(t))) {
      throw new ConfigError(
        'the new admin tokens share no value with the current ones: every caller holding the current token would be refused at once. Add the new token to acceptedAdminTokens on every peer first (README, "Security"), or restart the sitter to force it',
        { code: CREDENTIALS_ERR_TOKENS_DISJOINT },
      );
    }
    const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
    const changed = !same(before, after) || !same(this.adminTokens(), tokensAfter);
    if (!changed) return false;
    this.fields = n;
    this.emit('change', this.summary());
    return true;
  }
}
