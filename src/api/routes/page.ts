// GET /: the status page (src/api/page/). Read-only, like every status route: no token.
import type { FastifyPluginAsync } from 'fastify';
import { STATUS_PAGE_HEADERS, STATUS_PAGE_HTML } from '../page/document.js';
import { errorBodySchema } from '../schemas.js';

export function pageRoutes(): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    // No querystring schema: a browser or a bookmark may add anything after '?', and the page ignores it.
    app.get('/', {
      schema: {
        response: {
          200: { type: 'string', description: 'text/html: the status page (topology, peers, generations; live over /watch)' },
          '4xx': errorBodySchema,
          '5xx': errorBodySchema,
        },
      },
    }, (_req, reply) => reply.headers(STATUS_PAGE_HEADERS).send(STATUS_PAGE_HTML));
  };
}
