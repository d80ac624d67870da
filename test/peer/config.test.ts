import { describe, expect, it } from 'vitest';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseConfig } from '../../src/peer/config.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';

function minimal(): Record<string, unknown> {
  return {
    peerId: 'a',
    host: '127.0.0.1',
    dataDir: '/var/lib/manatee/a',
    postgres: { port: 5432 },
    api: { port: 5433 },
    raft: { port: 5434, members: [{ id: 'a', address: '127.0.0.1:5434' }, { id: 'b', address: '127.0.0.1:5444' }] },
    secret: 'a-shard-secret-of-16+',
    adminToken: 'an-admin-token-16+',
  };
}

function errorOf(input: unknown): string {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('MANATEE_ERR_CONFIG');
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('sitter configuration', () => {
  it('fills in defaults for a minimal valid file', () => {
    const c = parseConfig(minimal());
    expect(c.backend).toBe('basebackup');
    expect(c.postgres.user).toBe('postgres');
    expect(c.timeouts.sessionTimeoutMs).toBe(1500);
    expect(c.timeouts.keepaliveIntervalMs).toBe(300);
    expect(c.rebuild.automatic).toBe(true);
    expect(c.raft.tickMs).toBe(100);
    expect(c.raft.electionTicks).toBe(5);
    expect(c.raft.heartbeatTicks).toBe(2);
  });

  it('heartbeats about every 200 ms (every 2 ticks at 100 ms, every 4 at 50 ms), at least 2.5 times per election timeout, below it, and keeps a heartbeatTicks that is given', () => {
    const withRaft = (extra: Record<string, unknown>) => {
      const input = minimal();
      input['raft'] = { ...(input['raft'] as object), ...extra };
      return parseConfig(input).raft;
    };
    expect(withRaft({}).heartbeatTicks).toBe(2);
    expect(withRaft({ electionTicks: 2 }).heartbeatTicks).toBe(1);
    expect(withRaft({ electionTicks: 3 }).heartbeatTicks).toBe(1);
    expect(withRaft({ electionTicks: 4 }).heartbeatTicks).toBe(1);
    expect(withRaft({ tickMs: 50, electionTicks: 10 }).heartbeatTicks).toBe(4);
    expect(withRaft({ tickMs: 50, electionTicks: 5 }).heartbeatTicks).toBe(2);
    expect(withRaft({ tickMs: 50, electionTicks: 2 }).heartbeatTicks).toBe(1);
    expect(withRaft({ tickMs: 10, electionTicks: 10 }).heartbeatTicks).toBe(4);
    expect(withRaft({ tickMs: 250 }).heartbeatTicks).toBe(1);
    expect(withRaft({ heartbeatTicks: 1 }).heartbeatTicks).toBe(1);
    expect(() => withRaft({ electionTicks: 4, heartbeatTicks: 4 })).toThrow(/raft.heartbeatTicks: must be less than raft.electionTicks/);
  });

  it('does not modify the object it was given', () => {
    const input = minimal();
    parseConfig(input);
    expect(input).not.toHaveProperty('backend');
  });

  it('names a missing required field', () => {
    const input = minimal();
    delete input['secret'];
    expect(errorOf(input)).toContain('secret: is missing');
  });

  it('names a nested field of the wrong type', () => {
    const input = minimal();
    input['postgres'] = { port: 'five' };
    expect(errorOf(input)).toContain('postgres.port: must be integer');
  });

  it('names an array element by index', () => {
    const input = minimal();
    input['raft'] = { port: 5434, members: [{ id: 'a', address: '127.0.0.1:5434' }, { id: 'b', address: 'nope' }] };
    expect(errorOf(input)).toContain('raft.members[1].address');
  });

  it('rejects an unknown (misspelt) setting', () => {
    const input = minimal();
    input['timeouts'] = { sesionTimeoutMs: 5 };
    expect(errorOf(input)).toContain('timeouts.sesionTimeoutMs: is not a known setting');
  });

  it('lists the allowed values of an enum', () => {
    const input = minimal();
    input['backend'] = 'btrfs';
    expect(errorOf(input)).toContain('backend: must be one of ["zfs","basebackup"]');
  });

  it('requires this peer among the Raft members', () => {
    const input = minimal();
    input['peerId'] = 'c';
    expect(errorOf(input)).toContain('raft.members: must include this peer (peerId "c")');
  });

  it('requires the zfs section with the zfs backend', () => {
    const input = minimal();
    input['backend'] = 'zfs';
    expect(errorOf(input)).toContain('zfs: is missing');
  });

  it('rejects a keepalive interval too long for the session timeout', () => {
    const input = minimal();
    input['timeouts'] = { sessionTimeoutMs: 1000, keepaliveIntervalMs: 800 };
    expect(errorOf(input)).toContain('timeouts.keepaliveIntervalMs');
  });

  it('takes client networks for pg_hba.conf and names a bad one', () => {
    const input = minimal();
    input['postgres'] = { port: 5432, clientCidrs: ['10.0.0.0/24', 'fd00::/64'] };
    expect(parseConfig(input).postgres.clientCidrs).toEqual(['10.0.0.0/24', 'fd00::/64']);
    input['postgres'] = { port: 5432, clientCidrs: ['10.0.0.0/24', '10.0.0.0/40'] };
    expect(errorOf(input)).toContain('postgres.clientCidrs[1]: "10.0.0.0/40" is not a network');
    input['postgres'] = { port: 5432, clientCidrs: [] };
    expect(errorOf(input)).toContain('postgres.clientCidrs');
  });

  it('takes the TLS files (absolute paths, all three) and names a bad one', () => {
    const input = minimal();
    input['tls'] = { caFile: '/etc/manatee/ca.crt', certFile: '/etc/manatee/a.crt', keyFile: '/etc/manatee/a.key' };
    expect(parseConfig(input).tls).toEqual({ caFile: '/etc/manatee/ca.crt', certFile: '/etc/manatee/a.crt', keyFile: '/etc/manatee/a.key' });
    input['tls'] = { caFile: 'ca.crt', certFile: '/etc/manatee/a.crt', keyFile: '/etc/manatee/a.key' };
    expect(errorOf(input)).toContain('tls.caFile');
    input['tls'] = { caFile: '/etc/manatee/ca.crt', certFile: '/etc/manatee/a.crt' };
    expect(errorOf(input)).toContain('keyFile');
  });

  it('takes peer tags and names a bad one', () => {
    const input = minimal();
    input['tags'] = { nofailover: true, noloadbalance: false, priority: 7 };
    expect(parseConfig(input).tags).toEqual({ nofailover: true, noloadbalance: false, priority: 7 });
    input['tags'] = { nofailover: 'yes' };
    expect(errorOf(input)).toContain('tags.nofailover: must be boolean');
    input['tags'] = { priority: 5000 };
    expect(errorOf(input)).toContain('tags.priority: must be <= 1000');
    input['tags'] = { priority: 1.5 };
    expect(errorOf(input)).toContain('tags.priority: must be integer');
    input['tags'] = { nofailvoer: true };
    expect(errorOf(input)).toContain('tags.nofailvoer: is not a known setting');
  });

  it('rejects colliding ports', () => {
    const input = minimal();
    input['api'] = { port: 5432 };
    expect(errorOf(input)).toContain('must be different ports');
  });

  it('reports a file that is not JSON with its path', async () => {
    const tmp = await makeTmpDir('config');
    try {
      const path = join(tmp.path, 'bad.json');
      await writeFile(path, '{ "peerId": ', { mode: 0o600 });
      await expect(loadConfig(path)).rejects.toThrow(`configuration file ${path} is not valid JSON`);
      await expect(loadConfig(join(tmp.path, 'missing.json'))).rejects.toThrow('cannot read configuration file');
      const good = join(tmp.path, 'good.json');
      await writeFile(good, JSON.stringify(minimal()), { mode: 0o600 });
      expect((await loadConfig(good)).peerId).toBe('a');
    } finally {
      await tmp.cleanup();
    }
  });

  it('refuses a configuration file that group or others can read, naming the file and its mode', async () => {
    const tmp = await makeTmpDir('config');
    try {
      const path = join(tmp.path, 'open.json');
      await writeFile(path, JSON.stringify(minimal()), { mode: 0o600 });
      for (const mode of [0o640, 0o604, 0o644]) {
        await chmod(path, mode);
        const err = await loadConfig(path).then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(ConfigError);
        expect(err).toMatchObject({ code: 'MANATEE_ERR_CONFIG_MODE' });
        expect((err as Error).message).toBe(
          `configuration file ${path} has mode 0${mode.toString(8)}: it holds the shard secret and the admin token, so it must not be readable by group or others (chmod 600 ${path})`);
      }
      await chmod(path, 0o400);
      expect((await loadConfig(path)).peerId).toBe('a');
    } finally {
      await tmp.cleanup();
    }
  });
});
