// The sitter's logger (createLogger) never writes a secret: every secret-bearing field is replaced
// wherever it sits in a line (a configuration, request headers, options), in children too.
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger, REDACTED } from '../../src/log.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';

describe('createLogger', () => {
  it('redacts the shard secret, tokens, passwords, private keys and secret headers', async () => {
    const tmp = await makeTmpDir('log');
    try {
      const file = join(tmp.path, 'sitter.log');
      const log = createLogger({ destination: file });
      const secrets = ['s-secret', 's-admin', 's-super', 's-repl', 's-auth', 's-header', 's-key', 's-pgpw', 's-deep', 's-rotated'];
      log.info({
        config: { secret: 's-secret', adminToken: 's-admin', secrets: ['s-rotated'], postgres: { superuserPassword: 's-super', replicationPassword: 's-repl' } },
        req: { headers: { authorization: 's-auth', 'x-manatee-secret': 's-header' } },
        tls: { key: 's-key' },
        env: { PGPASSWORD: 's-pgpw' },
        a: { b: { c: { password: 's-deep' } } },
        peerId: 'a',
      }, 'sitter opened');
      log.child({ room: 'api' }).warn({ headers: { authorization: 'Bearer s-auth' }, token: 's-admin' }, 'denied');
      const text = await readFile(file, 'utf8');
      for (const s of secrets) expect(text, s).not.toContain(s);
      const [first, second] = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, Record<string, unknown>>);
      expect(first?.['config']).toMatchObject({ secret: REDACTED, adminToken: REDACTED, secrets: REDACTED, postgres: { superuserPassword: REDACTED } });
      expect(first?.['peerId']).toBe('a');
      expect(second?.['token']).toBe(REDACTED);
    } finally {
      await tmp.cleanup();
    }
  });
});
