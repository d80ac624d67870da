// The sitter's HTTP API (fastify). createApi() builds the server without listening: the sitter
// calls listen() on its configured address, and tests on an ephemeral port.
//
// Layout, meant to grow (issue 6): one plugin per group of routes under src/api/routes/, schemas
// in schemas.ts, one error handler that turns every failure into {error: {code, message}}.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Server as TlsServer } from 'node:tls';
import { ManateeError, errorMessage } from '../errors.js';
import { guardConnections } from './connection-guard.js';
import { ApiError, errorBody, statusForCode } from './errors.js';
import { ApiMetrics } from './metrics.js';
import { OpenApiCollector } from './openapi.js';
import { adminRoutes } from './routes/admin.js';
import { healthRoutes } from './routes/health.js';
import { pageRoutes } from './routes/page.js';
import { emptyQuerySchema, errorBodySchema } from './schemas.js';
import { readRoutes } from './routes/read.js';
import { configRoutes } from './routes/config.js';
import { watchRoutes } from './routes/watch.js';
import { API_LIMITS_DEFAULT, type ApiDeps, type ApiLimits } from './types.js';
import { createValidatorCompiler } from './validation.js';

/** The version of the API's contract in /openapi.json. */
export const API_VERSION = '1.0.0';
/** Receiving one request may take this long; answers (backup streams) are not limited by it. */
const REQUEST_TIMEOUT_MS = 60_000;
/** An election takes about a second: a caller told 503 may retry after this. */
const RETRY_AFTER_S = 1;

function isFastifyError(err: unknown): err is FastifyError {
  return err instanceof Error && typeof (err as Partial<FastifyError>).code === 'string' && (err as Partial<FastifyError>).code!.startsWith('FST_');
}

/** Any thrown value as an ApiError-like pair of code and message. */
function classify(err: unknown): { code: string; message: string } {
  if (err instanceof ManateeError) return { code: err.code, message: err.message };
  if (isFastifyError(err)) {
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return { code: 'MANATEE_ERR_BODY_TOO_LARGE', message: err.message };
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return { code: 'MANATEE_ERR_UNSUPPORTED_MEDIA_TYPE', message: `${err.message}; send application/json` };
      default:
        // Malformed JSON, an empty JSON body, a bad header...: the client's mistake, said by fastify.
        if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
          return { code: 'MANATEE_ERR_BAD_REQUEST', message: err.message };
        }
    }
  }
  return { code: 'MANATEE_ERR_INTERNAL', message: 'internal error (see the sitter log)' };
}

export async function createApi(deps: ApiDeps): Promise<FastifyInstance> {
  const limits: ApiLimits = { ...API_LIMITS_DEFAULT, ...deps.limits };
  const log = deps.logger.child({ room: 'api' });
  // The pino Logger is a FastifyBaseLogger; typed as such, so that callers and plugins see the
  // plain FastifyInstance rather than one parameterised by pino's Logger.
  const fastifyLog: FastifyBaseLogger = log;
  const options = {
    loggerInstance: fastifyLog,
    // Admin actions and failures are logged by the routes; a line per request would drown them.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.bodyLimitBytes,
    requestTimeout: REQUEST_TIMEOUT_MS,
    // Half-open and slow clients (a flood of sockets that never send a request) are cut after
    // headersTimeoutMs, checked every second, so they cannot hold the connection slots for long.
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs) },
    return503OnClosing: true,
    // Errors fastify meets before routing (a URL that does not decode, a bad header) get our body too.
    frameworkErrors: (err: FastifyError, _req: unknown, res: unknown) => {
      const reply = res as FastifyReply;
      const known = classify(err);
      // Whatever fastify meets before routing is the request's fault (a URL that does not decode...).
      const { code, message } = known.code === 'MANATEE_ERR_INTERNAL' ? { code: 'MANATEE_ERR_BAD_REQUEST', message: err.message } : known;
      void reply.code(statusForCode(code)).send(errorBody(code, message));
    },
  };
  // With TLS: HTTPS, TLS 1.3 at least. A client may present a certificate (the other peers do,
  // and the backup routes require one); applications and load balancers need none.
  const tls = deps.tls;
  const app: FastifyInstance = tls === undefined
    ? Fastify(options)
    : (Fastify({ ...options, https: {
      ...tls.material.options, requestCert: true, rejectUnauthorized: false,
      headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
      // A handshake that never ends holds a connection slot: no longer than a request may take to come.
      handshakeTimeout: limits.headersTimeoutMs,
    } }));
  if (tls !== undefined) {
    const detach = tls.attach(app.server as unknown as Pick<TlsServer, 'setSecureContext'>);
    app.addHook('onClose', (_app, done) => {
      detach();
      done();
    });
  }
  app.setValidatorCompiler(createValidatorCompiler());
  guardConnections(app.server, { connectionsMax: limits.connectionsMax, headersTimeoutMs: limits.headersTimeoutMs, log });

  app.setErrorHandler((err, req, reply) => {
    const { code, message } = classify(err);
    const status = statusForCode(code);
    if (status >= 500 && status !== 503) {
      // A bug or an unlisted failure: the caller gets the code, the log gets the details.
      log.error({ err, code, method: req.method, url: req.url }, `request failed: ${errorMessage(err)}`);
    }
    // 503 is temporary (no Raft leader, an election in progress): say when to come back.
    if (err instanceof ApiError && err.retryAfterS !== undefined) void reply.header('retry-after', String(err.retryAfterS));
    else if (status === 503) void reply.header('retry-after', String(RETRY_AFTER_S));
    void reply.code(status).send(errorBody(code, message));
  });

  app.setNotFoundHandler((req, reply) => {
    const err = new ApiError('MANATEE_ERR_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0] ?? ''}`);
    void reply.code(404).send(errorBody(err.code, err.message));
  });

  const openapi = new OpenApiCollector();
  app.addHook('onRoute', openapi.onRoute);
  const metrics = deps.metrics ?? new ApiMetrics();
  // Primary changes are counted as they commit, not only when a scrape happens to see one.
  const unwatch = deps.watch((e) => { if (e.type === 'state') metrics.observeState(e.state); });
  app.addHook('onClose', (_app, done) => {
    unwatch();
    done();
  });

  const routeDeps = { ...deps, logger: log };
  await app.register(readRoutes(routeDeps, limits, metrics));
  if (deps.config !== undefined) await app.register(configRoutes(deps.config));
  await app.register(healthRoutes(routeDeps, limits));
  await app.register(watchRoutes(routeDeps, limits));
  await app.register(pageRoutes());
  await app.register(adminRoutes(routeDeps, limits), { prefix: '/admin' });
  // Registered before the document is made, so that it lists itself; made at the first request,
  // when every route (the plugins' too) is known.
  let doc: Record<string, unknown> | null = null;
  app.get('/openapi.json', {
    schema: { querystring: emptyQuerySchema, response: { '4xx': errorBodySchema, '5xx': errorBodySchema } },
  }, () => (doc ??= openapi.document({ title: 'Manatee sitter API', version: API_VERSION })));
  for (const plugin of deps.extraPlugins ?? []) await app.register(plugin);
  return app;
}
