// GET /watch: server-sent events. The stream opens with the committed state as this peer has it
// now (`event: state`), then delivers each committed state change and each change of the active
// peers (`event: peers`), in commit order, with a comment line every few seconds so that idle
// connections stay open through proxies. The number of streams is bounded (503 past it), and a
// client that does not read is dropped rather than buffered without limit: it reconnects and
// starts again from the current state, which is always complete (no deltas to miss).
import type { FastifyPluginAsync } from 'fastify';
import type { ServerResponse } from 'node:http';
import { ManateeError } from '../../errors.js';
import { emptyQuerySchema, errorBodySchema } from '../schemas.js';
import type { ApiDeps, ApiLimits, WatchEvent } from '../types.js';

export class TooManyWatchersError extends ManateeError {
  constructor(max: number) {
    super('MANATEE_ERR_TOO_MANY_WATCHERS', `${max} watchers are already connected to this peer; retry later or watch another peer`);
  }
}

function frame(e: WatchEvent, id: number): string {
  const data = e.type === 'state' ? { state: e.state, version: e.version } : { peers: e.peers };
  return `id: ${id}\nevent: ${e.type}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function watchRoutes(deps: ApiDeps, limits: ApiLimits): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    const open = new Set<ServerResponse>();
    // Streams counted from the moment they pass the check: the check and the count must not be
    // separated by an await (the initial read), or every request in flight passes the check.
    let slots = 0;
    const log = deps.logger;

    // Before the server closes (it waits for open connections): end every stream.
    app.addHook('preClose', (done) => {
      for (const res of open) res.end();
      open.clear();
      done();
    });

    app.get('/watch', {
      schema: {
        querystring: emptyQuerySchema,
        response: { 200: { type: 'string', description: 'text/event-stream: events "state" ({state, version}) and "peers" ({peers})' }, '4xx': errorBodySchema, '5xx': errorBodySchema },
      },
    }, async (req, reply) => {
      if (slots >= limits.watchersMax) throw new TooManyWatchersError(limits.watchersMax);
      slots += 1;
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        slots -= 1;
      };
      // Subscribe first, read second: a change committed in between is buffered, not lost.
      const early: WatchEvent[] = [];
      let live: ((e: WatchEvent) => void) | null = null;
      const unsubscribe = deps.watch((e) => {
        if (live === null) {
          if (early.length < 1000) early.push(e);
        } else {
          live(e);
        }
      });
      let initial;
      try {
        initial = await deps.state();
      } catch (err) {
        unsubscribe();
        release();
        throw err;
      }
      const res = reply.raw;
      reply.hijack();
      if (res.destroyed || req.raw.destroyed) {
        // The client left during the read: its 'close' has been emitted already, nobody would free the slot.
        unsubscribe();
        release();
        res.destroy();
        return;
      }
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      open.add(res);
      let id = 0;
      let lastVersion = initial.version;
      let closed = false;
      const close = (why: string | null): void => {
        if (closed) return;
        closed = true;
        clearInterval(keepalive);
        unsubscribe();
        open.delete(res);
        release();
        if (why !== null) log.warn({ watch: 'dropped', from: req.ip, reason: why }, `watch stream dropped: ${why}`);
        res.end();
      };
      const send = (text: string): void => {
        if (closed) return;
        if (res.writableLength > limits.watchBufferBytesMax) {
          close(`the client has not read ${res.writableLength} bytes (limit ${limits.watchBufferBytesMax})`);
          return;
        }
        res.write(text);
      };
      live = (e) => {
        // A state event older than what was sent (the buffered ones) is skipped.
        if (e.type === 'state') {
          if (e.version <= lastVersion) return;
          lastVersion = e.version;
        }
        send(frame(e, ++id));
      };
      const keepalive = setInterval(() => { send(': keepalive\n\n'); }, limits.watchKeepaliveMs);
      res.on('close', () => { close(null); });
      res.on('error', () => { close(null); });
      send(`retry: 1000\n${frame({ type: 'state', state: initial.state, version: initial.version }, ++id)}`);
      const emit = live;
      for (const e of early) emit(e);
    });
  };
}
