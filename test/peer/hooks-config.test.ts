// The `hooks` section of the sitter's configuration: defaults, and errors that name the field.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/peer/config.js';

function minimal(hooks?: unknown): Record<string, unknown> {
  return {
    peerId: 'a',
    host: '127.0.0.1',
    dataDir: '/var/lib/manatee/a',
    postgres: { port: 5432 },
    api: { port: 5433 },
    raft: { port: 5434, members: [{ id: 'a', address: '127.0.0.1:5434' }] },
    secret: 'a-shard-secret-of-16+',
    adminToken: 'an-admin-token-16+',
    ...(hooks !== undefined ? { hooks } : {}),
  };
}

function errorOf(input: unknown): string {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('hooks configuration', () => {
  it('defaults to no hooks, a 10 s timeout and a one-minute heartbeat', () => {
    const c = parseConfig(minimal());
    expect(c.hooks).toEqual({ events: {}, timeoutMs: 10_000, killGraceMs: 1000, queueMax: 16, outputBytesMax: 4096, heartbeatIntervalMs: 60_000 });
  });

  it('accepts executables per event', () => {
    const c = parseConfig(minimal({ events: { primary_changed: ['/usr/local/bin/a', '/usr/local/bin/b'], heartbeat: ['/bin/true'] }, timeoutMs: 2000, heartbeatIntervalMs: 5000 }));
    expect(c.hooks?.events.primary_changed).toEqual(['/usr/local/bin/a', '/usr/local/bin/b']);
    expect(c.hooks?.timeoutMs).toBe(2000);
  });

  it('names an unknown event, a relative path and a bad number', () => {
    const msg = errorOf(minimal({ events: { primary_change: ['/bin/true'], sync_changed: ['notify.sh'] }, queueMax: -1 }));
    expect(msg).toContain('hooks.events.primary_change: is not a known setting');
    expect(msg).toContain('hooks.events.sync_changed[0]: must match pattern');
    expect(msg).toContain('hooks.queueMax: must be >= 0');
  });

  it('refuses a heartbeat interval shorter than the timeout when heartbeat hooks exist, and duplicates', () => {
    const msg = errorOf(minimal({ events: { heartbeat: ['/bin/true', '/bin/true'] }, timeoutMs: 10_000, heartbeatIntervalMs: 1000 }));
    expect(msg).toContain('hooks.heartbeatIntervalMs: must be at least hooks.timeoutMs (10000)');
    expect(msg).toContain('hooks.events.heartbeat: lists the same executable twice');
    // Without heartbeat hooks, a short interval is harmless.
    expect(() => parseConfig(minimal({ events: { peer_up: ['/bin/true'] }, heartbeatIntervalMs: 1000 }))).not.toThrow();
  });
});
