// Read-only routes: no token needed (DESIGN.md: "Read-only status endpoints do not").
import type { FastifyPluginAsync } from 'fastify';
import type { ApiMetrics } from '../metrics.js';
import { buildShardReport, fetchPeerStatusHttp, otherPeerStatuses } from '../shard.js';
import type { ApiDeps, ApiLimits } from '../types.js';
import {
  emptyQuerySchema,
  raftMembersSchema,
  shardReportSchema,
  errorBodySchema,
  historySchema,
  historyQuerySchema,
  peersSchema,
  sitterStatusSchema,
  versionedStateSchema,
} from '../schemas.js';

const errors = { '4xx': errorBodySchema, '5xx': errorBodySchema } as const;

export function readRoutes(deps: ApiDeps, limits: ApiLimits, metrics: ApiMetrics): FastifyPluginAsync {
  const fetchStatus = deps.fetchPeerStatus ?? ((apiUrl: string, timeoutMs: number) => fetchPeerStatusHttp(apiUrl, timeoutMs));
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.get('/ping', {
      schema: {
        querystring: emptyQuerySchema,
        response: {
          200: { type: 'object', required: ['ok', 'peerId'], properties: { ok: { type: 'boolean' }, peerId: { type: 'string' } } },
          ...errors,
        },
      },
    }, () => ({ ok: true, peerId: deps.peerId }));

    app.get('/status', { schema: { querystring: emptyQuerySchema, response: { 200: sitterStatusSchema, ...errors } } }, () => deps.status());

    app.get('/state', { schema: { querystring: emptyQuerySchema, response: { 200: versionedStateSchema, ...errors } } }, () => deps.state());

    app.get<{ Querystring: { limit: number } }>('/history', {
      schema: {
        querystring: historyQuerySchema(limits.historyLimitMax, limits.historyLimitDefault),
        response: {
          200: historySchema,
          ...errors,
        },
      },
    }, async (req) => ({ history: await deps.history(req.query.limit) }));

    app.get('/peers', {
      schema: {
        querystring: emptyQuerySchema,
        response: {
          200: peersSchema,
          ...errors,
        },
      },
    }, async () => {
      const tags = deps.activeTags?.() ?? {};
      return { peers: (await deps.activePeers()).map((p) => (tags[p.id] === undefined ? p : { ...p, tags: tags[p.id] })) };
    });

    app.get('/shard', { schema: { querystring: emptyQuerySchema, response: { 200: shardReportSchema, ...errors } } }, async () => {
      const asked = await deps.status();
      return buildShardReport(asked, await otherPeerStatuses(asked, fetchStatus, limits.peerStatusTimeoutMs));
    });

    app.get('/members', { schema: { querystring: emptyQuerySchema, response: { 200: raftMembersSchema, ...errors } } }, () => deps.membership.members());

    app.get('/metrics', {
      schema: { querystring: emptyQuerySchema, response: { '4xx': errorBodySchema, '5xx': errorBodySchema } },
    }, async (_req, reply) => {
      const text = await metrics.render(await deps.status());
      return reply.type(metrics.contentType).send(text);
    });
  };
}
