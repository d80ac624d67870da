// The arrows between the rooms (DESIGN.md, "Rooms"): `cli → api → peer → store → raft`,
// `peer → postgres, backup → zfs`, every room may import `model`, the client imports only `model`
// and `wire` (the API's contract and its typed HTTP client, a leaf room that imports only `model`),
// tools never import tests, and src/ never imports tests or tools. This test reads every import
// (static, dynamic and re-exports) and fails on each one that points the wrong way.
//
// src/errors.ts (the base error class with its stable code) and src/log.ts (the Logger type) are
// not rooms: every room may use them, and they import no room.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = ['src/errors', 'src/log'];

/** For each room of src/, the rooms it may import (besides itself and SHARED). */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  'src/model': [],
  // The HTTP API's contract (schemas, the types derived from them) and its one typed client.
  'src/wire': ['src/model'],
  'src/raft': ['src/model'],
  'src/store': ['src/raft', 'src/model'],
  'src/tls': ['src/model'],
  'src/postgres': ['src/model'],
  'src/zfs': ['src/model'],
  // A backup server learns which peer calls it from the peer's certificate (src/tls, a leaf room).
  'src/backup': ['src/postgres', 'src/zfs', 'src/tls', 'src/model'],
  'src/peer': ['src/store', 'src/raft', 'src/postgres', 'src/backup', 'src/zfs', 'src/tls', 'src/wire', 'src/model'],
  'src/api': ['src/peer', 'src/store', 'src/raft', 'src/postgres', 'src/backup', 'src/zfs', 'src/tls', 'src/wire', 'src/model'],
  'src/client': ['src/wire', 'src/model'],
  'src/cli': ['src/api', 'src/peer', 'src/store', 'src/raft', 'src/postgres', 'src/backup', 'src/zfs', 'src/tls', 'src/wire', 'src/model'],
  // The package's main export: the client library and the model it speaks.
  'src/index': ['src/client', 'src/wire', 'src/model'],
  'src/errors': [],
  'src/log': [],
};

