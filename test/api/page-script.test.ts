// The status page's script is TypeScript (src/api/page/browser/status-page.ts, type-checked and
// linted with the DOM's types); tools/build-page-script.ts compiles it into src/api/page/script.ts,
// which is committed so that a fresh clone needs no build step. These tests fail when the committed
// script is not what the source compiles to, and check that the page serves it and that it parses.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PAGE_MODULE, compilePageScript, pageModuleText } from '../../tools/build-page-script.js';
import { PAGE_SCRIPT } from '../../src/api/page/script.js';
import { STATUS_PAGE_HTML } from '../../src/api/page/document.js';

describe('the status page script', () => {
  it('src/api/page/script.ts is what the TypeScript source compiles to (else: npm run page)', () => {
    expect(readFileSync(PAGE_MODULE, 'utf8')).toBe(pageModuleText());
    expect(PAGE_SCRIPT).toBe(compilePageScript());
  });

  it('is browser JavaScript without types or imports, in a function of its own, and it parses', () => {
    expect(PAGE_SCRIPT.startsWith("(function () {\n'use strict';")).toBe(true);
    expect(PAGE_SCRIPT).not.toMatch(/^\s*(import|export)\b/m);
    expect(PAGE_SCRIPT).not.toMatch(/\bas (ShardReport|Versioned|HistoryEntry)\b/);
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- parsed, not run: a syntax error throws here
    expect(() => new Function(PAGE_SCRIPT)).not.toThrow();
  });

  it('the served document inlines it as its only script', () => {
    expect(STATUS_PAGE_HTML).toContain(`<script>${PAGE_SCRIPT}</script>`);
    expect(STATUS_PAGE_HTML.match(/<script\b/g)).toHaveLength(1);
  });

  it('a source with an import of a value (a second script) or a syntax error is refused, naming the file', () => {
    expect(() => compilePageScript("import { x } from './other.js';\nconsole.log(x);\n")).toThrow(/must import types only/);
    expect(() => compilePageScript('const = ;')).toThrow(/cannot compile .*status-page\.ts/);
  });
});
