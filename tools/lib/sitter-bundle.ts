// The sitter as one JavaScript file, bundled with esbuild from src/ (its npm packages stay
// imports), for the test shards: started through tsx, a sitter compiles and resolves its hundred
// modules at every start, about 2 s of CPU before its first log line (10 to 19 s of wall time on
// the loaded 2-core machine), while the bundle loads in about 0.75 s of CPU (4 to 5 s), and a
// killed sitter must be back within its session timeout. The code is the same; only the loading
// differs, as with dist/ (`npm run build`), which a clean checkout does not have.
//
// The bundle is cached in node_modules/.cache/manatee-sitter under a digest of every file in
// src/, so that the test files running at once build it once (each writes its own temporary
// file and renames it into place: the last rename wins, and every copy is the same) and a changed
// source makes a new one. It lives under node_modules so that its imports of npm packages resolve.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const srcDir = join(repoRoot, 'src');
const entry = join(srcDir, 'cli/manatee-sitter.ts');
export const SITTER_BUNDLE_DIR = join(repoRoot, 'node_modules/.cache/manatee-sitter');
/** Bundles older than this are removed when a new one is made (each source change makes one). */
const STALE_MS = 24 * 3600_000;

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sourceFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

/** A digest of every file under src/ (names and contents) and of package.json. */
async function sourceDigest(): Promise<string> {
  const h = createHash('sha256');
  for (const f of [...(await sourceFiles(srcDir)), join(repoRoot, 'package.json')]) {
    h.update(relative(repoRoot, f)).update('\0').update(await readFile(f)).update('\0');
  }
  return h.digest('hex').slice(0, 24);
}

async function removeStale(keep: string): Promise<void> {
  for (const name of await readdir(SITTER_BUNDLE_DIR).catch(() => [] as string[])) {
    const p = join(SITTER_BUNDLE_DIR, name);
    if (p === keep) continue;
    const st = await stat(p).catch(() => null);
    if (st !== null && Date.now() - st.mtimeMs > STALE_MS) await rm(p, { force: true });
  }
}

async function makeBundle(): Promise<string> {
  const file = join(SITTER_BUNDLE_DIR, `manatee-sitter-${await sourceDigest()}.mjs`);
  if (await stat(file).then(() => true, () => false)) return file;
  await mkdir(SITTER_BUNDLE_DIR, { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    await build({
      entryPoints: [entry],
      outfile: tmp,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'error',
    });
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
  await removeStale(file);
  return file;
}

let bundle: Promise<string> | null = null;

/** The path of the sitter's bundle for the current sources, built on the first call of a process. */
export function sitterBundle(): Promise<string> {
  bundle ??= makeBundle().catch((err: unknown) => {
    bundle = null;
    throw err;
  });
  return bundle;
}
