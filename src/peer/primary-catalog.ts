// pg_settings of the primary: what an operator's shard setting is checked against (names, types,
// units, ranges, enum values of the server that the setting is for). The primary's own rows when
// this peer is the primary; else asked from the primary's API (GET /pg-settings), which needs no
// database credentials. No state yet: this peer's own server (they all run the same binaries).
import http from 'node:http';
import https from 'node:https';
import { ManateeError } from '../errors.js';
import { PG_SETTINGS_QUERY, PgSettingsCatalog, type PgSettingRow } from '../postgres/settings.js';
import type { ClusterState, PeerId } from '../model/index.js';

const ROWS_BYTES_MAX = 4 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 5000;

export interface PrimaryCatalogOptions {
  readonly self: PeerId;
  readonly state: () => ClusterState | null;
  /** A query on this peer's PostgreSQL. */
  readonly query: (sql: string) => Promise<readonly Record<string, unknown>[]>;
  /** GET <apiUrl>/pg-settings; default over node:http. */
  readonly fetchRows?: (apiUrl: string) => Promise<readonly PgSettingRow[]>;
}

export async function localPgSettingRows(query: PrimaryCatalogOptions['query']): Promise<readonly PgSettingRow[]> {
  return (await query(PG_SETTINGS_QUERY)) as unknown as readonly PgSettingRow[];
}

export async function primaryCatalog(opts: PrimaryCatalogOptions): Promise<PgSettingsCatalog> {
  const state = opts.state();
  const primary = state?.primary ?? null;
  try {
    if (primary === null || primary.id === opts.self) return new PgSettingsCatalog(await localPgSettingRows(opts.query));
    return new PgSettingsCatalog(await (opts.fetchRows ?? fetchPgSettingRows)(primary.apiUrl));
  } catch (err) {
    const whose = primary === null || primary.id === opts.self ? 'this peer' : `the primary ${primary.id}`;
    throw new ManateeError('MANATEE_ERR_PG_SETTINGS_UNAVAILABLE',
      `cannot check the settings: pg_settings of ${whose} could not be read (${err instanceof Error ? err.message : String(err)}); try again when its PostgreSQL is up`);
  }
}

/** `tls`: the shard CA (which must have issued the primary's API certificate), and this peer's certificate and key. */
export function fetchPgSettingRows(apiUrl: string, tls?: { readonly ca: string; readonly cert: string; readonly key: string }): Promise<readonly PgSettingRow[]> {
  return new Promise((resolve, reject) => {
    const url = new URL('/pg-settings', apiUrl);
    const req = url.protocol === 'https:'
      ? https.request(url, { method: 'GET', headers: { accept: 'application/json' }, ...(tls !== undefined ? { ...tls, minVersion: 'TLSv1.3' as const } : {}) })
      : http.request(url, { method: 'GET', headers: { accept: 'application/json' } });
    const timer = setTimeout(() => { req.destroy(new Error(`no answer within ${FETCH_TIMEOUT_MS} ms`)); }, FETCH_TIMEOUT_MS);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let sizeBytes = 0;
      res.on('data', (c: Buffer) => {
        sizeBytes += c.length;
        if (sizeBytes > ROWS_BYTES_MAX) req.destroy(new Error(`answer larger than ${ROWS_BYTES_MAX} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(timer);
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { rows?: unknown; error?: { message?: string } };
          if (res.statusCode !== 200 || !Array.isArray(body.rows)) {
            reject(new Error(`HTTP ${res.statusCode ?? '?'} from ${apiUrl}/pg-settings${body.error?.message === undefined ? '' : `: ${body.error.message}`}`));
            return;
          }
          resolve(body.rows as PgSettingRow[]);
        } catch {
          reject(new Error(`${apiUrl}/pg-settings answered something that is not JSON`));
        }
      });
    });
    req.end();
  });
}
