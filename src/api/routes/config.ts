// The shard-wide PostgreSQL settings: GET /config (public, as /state, with the values that may
// hold a credential redacted: src/model/secret-settings.ts), GET /pg-settings (this peer's
// pg_settings catalog: names, types, units, ranges; what another peer checks a change against
// when this peer is the primary), and GET and POST /admin/config (behind the admin token, added
// by adminRoutes; the GET shows every value whole).
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Logger } from '../../log.js';
import { ManateeError } from '../../errors.js';
import { redactSettings } from '../../model/index.js';
import { statusForCode } from '../errors.js';
import type { SettingsChangeInput } from '../../peer/settings-admin.js';
import type { SettingsOperations, SettingsResult } from '../settings-ops.js';
import { configBodySchema, emptyQuerySchema, errorBodySchema, pgSettingsSchema, settingsResultSchema, versionedSettingsSchema } from '../schemas.js';

const errors = { '4xx': errorBodySchema, '5xx': errorBodySchema } as const;

export interface ConfigDeps {
  readonly settings: SettingsOperations;
  /** This peer's pg_settings rows (PG_SETTINGS_QUERY). */
  readonly pgSettingRows: () => Promise<readonly object[]>;
}

export function configRoutes(deps: ConfigDeps): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.get('/config', { schema: { querystring: emptyQuerySchema, response: { 200: versionedSettingsSchema, ...errors } } }, async () => {
      const { settings, version } = await deps.settings.read();
      return { version, ...redactSettings(settings) };
    });
    app.get('/pg-settings', { schema: { querystring: emptyQuerySchema, response: { 200: pgSettingsSchema, ...errors } } },
      async () => ({ rows: await deps.pgSettingRows() }));
  };
}

/** GET and POST /admin/config, registered inside adminRoutes (so behind its token check). */
export function configAdminRoute(
  app: FastifyInstance,
  settings: SettingsOperations,
  log: Logger,
  who: (req: FastifyRequest) => Record<string, unknown>,
): void {
  app.get('/config', { schema: { querystring: emptyQuerySchema, response: { 200: versionedSettingsSchema, ...errors } } }, () => settings.read());
  app.post<{ Body: SettingsChangeInput }>('/config', {
    schema: { querystring: emptyQuerySchema, body: configBodySchema, response: { 200: settingsResultSchema, ...errors } },
  }, async (req): Promise<SettingsResult> => {
    // The values are logged redacted where they may hold a credential (an archive_command's key).
    const { set, replace } = req.body;
    const args = { ...req.body, ...(set === undefined ? {} : { set: redactSettings(set).settings }), ...(replace === undefined ? {} : { replace: redactSettings(replace).settings }) };
    const base = { admin: 'config', args, ...who(req) };
    try {
      const r = await settings.change(req.body);
      log.info({ ...base, result: 'ok', settingsVersion: r.version, restart: r.restart }, `admin config: ${r.logSummary ?? r.summary}`);
      return r;
    } catch (err) {
      const code = err instanceof ManateeError ? err.code : 'MANATEE_ERR_INTERNAL';
      const refused = statusForCode(code) < 500;
      log[refused ? 'warn' : 'error']({ ...base, result: refused ? 'refused' : 'failed', code }, `admin config: ${code}: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
  });
}
