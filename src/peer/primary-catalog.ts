// pg_settings of the primary: what an operator's shard setting is checked against (names, types,
// units, ranges, enum values of the server that the setting is for). The primary's own rows when
// this peer is the primary; else asked from the primary's API (GET /pg-settings), which needs no
// database credentials. No state yet: this peer's own server (they all run the same binaries).
import { ManateeError, errorMessage } from '../errors.js';
import { PG_SETTINGS_QUERY, PgSettingsCatalog, type PgSettingRow } from '../postgres/settings.js';
import type { ClusterState, PeerId } from '../model/index.js';
import { ApiClient, type WireTlsOptions } from '../wire/index.js';

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
      `cannot check the settings: pg_settings of ${whose} could not be read (${errorMessage(err)}); try again when its PostgreSQL is up`);
  }
}

/** GET <apiUrl>/pg-settings with the typed client (src/wire). `tls`: the shard CA (which must have issued the primary's API certificate), and this peer's certificate and key. */
export async function fetchPgSettingRows(apiUrl: string, tls?: WireTlsOptions): Promise<readonly PgSettingRow[]> {
  const client = new ApiClient({ baseUrl: apiUrl, timeoutMs: FETCH_TIMEOUT_MS, responseBytesMax: ROWS_BYTES_MAX, ...(tls !== undefined ? { tls } : {}) });
  // The rows of the primary's own pg_settings query, as this peer's query would read them.
  return (await client.pgSettings()) as readonly PgSettingRow[];
}
