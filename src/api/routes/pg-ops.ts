// POST /admin/reload-postgres and /admin/restart-postgres: this peer's PostgreSQL, at an
// operator's request (manatee-adm reload, and the steps of manatee-adm restart). Registered
// inside adminRoutes, behind its token check.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ManateeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { PgOpResult } from '../../peer/pg-ops.js';
import { statusForCode } from '../errors.js';
import { emptyBodySchema, emptyQuerySchema, errorBodySchema, pgOpResultSchema } from '../schemas.js';

export interface PgOperations {
  reload(): Promise<PgOpResult>;
  restart(): Promise<PgOpResult>;
}

export function pgOpsAdminRoutes(app: FastifyInstance, ops: PgOperations, log: Logger, who: (req: FastifyRequest) => Record<string, unknown>): void {
  const schema = { querystring: emptyQuerySchema, body: emptyBodySchema, response: { 200: pgOpResultSchema, '4xx': errorBodySchema, '5xx': errorBodySchema } };
  const route = (path: string, action: string, run: () => Promise<PgOpResult>): void => {
    app.post(path, { schema }, async (req) => {
      const base = { admin: action, ...who(req) };
      try {
        const r = await run();
        log.info({ ...base, result: 'ok', pendingRestart: r.pendingRestart }, `admin ${action}: ${r.message}`);
        return r;
      } catch (err) {
        const code = err instanceof ManateeError ? err.code : 'MANATEE_ERR_INTERNAL';
        const refused = statusForCode(code) < 500;
        log[refused ? 'warn' : 'error']({ ...base, result: refused ? 'refused' : 'failed', code }, `admin ${action}: ${code}: ${err instanceof Error ? err.message : String(err)}`);
        throw err;
      }
    });
  };
  route('/reload-postgres', 'reload-postgres', () => ops.reload());
  route('/restart-postgres', 'restart-postgres', () => ops.restart());
}
