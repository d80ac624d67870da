// Admin routes: POST /admin/*, each behind the admin token, each logged in one line that says
// who asked for what and what came of it.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { ManateeError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import { tokenChecker } from '../auth.js';
import { AuthFailureLimiter } from '../auth-limit.js';
import { ApiError, statusForCode } from '../errors.js';
import type { AdminResult, ApiDeps, ApiLimits, MembershipResult, RebuildResult } from '../types.js';
import type { OnwmMode } from '../../peer/admin.js';
import { configAdminRoute } from './config.js';
import { pgOpsAdminRoutes } from './pg-ops.js';
import {
  addPeerBodySchema,
  adminResultSchema,
  membershipResultSchema,
  peerIdParamsSchema,
  removePeerBodySchema,
  emptyBodySchema,
  emptyQuerySchema,
  errorBodySchema,
  freezeBodySchema,
  onwmBodySchema,
  promoteBodySchema,
  reapBodySchema,
  scheduleRestartBodySchema,
  rebuildResultSchema,
} from '../schemas.js';

/** The header manatee-adm sets to "user@host", so that the log says which operator acted. */
export const OPERATOR_HEADER = 'x-manatee-operator';
const OPERATOR_CHARS_MAX = 128;

const errors = { '4xx': errorBodySchema, '5xx': errorBodySchema } as const;

function who(req: FastifyRequest): { from: string; operator: string | null } {
  const raw = req.headers[OPERATOR_HEADER];
  const operator = typeof raw === 'string' ? raw.slice(0, OPERATOR_CHARS_MAX).replace(/[^\x20-\x7e]/g, '?') : null;
  return { from: req.ip, operator };
}

async function logged<T extends AdminResult | RebuildResult | MembershipResult>(
  log: Logger,
  req: FastifyRequest,
  action: string,
  args: Record<string, unknown>,
  run: () => Promise<T>,
): Promise<T> {
  const base = { admin: action, args, ...who(req) };
  try {
    const result = await run();
    if ('members' in result) {
      log.info({ ...base, result: 'ok', voters: result.members.voters, learners: result.members.learners }, `admin ${action}: ${result.summary}`);
    } else if ('summary' in result) {
      log.info({ ...base, result: 'ok', version: result.version, generation: result.state.generation }, `admin ${action}: ${result.summary}`);
    } else {
      log.info({ ...base, result: result.started ? 'started' : 'not started' }, `admin ${action}: ${result.message}`);
    }
    return result;
  } catch (err) {
    const code = err instanceof ManateeError ? err.code : 'MANATEE_ERR_INTERNAL';
    const message = errorMessage(err);
    const refused = statusForCode(code) < 500;
    log[refused ? 'warn' : 'error']({ ...base, result: refused ? 'refused' : 'failed', code, err: refused ? undefined : err }, `admin ${action}: ${code}: ${message}`);
    throw err;
  }
}

