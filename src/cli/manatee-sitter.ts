#!/usr/bin/env node
// manatee-sitter -f <config.json>: runs one peer (Raft node, cluster store, PostgreSQL, API).
// A bad configuration exits with status 2 and a message that names the field.
import { Command } from 'commander';
import { errorMessage, ManateeError } from '../errors.js';
import { createLogger } from '../log.js';
import { ConfigError, loadConfig, type SitterConfig } from '../peer/config.js';
import { openSitter } from './sitter-wiring.js';

/** Fields that SIGHUP does not apply (all but the credentials; tls names files read again anyway). */
function changedWithoutReload(before: SitterConfig, after: SitterConfig): string[] {
  const reloaded = new Set(['secret', 'acceptedSecrets', 'adminToken', 'acceptedAdminTokens']);
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => !reloaded.has(k)
    && JSON.stringify((before as unknown as Record<string, unknown>)[k]) !== JSON.stringify((after as unknown as Record<string, unknown>)[k])).sort();
}

async function main(): Promise<void> {
  const program = new Command()
    .name('manatee-sitter')
    .description('Run one Manatee peer: its Raft node, its PostgreSQL and its HTTP API')
    .requiredOption('-f, --file <config.json>', 'the peer configuration file')
    .parse(process.argv);
  const { file } = program.opts<{ file: string }>();

  let config;
  try {
    config = await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`manatee-sitter: ${err.code}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: config.log.level, name: `sitter-${config.peerId}`, ...(config.log.file !== undefined ? { destination: config.log.file } : {}) });
  const sitter = await openSitter(config, log);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ decision: 'shutdown', reason: `received ${signal}` }, `stopping on ${signal}`);
    sitter.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: errorMessage(err) }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => { stop('SIGTERM'); });
  process.on('SIGINT', () => { stop('SIGINT'); });
  // SIGHUP: read the configuration file again for its credentials (a rotation of the shard secret
  // or the admin token), and the TLS certificate files (a renewed certificate), without a restart.
  // A file that does not load or would cut this peer off is refused; the current values stay.
  process.on('SIGHUP', () => {
    loadConfig(file).then(
      (next) => {
        sitter.reloadCredentials(next);
        const ignored = changedWithoutReload(config, next);
        if (ignored.length > 0) {
          log.warn({ decision: 'config-reload', ignored, reason: 'only the credentials and the TLS files are reloaded' }, `SIGHUP: ${ignored.join(', ')} changed: they take effect at the next restart`);
        }
      },
    ).catch((err: unknown) => {
      const code = err instanceof ManateeError ? err.code : 'MANATEE_ERR_INTERNAL';
      log.error({ decision: 'config-reload', outcome: 'refused', code, reason: errorMessage(err) }, `SIGHUP: configuration refused, the current credentials stay: ${code}: ${errorMessage(err)}`);
    });
    sitter.reloadTls().then(
      (outcome) => { log.info({ decision: 'tls-reload', outcome, reason: 'received SIGHUP' }, `SIGHUP: TLS ${outcome}`); },
      (err: unknown) => { log.error({ err: errorMessage(err) }, 'SIGHUP: TLS reload failed'); },
    );
  });
  await sitter.start();
}

main().catch((err: unknown) => {
  const e = err as { code?: string; message?: string; stack?: string };
  process.stderr.write(`manatee-sitter: ${e.code ?? 'error'}: ${e.message ?? String(err)}\n${e.stack ?? ''}\n`);
  process.exit(1);
});
