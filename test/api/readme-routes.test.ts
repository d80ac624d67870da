// README's route table ("Operating a shard") against the routes a sitter's API really serves:
// the API built with every optional part a sitter can wire (the shard settings, PostgreSQL's
// reload and restart, the zfs backend's backup routes), its routes read from /openapi.json (made
// by fastify's onRoute hook, so it lists every registered route). A route served but missing from
// the table fails, and so does a row naming a route that is not served.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createApi } from '../../src/api/server.js';
import { backupRoutes } from '../../src/backup/index.js';
import { Zfs } from '../../src/zfs/index.js';
import { MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';

const REPO = join(import.meta.dirname, '..', '..');

/**
 * The routes of one table cell, in README's shorthand: groups split by ";"; in a group, methods
 * ("`GET`, `HEAD` or `OPTIONS /x`") apply to every path; a path starting with "/" is whole, a bare
 * name is beside the group's first path ("`POST /admin/freeze`, `unfreeze`").
 */
export function routesOfCell(cell: string): string[] {
  const out: string[] = [];
  for (const group of cell.split(';')) {
    const methods: string[] = [];
    let dir = '';
    for (const [, token] of group.matchAll(/`([^`]+)`/g)) {
      const t = token!.replace(/\?.*$/, '');
      const withMethod = /^([A-Z]+) (\/\S*)$/.exec(t);
      let path: string;
      if (/^[A-Z]+$/.test(t)) {
        methods.push(t);
        continue;
      } else if (withMethod !== null) {
        methods.push(withMethod[1]!);
        path = withMethod[2]!;
        dir = path.slice(0, path.lastIndexOf('/'));
      } else if (t.startsWith('/')) {
        path = t;
      } else {
        path = `${dir}/${t}`;
      }
      for (const m of methods) out.push(`${m} ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return out;
}

async function readmeRoutes(): Promise<string[]> {
  const text = await readFile(join(REPO, 'README.md'), 'utf8');
  const start = text.indexOf('| route | what |\n');
  expect(start).toBeGreaterThan(0);
  const rows = text.slice(start).split('\n\n')[0]!.split('\n').slice(2);
  // fastify answers HEAD for every GET by itself; the table names it for the health checks only.
  return rows.flatMap((r) => routesOfCell(r.split(' | ')[0]!.replace(/^\| /, ''))).filter((r) => !r.startsWith('HEAD '));
}

async function servedRoutes(): Promise<string[]> {
  const peers = ['a', 'b', 'c'].map((id) => peer(id));
  const store = new MemoryStore(threePeerState(peers), peers);
  const pgOp = () => Promise.resolve({ peerId: 'a', action: 'reloaded' as const, pendingRestart: [], message: '' });
  let app: FastifyInstance | null = null;
  try {
    app = await createApi({
      ...memoryDeps({ self: peers[0]!, store }),
      config: {
        settings: { read: () => Promise.resolve({ settings: {}, version: 0 }), change: () => Promise.reject(new Error('not in this test')) },
        pgSettingRows: () => Promise.resolve([]),
      },
      pgOps: { reload: pgOp, restart: pgOp },
      extraPlugins: [async (a: FastifyInstance) => {
        await a.register(backupRoutes, { zfs: new Zfs({ log: pino({ level: 'silent' }) }), dataset: 'none/none', secret: 'a-shard-secret-of-some-length', log: pino({ level: 'silent' }) });
      }],
    });
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
    return Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
  } finally {
    await app?.close();
  }
}

describe('README route table', () => {
  it('reads the shorthand of a cell', () => {
    expect(routesOfCell('`GET /state`, `/history?limit=N`, `/peers`')).toEqual(['GET /state', 'GET /history', 'GET /peers']);
    expect(routesOfCell('`POST /admin/freeze`, `unfreeze`, `peers/remove`; `DELETE /admin/peers/:id`'))
      .toEqual(['POST /admin/freeze', 'POST /admin/unfreeze', 'POST /admin/peers/remove', 'DELETE /admin/peers/{id}']);
    expect(routesOfCell('`GET`, `HEAD` or `OPTIONS /primary`, `/sync`; `OPTIONS /`'))
      .toEqual(['GET /primary', 'HEAD /primary', 'OPTIONS /primary', 'GET /sync', 'HEAD /sync', 'OPTIONS /sync', 'OPTIONS /']);
  });

  it('lists every route a sitter serves, and none that it does not', async () => {
    const [readme, served] = await Promise.all([readmeRoutes(), servedRoutes()]);
    // The admin config, PostgreSQL and backup routes are there: the API was built with every part.
    expect(served).toEqual(expect.arrayContaining(['POST /admin/config', 'POST /admin/restart-postgres', 'GET /backup/jobs/{id}/stream']));
    expect({ missingFromReadme: served.filter((r) => !readme.includes(r)).sort(), notServed: readme.filter((r) => !served.includes(r)).sort() })
      .toEqual({ missingFromReadme: [], notServed: [] });
  });
});
