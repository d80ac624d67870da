// Preload for tools/bench/idle-cost.ts --census: counts how often each timer of a process fires,
// by the place in the code that set it (the first stack frame outside node's internals). Loaded
// with NODE_OPTIONS='--import <dist>/tools/bench/timer-census.js'; on SIGUSR2 it writes
// <MANATEE_TIMER_CENSUS_DIR>/census-<pid>.json ({site: fires}) and keeps counting. It sets no timer
// of its own, so it adds no wake-up to what it counts. Not for production: the stack capture at
// each setTimeout costs CPU.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env['MANATEE_TIMER_CENSUS_DIR'];
if (dir !== undefined && dir !== '') {
  const fires = new Map<string, number>();
  const siteOf = (): string => {
    const lines = (new Error().stack ?? '').split('\n').slice(2);
    for (const l of lines) {
      if (l.includes('timer-census') || l.includes('node:internal') || l.includes('(node:')) continue;
      const m = /\(?((?:file:\/\/)?\/[^)]*?):(\d+):\d+\)?\s*$/.exec(l);
      if (m === null) continue;
      const file = m[1]!.replace(/^file:\/\//, '');
      const at = file.lastIndexOf('/dist/');
      return `${at >= 0 ? file.slice(at + 6) : file}:${m[2]!}`;
    }
    return '?';
  };
  const count = (kind: string, site: string): void => {
    const k = `${kind} ${site}`;
    fires.set(k, (fires.get(k) ?? 0) + 1);
  };
  type Fn = (...args: unknown[]) => void;
  const wrap = <T extends (cb: Fn, ...rest: never[]) => unknown>(kind: string, orig: T): T => {
    const wrapped = function (this: unknown, cb: Fn, ...rest: unknown[]): unknown {
      if (typeof cb !== 'function') return (orig as unknown as (...a: unknown[]) => unknown).call(this, cb, ...rest);
      const site = siteOf();
      return (orig as unknown as (cb: Fn, ...r: unknown[]) => unknown).call(this, function (this: unknown, ...a: unknown[]) {
        count(kind, site);
        cb.apply(this, a);
      }, ...rest);
    };
    return Object.assign(wrapped, orig);
  };
  globalThis.setTimeout = wrap('timeout', globalThis.setTimeout);
  globalThis.setInterval = wrap('interval', globalThis.setInterval);
  globalThis.setImmediate = wrap('immediate', globalThis.setImmediate);
  process.on('SIGUSR2', () => {
    writeFileSync(join(dir, `census-${process.pid}.json`), JSON.stringify(Object.fromEntries(fires)));
  });
}
