#!/usr/bin/env node
// manatee-adm: inspect and administer a Manatee shard through any peer's HTTP API.
// The commands live in src/cli/adm/; this file only wires them to the process.
import { runAdm } from './adm/program.js';

const code = await runAdm(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  now: () => new Date(),
});
// exitCode rather than exit(): stdout is flushed before the process ends, even into a pipe.
process.exitCode = code;
