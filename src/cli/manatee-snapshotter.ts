#!/usr/bin/env node
// manatee-snapshotter -f <config.json>: periodic ZFS snapshots of a peer's dataset with a
// retention count, outside the sitter (the sitter runs the same Snapshotter inside itself).
// Exits non-zero with a message naming the field when the configuration is invalid.
import { Command } from 'commander';
import pg from 'pg';
import { createLogger } from '../log.js';
import { ManateeError, errorMessage } from '../errors.js';
import { Snapshotter, Zfs } from '../zfs/index.js';
import { closeClient } from '../postgres/index.js';
import { loadSnapshotterConfig } from '../zfs/snapshotter-config.js';

async function pgHealthy(pgUrl: string, timeoutMs: number): Promise<boolean> {
  const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await closeClient(client);
  }
}

async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('manatee-snapshotter')
    .description('Take periodic ZFS snapshots of a Manatee peer dataset, keeping the newest N')
    .requiredOption('-f, --file <config.json>', 'configuration file')
    .option('--once', 'take one snapshot (and prune), then exit')
    .parse(argv);
  const opts = program.opts<{ file: string; once?: boolean }>();
  const config = await loadSnapshotterConfig(opts.file);
  const log = createLogger({ level: config.logLevel, name: 'manatee-snapshotter' });
  const zfs = new Zfs(config.zfsPath === undefined ? { log } : { log, zfsPath: config.zfsPath });
  const health = config.health;
  const snapshotter = new Snapshotter({
    zfs,
    log,
    dataset: config.dataset,
    intervalMs: config.intervalMs,
    retentionCount: config.retentionCount,
    ...(health === undefined ? {} : { isHealthy: () => pgHealthy(health.pgUrl, health.timeoutMs) }),
  });
  if (opts.once === true) {
    const d = await snapshotter.runOnce();
    process.exitCode = d.decision === 'error' ? 1 : 0;
    return;
  }
  snapshotter.start();
  const stop = (signal: string): void => {
    log.info({ signal }, 'manatee-snapshotter: stopping');
    void snapshotter.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => { stop('SIGTERM'); });
  process.on('SIGINT', () => { stop('SIGINT'); });
}

main(process.argv).catch((err: unknown) => {
  const code = err instanceof ManateeError ? `${err.code}: ` : '';
  process.stderr.write(`manatee-snapshotter: ${code}${errorMessage(err)}\n`);
  process.exit(2);
});