export function adminRoutes(deps: ApiDeps, limits: ApiLimits): FastifyPluginAsync {
  const checker = tokenChecker(deps.adminTokens ?? deps.adminToken);
  const limiter = new AuthFailureLimiter({ failuresMax: limits.authFailuresMax, windowMs: limits.authFailureWindowMs, addressesMax: limits.authFailureAddressesMax });
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    const log = deps.logger;

    // onRequest: before the body is read, so that nobody without the token gets it parsed.
    // A wrong token counts against its address; past the limit the address gets 429 before its
    // token is even compared.
    app.addHook('onRequest', (req, _reply, done) => {
      const waitMs = limiter.blockedForMs(req.ip);
      if (waitMs > 0) {
        const retryAfterS = Math.ceil(waitMs / 1000);
        log.warn({ admin: req.url, ...who(req), result: 'throttled', code: 'MANATEE_ERR_TOO_MANY_AUTH_FAILURES', retryAfterS },
          `admin request throttled: ${limits.authFailuresMax} wrong tokens from ${req.ip} within ${limits.authFailureWindowMs} ms`);
        done(new ApiError('MANATEE_ERR_TOO_MANY_AUTH_FAILURES',
          `too many wrong admin tokens from ${req.ip} (${limits.authFailuresMax} within ${limits.authFailureWindowMs / 1000} s): retry in ${retryAfterS} s`, { retryAfterS }));
        return;
      }
      try {
        checker.check(req.headers.authorization);
        done();
      } catch (err) {
        const code = err instanceof ManateeError ? err.code : 'MANATEE_ERR_INTERNAL';
        if (code === 'MANATEE_ERR_FORBIDDEN') limiter.recordFailure(req.ip);
        log.warn({ admin: req.url, ...who(req), result: 'denied', code }, `admin request denied: ${code}`);
        done(err as Error);
      }
    });

    const write = { querystring: emptyQuerySchema, response: { 200: adminResultSchema, ...errors } } as const;

    app.post<{ Body: { reason: string } }>('/freeze', { schema: { ...write, body: freezeBodySchema } }, (req) =>
      logged(log, req, 'freeze', { reason: req.body.reason }, () => deps.admin.freeze(req.body.reason)),
    );

    app.post('/unfreeze', { schema: { ...write, body: emptyBodySchema } }, (req) =>
      logged(log, req, 'unfreeze', {}, () => deps.admin.unfreeze()),
    );

    app.post<{ Body: { peerId: string; expireMs?: number; at?: string } }>('/promote', { schema: { ...write, body: promoteBodySchema } }, (req) => {
      const input = {
        peerId: req.body.peerId,
        ...(req.body.expireMs === undefined ? {} : { expireMs: req.body.expireMs }),
        ...(req.body.at === undefined ? {} : { at: req.body.at }),
      };
      return logged(log, req, 'promote', input, () => deps.admin.promote(input));
    });

    app.post('/clear-promote', { schema: { ...write, body: emptyBodySchema } }, (req) =>
      logged(log, req, 'clear-promote', {}, () => deps.admin.clearPromote()),
    );

    app.post<{ Body: { at: string; pending?: boolean; peer?: string } }>('/restart-schedule', { schema: { ...write, body: scheduleRestartBodySchema } }, (req) => {
      const input = { at: req.body.at, pending: req.body.pending === true, ...(req.body.peer === undefined ? {} : { peer: req.body.peer }) };
      return logged(log, req, 'restart-schedule', input, () => deps.admin.scheduleRestart(input));
    });

    app.post('/clear-restart', { schema: { ...write, body: emptyBodySchema } }, (req) =>
      logged(log, req, 'clear-restart', {}, () => deps.admin.clearRestart()),
    );

    app.post<{ Body: { peerId: string } }>('/reap', { schema: { ...write, body: reapBodySchema } }, (req) =>
      logged(log, req, 'reap', { peerId: req.body.peerId }, () => deps.admin.reap(req.body.peerId)),
    );

    app.post<{ Body: { on?: boolean; mode?: OnwmMode } }>('/onwm', { schema: { ...write, body: onwmBodySchema } }, (req) => {
      // The schema lets exactly one of the two through.
      const mode: OnwmMode = req.body.mode ?? (req.body.on === true ? 'on' : 'off');
      return logged(log, req, 'onwm', { mode }, () => deps.admin.setOnwm(mode));
    });

    const membership = { response: { 200: membershipResultSchema, ...errors } } as const;

    // Raft membership: add a learner and promote it to voter; remove a member. The node forwards
    // the change to the Raft leader, so that any peer's API takes it.
    app.post<{ Body: { id: string; address: string } }>('/peers', {
      schema: { ...membership, querystring: emptyQuerySchema, body: addPeerBodySchema },
    }, (req) => logged(log, req, 'add-peer', { id: req.body.id, address: req.body.address }, () => deps.membership.add(req.body.id, req.body.address)));

    app.delete<{ Params: { id: string } }>('/peers/:id', {
      schema: { ...membership, querystring: emptyQuerySchema, params: peerIdParamsSchema },
    }, (req) => logged(log, req, 'remove-peer', { id: req.params.id }, () => deps.membership.remove(req.params.id)));

    app.post<{ Body: { id: string } }>('/peers/remove', {
      schema: { ...membership, querystring: emptyQuerySchema, body: removePeerBodySchema },
    }, (req) => logged(log, req, 'remove-peer', { id: req.body.id }, () => deps.membership.remove(req.body.id)));

    if (deps.config !== undefined) configAdminRoute(app, deps.config.settings, log, who);
    if (deps.pgOps !== undefined) pgOpsAdminRoutes(app, deps.pgOps, log, who);

    app.post('/rebuild', {
      schema: { querystring: emptyQuerySchema, body: emptyBodySchema, response: { 200: rebuildResultSchema, ...errors } },
    }, (req) => logged(log, req, 'rebuild', {}, () => deps.admin.rebuild()));
  };
}
