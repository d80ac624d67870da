// GET /openapi.json: an OpenAPI 3.1 document generated from the routes as they are registered
// (fastify's onRoute hook sees every route with its schema), so that it cannot drift from the
// schemas that validate requests and serialize answers. OpenAPI 3.1 takes JSON Schema as is.
import type { RouteOptions } from 'fastify';

interface CollectedRoute {
  readonly method: string;
  readonly url: string;
  readonly schema: Readonly<Record<string, unknown>>;
}

type JsonSchema = Readonly<Record<string, unknown>>;

const SUMMARIES: Readonly<Record<string, string>> = {
  'GET /ping': 'This peer answers',
  'GET /status': 'This peer: role, PostgreSQL, replication, Raft, last decision, rebuild, heartbeat',
  'GET /shard': 'Every peer with role, health, LSNs, and lag in bytes and seconds per replication link',
  'GET /state': 'The committed cluster state and its version',
  'GET /history': 'The newest cluster state changes, oldest first',
  'GET /peers': 'The active peers (open sessions)',
  'GET /members': 'The Raft group\'s voters and learners',
  'GET /watch': 'Server-sent events: each committed state change ("state") and active peers change ("peers")',
  'GET /metrics': 'Prometheus metrics (text format)',
  'GET /primary': 'Health: 200 on the writable primary, else 503',
  'GET /read-write': 'Health: 200 on the writable primary, else 503',
  'GET /replica': 'Health: 200 on a standby (within ?lag=), else 503',
  'GET /sync': 'Health: 200 on the sync (within ?lag=), else 503',
  'GET /async': 'Health: 200 on an async (within ?lag=), else 503',
  'GET /read-only': 'Health: 200 on a peer that serves reads, else 503',
  'GET /health': 'Health: 200 when PostgreSQL is up, else 503',
  'OPTIONS /': 'Health: as GET /primary (HAProxy\'s bare "option httpchk" sends OPTIONS /; GET / is the status page)',
  'GET /openapi.json': 'This document',
  'POST /admin/freeze': 'Freeze: no generation change until unfreeze',
  'POST /admin/unfreeze': 'Unfreeze',
  'POST /admin/promote': 'Planned switchover to a named peer, with an expiry',
  'POST /admin/clear-promote': 'Withdraw a promotion request',
  'POST /admin/reap': 'Forget a deposed peer that is gone for good',
  'POST /admin/onwm': 'One-node-write mode on or off by operator, or back to the peers\' configuration',
  'POST /admin/rebuild': 'Rebuild this peer from its upstream',
  'POST /admin/peers': 'Add a peer to the Raft group (learner, then voter)',
  'DELETE /admin/peers/{id}': 'Remove a peer from the Raft group',
  'POST /admin/peers/remove': 'Remove a peer from the Raft group',
};

function parametersOf(where: 'query' | 'path', schema: unknown): Record<string, unknown>[] {
  const s = schema as { properties?: Record<string, JsonSchema>; required?: readonly string[] } | undefined;
  if (s?.properties === undefined) return [];
  return Object.entries(s.properties).map(([name, p]) => ({
    name,
    in: where,
    required: where === 'path' || (s.required ?? []).includes(name),
    schema: p,
  }));
}

function responsesOf(schema: unknown, url: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const r = (schema ?? {}) as Record<string, JsonSchema>;
  for (const [status, body] of Object.entries(r)) {
    const key = status.toUpperCase(); // '4xx' → '4XX', as OpenAPI spells ranges
    const text = url === '/watch' && status === '200';
    out[key] = {
      description: status.startsWith('2') ? 'success' : status === '503' ? 'not serving that role (same body)' : 'error: {error: {code, message}}',
      content: text ? { 'text/event-stream': { schema: { type: 'string' } } } : { 'application/json': { schema: body } },
    };
  }
  if (url === '/metrics') out['200'] = { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } };
  if (Object.keys(out).length === 0) out['200'] = { description: 'success' };
  return out;
}

export class OpenApiCollector {
  private readonly routes: CollectedRoute[] = [];

  /** fastify's onRoute hook. */
  readonly onRoute = (route: RouteOptions): void => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD') continue; // fastify's automatic HEAD of each GET
      this.routes.push({ method, url: route.url, schema: (route.schema ?? {}) as Record<string, unknown> });
    }
  };

  document(info: { title: string; version: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const r of this.routes) {
      const url = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      const op: Record<string, unknown> = {
        // OPTIONS on a health check answers as its GET (Patroni's convention, for HAProxy).
        summary: SUMMARIES[`${r.method} ${url}`] ?? (r.method === 'OPTIONS' ? SUMMARIES[`GET ${url}`] : undefined) ?? `${r.method} ${url}`,
        parameters: [...parametersOf('query', r.schema['querystring']), ...parametersOf('path', r.schema['params'])],
        responses: responsesOf(r.schema['response'], url),
      };
      if (url.startsWith('/admin/')) op['security'] = [{ adminToken: [] }];
      if (r.schema['body'] !== undefined) op['requestBody'] = { required: false, content: { 'application/json': { schema: r.schema['body'] } } };
      paths[url] = { ...paths[url], [r.method.toLowerCase()]: op };
    }
    return {
      openapi: '3.1.0',
      info: { ...info, description: 'The Manatee sitter\'s HTTP API. Admin routes need "Authorization: Bearer <admin token>".' },
      components: { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } } },
      paths,
    };
  }
}
