// The core must stay a pure state machine (DESIGN.md, STYLE.md): no I/O, no clock, no ambient
// randomness, nothing from other rooms. This test reads its sources and fails on any of them.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const CORE = join(dirname(fileURLToPath(import.meta.url)), '../../src/raft/core');

const FORBIDDEN: { what: string; re: RegExp }[] = [
  { what: 'a node:* import', re: /from\s+['"]node:/ },
  { what: 'a bare Node built-in import', re: /from\s+['"](fs|path|os|net|crypto|child_process|timers)['"]/ },
  { what: 'Date.now()', re: /Date\.now\s*\(/ },
  { what: 'new Date()', re: /new\s+Date\s*\(/ },
  { what: 'Math.random()', re: /Math\.random\s*\(/ },
  { what: 'a timer', re: /\b(setTimeout|setInterval|setImmediate|queueMicrotask)\s*\(/ },
  { what: 'process.*', re: /\bprocess\./ },
  { what: 'performance.now()', re: /performance\.now\s*\(/ },
];

test('src/raft/core has no I/O, clock, ambient randomness or imports from other rooms', () => {
  const files = readdirSync(CORE).filter((f) => f.endsWith('.ts'));
  expect(files.length).toBeGreaterThan(5);
  const problems: string[] = [];
  for (const f of files) {
    const text = readFileSync(join(CORE, f), 'utf8');
    // Comments may mention what the code must not do.
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    for (const { what, re } of FORBIDDEN) if (re.test(code)) problems.push(`${f}: ${what}`);
    for (const m of code.matchAll(/from\s+['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      // Only siblings, and src/errors.ts (a pure module shared by every room).
      if (!(spec.startsWith('./') || spec === '../../errors.js')) problems.push(`${f}: imports ${spec}`);
    }
  }
  expect(problems).toEqual([]);
});
