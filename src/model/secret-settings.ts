// PostgreSQL settings whose value may hold a credential (issue 15): an operator's shard setting
// such as archive_command = 'aws s3 cp ... --secret ...', or an extension's password setting.
// The routes that answer without the admin token (GET /config, /status, /shard) and the logs show
// such a value as "[redacted]"; GET /admin/config, behind the token, shows it whole (manatee-adm
// config show and edit use it). By name, because the value's shape cannot tell: every *_command (archive_command,
// restore_command, archive_cleanup_command, recovery_end_command, ssl_passphrase_command), every
// *conninfo, and any name that says password, passphrase, secret, token, credential or key
// (an extension's "myext.api_key").

export const SETTING_REDACTED = '[redacted]';

const SECRET_NAME = /(?:_command|conninfo)$|password|passphrase|secret|token|credential|(?:^|[._])(?:api_?|access_?|private_?)?key(?:$|[._])/;

export function isSecretSetting(name: string): boolean {
  return SECRET_NAME.test(name.toLowerCase());
}

/** The settings with each secret-looking value replaced by REDACTED, and the names replaced. */
export function redactSettings(settings: Readonly<Record<string, string>>): { settings: Record<string, string>; redacted: string[] } {
  const out: Record<string, string> = {};
  const redacted: string[] = [];
  for (const [name, value] of Object.entries(settings)) {
    if (isSecretSetting(name) && value !== '') {
      out[name] = SETTING_REDACTED;
      redacted.push(name);
    } else {
      out[name] = value;
    }
  }
  return { settings: out, redacted };
}

/** `text` (a change's summary) with every value of a secret-looking setting in `maps` replaced by "[redacted]", for a log line. */
export function redactValuesIn(text: string, ...maps: readonly Readonly<Record<string, string>>[]): string {
  const values = new Set<string>();
  for (const m of maps) for (const [name, v] of Object.entries(m)) if (isSecretSetting(name) && v !== '') values.add(v);
  // Longest first, so that a value holding another is replaced whole.
  return [...values].sort((a, b) => b.length - a.length).reduce((t, v) => t.split(v).join(SETTING_REDACTED), text);
}
