// manatee-adm config: the shard-wide PostgreSQL settings (GET /config, POST /admin/config).
//   config show              each setting: the shard's value, and on each peer its value and where it comes from
//   config set n=v [n=v...]  checked against pg_settings of the primary; a bad one refuses the whole change
//   config unset n [n...]
//   config edit              $VISUAL or $EDITOR on the settings as YAML (or --format json); checked before the write
// The YAML is a flat mapping of name: value (the only shape settings have), read and written
// here without a YAML library.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { ShardReport } from '../../api/shard.js';
import type { SettingsResult } from '../../api/settings-ops.js';
import type { ShardSettings } from '../../store/settings.js';
import { ManateeError } from '../../errors.js';
import { AdmError, type AdmClient } from './client.js';
import { renderTable } from './render.js';

export interface ConfigIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** `name=value` from the command line; the value may hold '=' and spaces. */
export function parseAssignment(arg: string): [string, string] {
  const i = arg.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`${JSON.stringify(arg)} is not name=value`);
  return [arg.slice(0, i).trim(), arg.slice(i + 1).trim()];
}

const YAML_HEADER =
  '# Shard-wide PostgreSQL settings, one "name: value" per line. Delete a line to unset it.\n' +
  '# Checked against pg_settings of the primary when you save and quit; nothing is written if one is bad.\n';

function yamlQuote(v: string): string {
  return /^[A-Za-z0-9_.+-]+$/.test(v) && !/^(true|false|yes|no|on|off|null|~)$/i.test(v) ? v : `'${v.replace(/'/g, "''")}'`;
}

export function settingsToYaml(settings: ShardSettings): string {
  return YAML_HEADER + Object.entries(settings).map(([k, v]) => `${k}: ${yamlQuote(v)}\n`).join('');
}

/** A flat YAML mapping of name: value; an error names the line. */
export function settingsFromYaml(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/^\s+|\s+$/g, '');
    if (line === '' || line.startsWith('#') || line === '---' || line === '{}') return;
    const m = /^([A-Za-z_][A-Za-z0-9_$.]*)\s*:\s*(.*)$/.exec(line);
    if (m === null) throw new AdmError('MANATEE_ERR_USAGE', `line ${i + 1}: expected "name: value", got ${JSON.stringify(raw.slice(0, 80))}`);
    let v = m[2]!;
    if (v.startsWith("'")) {
      if (!/^'(?:[^']|'')*'\s*(#.*)?$/.test(v)) throw new AdmError('MANATEE_ERR_USAGE', `line ${i + 1}: unterminated quoted value`);
      v = /^'((?:[^']|'')*)'/.exec(v)![1]!.replace(/''/g, "'");
    } else if (v.startsWith('"')) {
      const q = /^"((?:[^"\\]|\\.)*)"\s*(#.*)?$/.exec(v);
      if (q === null) throw new AdmError('MANATEE_ERR_USAGE', `line ${i + 1}: unterminated quoted value`);
      v = JSON.parse(`"${q[1]!}"`) as string;
    } else {
      v = v.replace(/\s+#.*$/, '').trim();
    }
    const name = m[1]!.toLowerCase();
    if (out[name] !== undefined) throw new AdmError('MANATEE_ERR_USAGE', `line ${i + 1}: ${name} is set twice`);
    out[name] = v;
  });
  return out;
}

