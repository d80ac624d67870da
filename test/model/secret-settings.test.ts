import { describe, expect, it } from 'vitest';
import { isSecretSetting, redactSettings, redactValuesIn, SETTING_REDACTED } from '../../src/model/index.js';

describe('settings that may hold a credential', () => {
  it('are the commands, the connection strings, and names that say password, secret, token or key', () => {
    for (const n of ['archive_command', 'restore_command', 'archive_cleanup_command', 'recovery_end_command', 'ssl_passphrase_command',
      'primary_conninfo', 'myext.password', 'myext.api_key', 'myext.apikey', 'myext.access_key', 'pgsodium.secret', 'auth.token', 'myext.key', 'Archive_Command']) {
      expect({ n, secret: isSecretSetting(n) }).toEqual({ n, secret: true });
    }
    for (const n of ['work_mem', 'shared_buffers', 'archive_mode', 'archive_timeout', 'log_min_duration_statement', 'keep_alive', 'monkey', 'tcp_keepalives_idle']) {
      expect({ n, secret: isSecretSetting(n) }).toEqual({ n, secret: false });
    }
  });

  it('are redacted by value, and named; an empty value is left as it is', () => {
    expect(redactSettings({ work_mem: '64MB', archive_command: 'aws s3 cp %p s3://b/%f --key abc', restore_command: '' })).toEqual({
      settings: { work_mem: '64MB', archive_command: SETTING_REDACTED, restore_command: '' },
      redacted: ['archive_command'],
    });
  });

  it('are taken out of a change summary for the log, old and new values alike', () => {
    expect(redactValuesIn('archive_command cp %p /a --key k1 -> cp %p /a --key k2, work_mem 4MB -> 8MB',
      { archive_command: 'cp %p /a --key k1', work_mem: '4MB' }, { archive_command: 'cp %p /a --key k2', work_mem: '8MB' }))
      .toBe('archive_command [redacted] -> [redacted], work_mem 4MB -> 8MB');
  });
});
