// One rule for peer ids (src/model/peer.ts): the configuration file, the API's schemas, the
// backup server, the certificates and PostgreSQL's application_name all accept the same ids.
import { describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import { isPeerId } from '../../src/model/index.js';
import { parseConfig } from '../../src/peer/config.js';
import { peerIdSchema } from '../../src/api/schemas.js';
import { validatePeerId } from '../../src/postgres/config.js';
import { checkPeerId } from '../../src/tls/index.js';
import { hasCode } from '../../src/errors.js';

const GOOD = ['a', 'peer-1', 'Peer_2.example', '9', 'x'.repeat(63)];
const BAD = ['', '-a', '.a', '_a', '!manatee-no-sync', 'a b', 'a@b', 'a:b', 'a/b', 'a"b', "a'b", 'é', 'x'.repeat(64)];

function acceptedBy(check: (id: string) => void, id: string): boolean {
  try {
    check(id);
    return true;
  } catch {
    return false;
  }
}

function configAccepts(id: string): boolean {
  return acceptedBy((peerId) => parseConfig({
    peerId,
    host: '127.0.0.1',
    dataDir: '/var/lib/manatee/a',
    postgres: { port: 5432 },
    api: { port: 5433 },
    raft: { port: 5434, members: [{ id: peerId, address: '127.0.0.1:5434' }, { id: 'zz', address: '127.0.0.1:5444' }] },
    secret: 'a-shard-secret-of-16+',
    adminToken: 'an-admin-token-16+',
  }), id);
}

describe('the peer id rule', () => {
  const schema = new Ajv().compile(peerIdSchema);
  const checks: Record<string, (id: string) => boolean> = {
    'model isPeerId': (id) => isPeerId(id),
    'configuration file': configAccepts,
    'API schema': (id) => schema(id),
    'certificates (tls)': (id) => acceptedBy(checkPeerId, id),
    'PostgreSQL application_name': (id) => acceptedBy((x) => { validatePeerId(x, 'id'); }, id),
  };

  for (const [where, accepts] of Object.entries(checks)) {
    it(`${where} accepts the good ids and rejects the bad ones`, () => {
      expect(GOOD.filter((id) => !accepts(id))).toEqual([]);
      expect(BAD.filter((id) => accepts(id))).toEqual([]);
    });
  }

  it('names the rule in the error of each room', () => {
    let caught: unknown = null;
    try { validatePeerId('a@b', 'syncId'); } catch (err) { caught = err; }
    expect(hasCode(caught, 'MANATEE_ERR_PG_INVALID_OPTION')).toBe(true);
    expect((caught as Error).message).toContain('expected 1-63 characters of [A-Za-z0-9_.-]');
    expect(() => { checkPeerId('a@b'); }).toThrow(/peer id "a@b": expected 1-63 characters/);
  });

  it('is not a non-string', () => {
    expect(isPeerId(7)).toBe(false);
    expect(isPeerId(null)).toBe(false);
  });
});