export function settingsFromJson(text: string): Record<string, string> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new AdmError('MANATEE_ERR_USAGE', `not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AdmError('MANATEE_ERR_USAGE', 'expected a JSON object of name: value');
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x === 'string') out[k.toLowerCase()] = x;
    else if (typeof x === 'number' || typeof x === 'boolean') out[k.toLowerCase()] = String(x);
    else throw new AdmError('MANATEE_ERR_USAGE', `${k}: expected a string, number or boolean value`);
  }
  return out;
}

/** The table of `config show`: one row per setting, one column per peer ("value (source)"). */
export function renderConfigShow(settings: ShardSettings, version: number, report: ShardReport): string {
  const peers = report.peers.filter((p) => p.role !== 'deposed' || p.reachable);
  const names = new Set(Object.keys(settings));
  for (const p of peers) for (const s of p.settings ?? []) names.add(s.name);
  const lines = [`shard settings: version ${version}, ${Object.keys(settings).length} set`];
  if (names.size === 0) return `${lines[0]!}\n(no shard settings and no per-peer overrides)`;
  const rows = [...names].sort().map((name) => [
    name,
    settings[name] ?? '-',
    ...peers.map((p) => {
      if (p.settings === null || p.settings === undefined) return '?';
      const s = p.settings.find((x) => x.name === name);
      if (s === undefined) return '?';
      const shown = s.value ?? s.running ?? '-';
      const rejected = (p.rejectedSettings ?? []).some((r) => r.name === name) ? ` REJECTED (runs with ${s.running ?? '-'})` : '';
      return `${shown} (${s.source})${s.pendingRestart ? ' PENDING RESTART' : ''}${rejected}`;
    }),
  ]);
  lines.push(renderTable(['NAME', 'SHARD', ...peers.map((p) => p.id.toUpperCase())], rows));
  const pending = peers.filter((p) => (p.pendingRestart ?? []).length > 0);
  for (const p of pending) lines.push(`${p.id}: pending restart: ${(p.pendingRestart ?? []).join(', ')} (manatee-adm restart --pending)`);
  for (const p of peers) for (const r of p.rejectedSettings ?? []) lines.push(`${p.id}: PostgreSQL refuses a setting: ${r.reason}`);
  return lines.join('\n');
}

function changedText(r: SettingsResult): string {
  const restart = r.restart.length === 0 ? '' : `; waiting for a restart of each peer: ${r.restart.join(', ')} (manatee-adm restart --pending)`;
  return `${r.summary} (shard settings version ${r.version})${restart}`;
}

/** Runs $VISUAL/$EDITOR (through sh, so that "code --wait" works) on `file`. */
function runEditor(env: ConfigIo['env'], file: string): void {
  const editor = env['VISUAL'] ?? env['EDITOR'] ?? 'vi';
  const r = spawnSync('sh', ['-c', `${editor} "$1"`, 'manatee-adm-editor', file], { stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.error !== undefined) throw new AdmError('MANATEE_ERR_EDITOR', `cannot run the editor ${JSON.stringify(editor)}: ${r.error.message}`);
  if (r.status !== 0) throw new AdmError('MANATEE_ERR_EDITOR', `the editor ${JSON.stringify(editor)} exited with status ${r.status ?? r.signal ?? '?'}; nothing was written`);
}

export function addConfigCommands(program: Command, io: ConfigIo, client: (cmd: Command) => AdmClient): void {
  const json = (v: unknown): void => { io.out(`${JSON.stringify(v, null, 2)}\n`); };
  const config = program.command('config').description('the shard-wide PostgreSQL settings: show, set, unset, edit (each peer reloads; postmaster settings wait for a restart)');

  config
    .command('show')
    .description('each shard setting, and on each peer its value and where it comes from (shard, peer overrides file, default), with pending restarts')
    .option('-j, --json', 'print JSON for scripts: {settings, version, peers}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const c = client(cmd);
      const [{ settings, version }, report] = await Promise.all([c.config(), c.shard()]);
      if (opts.json === true) {
        json({ settings, version, peers: report.peers.map((p) => ({ id: p.id, settingsVersion: p.settingsVersion ?? null, pendingRestart: p.pendingRestart ?? null, settings: p.settings ?? null, rejectedSettings: p.rejectedSettings ?? null })) });
      } else {
        io.out(`${renderConfigShow(settings, version, report)}\n`);
      }
    });

  config
    .command('set')
    .description('set shard settings: name=value..., each checked against pg_settings of the primary (a bad one changes nothing)')
    .argument('<name=value...>', 'settings, as in postgresql.conf (units allowed: 64MB, 5s)')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (args: string[], opts: { json?: boolean }, cmd: Command) => {
      const set: Record<string, string> = {};
      for (const a of args) {
        const [k, v] = parseAssignment(a);
        if (set[k] !== undefined) throw new AdmError('MANATEE_ERR_USAGE', `${k} is given twice`);
        set[k] = v;
      }
      const r = await client(cmd).changeConfig({ set });
      if (opts.json === true) json(r);
      else io.out(`${changedText(r)}\n`);
    });

  config
    .command('unset')
    .description('remove shard settings: each peer goes back to its overrides file or the default')
    .argument('<name...>', 'setting names')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (names: string[], opts: { json?: boolean }, cmd: Command) => {
      const r = await client(cmd).changeConfig({ unset: names });
      if (opts.json === true) json(r);
      else io.out(`${changedText(r)}\n`);
    });

  config
    .command('edit')
    .description('edit the shard settings in $VISUAL or $EDITOR (YAML, or JSON with --format json); checked before anything is written')
    .addOption(new Option('--format <format>', 'the file format').choices(['yaml', 'json']).default('yaml'))
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { format: 'yaml' | 'json'; json?: boolean }, cmd: Command) => {
      const c = client(cmd);
      // Without the token the values that may hold a credential come redacted, and writing them
      // back would store "[redacted]": the edit needs the token from its first read.
      if (!c.hasToken) throw new AdmError('MANATEE_ERR_NO_TOKEN', 'config edit needs the admin token (it reads every value whole, and writes): set MANATEE_ADMIN_TOKEN, or pass --token-file');
      const { settings, version } = await c.config();
      const dir = mkdtempSync(join(tmpdir(), 'manatee-config-'));
      const file = join(dir, `shard-settings.${opts.format}`);
      const before = opts.format === 'json' ? `${JSON.stringify(settings, null, 2)}\n` : settingsToYaml(settings);
      writeFileSync(file, before, { mode: 0o600 });
      const kept = { keep: false };
      try {
        runEditor(io.env, file);
        const text = readFileSync(file, 'utf8');
        if (text === before) {
          io.out('no change\n');
          return;
        }
        let next: Record<string, string>;
        try {
          next = opts.format === 'json' ? settingsFromJson(text) : settingsFromYaml(text);
        } catch (err) {
          kept.keep = true;
          throw new AdmError((err as AdmError).code, `${file}: ${(err as Error).message}; nothing was written (your edit is kept there)`);
        }
        let r: SettingsResult;
        try {
          r = await c.changeConfig({ replace: next, expectVersion: version });
        } catch (err) {
          kept.keep = true;
          if (err instanceof ManateeError) throw new AdmError(err.code, `${err.message} (your edit is kept in ${file})`);
          throw err;
        }
        if (opts.json === true) json(r);
        else io.out(`${changedText(r)}\n`);
      } finally {
        if (!kept.keep) rmSync(dir, { recursive: true, force: true });
      }
    });
}