interface Import {
  readonly file: string; // relative to ROOT
  readonly spec: string;
  /** The imported file relative to ROOT, without extension, for a relative import; null for a package. */
  readonly target: string | null;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...tsFiles(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

function importsOf(path: string): Import[] {
  // Comments may name modules (and the status page's script is a string of code that is not imported).
  const code = readFileSync(path, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const file = relative(ROOT, path);
  const out: Import[] = [];
  const re = /^\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of code.matchAll(re)) {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    const target = spec.startsWith('.') ? relative(ROOT, resolve(dirname(path), spec)).replace(/\.(js|ts)$/, '') : null;
    out.push({ file, spec, target });
  }
  return out;
}

/** The room of a file under src/: "src/peer" for src/peer/rules/decide.ts, "src/errors" for src/errors.ts. */
function roomOf(file: string): string {
  const parts = file.replace(/\.(js|ts)$/, '').split('/');
  return parts.slice(0, 2).join('/');
}

/** One line per import of src/ that points the wrong way. */
function roomProblems(imports: readonly Import[]): string[] {
  const problems: string[] = [];
  for (const { file, spec, target } of imports) {
    if (target === null) continue;
    const from = roomOf(file);
    const allowed = MAY_IMPORT[from];
    if (allowed === undefined) {
      problems.push(`${file}: is in ${from}, a room that this test does not know (add it to MAY_IMPORT)`);
      continue;
    }
    if (!target.startsWith('src/')) {
      problems.push(`${file}: imports ${spec}, outside src/`);
      continue;
    }
    const to = roomOf(target);
    if (to !== from && !SHARED.includes(to) && !allowed.includes(to)) problems.push(`${file}: ${from} imports ${to} (${spec})`);
  }
  return problems;
}

const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

const isBuiltin = (spec: string): boolean => spec.startsWith('node:') || builtinModules.includes(spec);

const srcImports = tsFiles(join(ROOT, 'src')).flatMap(importsOf);
const toolImports = tsFiles(join(ROOT, 'tools')).flatMap(importsOf);
const testImports = tsFiles(join(ROOT, 'test')).flatMap(importsOf);

describe('the arrows between the rooms', () => {
  it('finds the imports it checks (the parser works)', () => {
    expect(srcImports.length).toBeGreaterThan(300);
    expect(srcImports).toContainEqual({ file: 'src/peer/reconciler.ts', spec: '../model/index.js', target: 'src/model/index' });
    expect(importsOf(join(ROOT, 'test/rooms.test.ts')).map((i) => i.spec)).toContain('node:module');
  });

  it('every room of src/ imports only the rooms it may', () => {
    expect(roomProblems(srcImports)).toEqual([]);
  });

  it('src/ uses only the packages that package.json declares as dependencies', () => {
    const problems = srcImports
      .filter((i) => i.target === null && !isBuiltin(i.spec) && packageJson.dependencies[packageName(i.spec)] === undefined)
      .map((i) => `${i.file}: imports ${i.spec}, which is not in package.json's dependencies`);
    expect(problems).toEqual([]);
  });

  it('tools and tests use only declared packages', () => {
    const declared = { ...packageJson.dependencies, ...packageJson.devDependencies };
    const problems = [...toolImports, ...testImports]
      .filter((i) => i.target === null && !isBuiltin(i.spec) && declared[packageName(i.spec)] === undefined)
      .map((i) => `${i.file}: imports ${i.spec}, which package.json does not declare`);
    expect(problems).toEqual([]);
  });

  it('tools never import test/ (test helpers would be built into dist/)', () => {
    const problems = toolImports.filter((i) => i.target?.startsWith('test/') === true).map((i) => `${i.file}: imports ${i.spec}`);
    expect(problems).toEqual([]);
  });

  it('test helpers re-export nothing from tools/ (every import names the real place)', () => {
    const problems = tsFiles(join(ROOT, 'test/helpers'))
      .filter((path) => /^\s*export\s+(?:type\s+)?(?:\*|\{[^}]*\})\s+from\s+['"](?:\.\.\/)+tools\//m.test(readFileSync(path, 'utf8')))
      .map((path) => relative(ROOT, path));
    expect(problems).toEqual([]);
  });

  it('test doubles live under test/: src/ exports no fake, mock, stub or in-process stand-in', () => {
    const problems: string[] = [];
    for (const path of tsFiles(join(ROOT, 'src'))) {
      const code = readFileSync(path, 'utf8');
      for (const m of code.matchAll(/^export\s+(?:abstract\s+)?class\s+((?:Fake|Mock|Stub|InProcess)\w*)/gm)) problems.push(`${relative(ROOT, path)}: ${m[1]!}`);
    }
    expect(problems).toEqual([]);
  });
});

describe('the check itself', () => {
  it('flags an import that points the wrong way, and passes one that does not', () => {
    const imp = (file: string, spec: string, target: string): Import => ({ file, spec, target });
    expect(roomProblems([
      imp('src/peer/sitter.ts', '../api/index.js', 'src/api/index'),
      imp('src/client/client.ts', '../store/index.js', 'src/store/index'),
      imp('src/store/store.ts', '../../test/store/in-process-consensus.js', 'test/store/in-process-consensus'),
      imp('src/peer/sitter.ts', '../store/index.js', 'src/store/index'),
      imp('src/client/client.ts', '../model/index.js', 'src/model/index'),
      imp('src/raft/node.ts', '../errors.js', 'src/errors'),
      imp('src/client/client.ts', '../wire/index.js', 'src/wire/index'),
      imp('src/wire/api-client.ts', '../api/shard.js', 'src/api/shard'),
    ])).toEqual([
      'src/peer/sitter.ts: src/peer imports src/api (../api/index.js)',
      'src/client/client.ts: src/client imports src/store (../store/index.js)',
      'src/store/store.ts: imports ../../test/store/in-process-consensus.js, outside src/',
      'src/wire/api-client.ts: src/wire imports src/api (../api/shard.js)',
    ]);
  });

  it('knows the room of a file', () => {
    expect(roomOf('src/peer/rules/decide.ts')).toBe('src/peer');
    expect(roomOf('src/errors.ts')).toBe('src/errors');
  });

  it('reads static, type-only, re-export, side-effect and dynamic imports', () => {
    const sample = join(ROOT, 'test/rooms.test.ts');
    const specs = importsOf(sample).map((i) => i.spec);
    expect(specs).toEqual(expect.arrayContaining(['node:fs', 'node:path', 'vitest']));
  });
});
