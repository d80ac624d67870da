// A peer's pgUrl ("postgres://user[:password]@host:port/db") as libpq connection fields. Missing
// parts are filled from the local configuration (the shard shares its replication credentials).
import { PgError } from './errors.js';
import { conninfo } from './config.js';

export interface PgEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string | null;
  readonly dbname: string;
}

export function parsePgUrl(pgUrl: string, defaults: { user: string; password?: string; dbname?: string }): PgEndpoint {
  let u: URL;
  try {
    u = new URL(pgUrl);
  } catch {
    throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `pgUrl ${JSON.stringify(pgUrl)} is not a URL: expected postgres://user@host:port/db`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `pgUrl ${JSON.stringify(pgUrl)}: expected the postgres:// scheme`);
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `pgUrl ${JSON.stringify(pgUrl)} has no host`);
  const port = u.port === '' ? 5432 : Number(u.port);
  const dbname = decodeURIComponent(u.pathname.replace(/^\//, '')) || defaults.dbname || 'postgres';
  return {
    host,
    port,
    user: u.username !== '' ? decodeURIComponent(u.username) : defaults.user,
    password: u.password !== '' ? decodeURIComponent(u.password) : defaults.password ?? null,
    dbname,
  };
}

/** Conninfo without the password (it goes in PGPASSWORD, out of process listings and logs). */
export function endpointConninfo(e: PgEndpoint, extra: Readonly<Record<string, string | number>> = {}): string {
  return conninfo({ host: e.host, port: e.port, user: e.user, dbname: e.dbname, connect_timeout: 10, ...extra });
}
