// Headless Chromium for the status page's tests: Debian's `chromium` package driven by
// playwright-core (which downloads no browser of its own). The flags keep Chromium off the
// network: this machine refuses outside connections, and a test must not depend on them.
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Screenshots go here (in .gitignore). */
export const SCREENSHOT_DIR = join(repoRoot, 'test-results', 'status-page');

/** base64(sha256(SubjectPublicKeyInfo)) of a PEM certificate file: Chromium's form of a pinned key. */
export async function spkiHash(certFile: string): Promise<string> {
  const cert = new X509Certificate(await readFile(certFile));
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

/**
 * `trustCertFiles`: the certificates of the https peers a test opens (a TLS shard's, made by its
 * own CA): Chromium accepts those keys alone (--ignore-certificate-errors-spki-list), and still
 * refuses any other certificate that its own store does not trust.
 */
export async function launchChromium(opts: { trustCertFiles?: readonly string[] } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: install Debian's chromium package (tools/install-deps.sh does)`);
  }
  const pins = await Promise.all((opts.trustCertFiles ?? []).map(spkiHash));
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    timeout: 120_000,
    // playwright-core gives the browser a new, empty user data directory of its own.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(pins.length > 0 ? [`--ignore-certificate-errors-spki-list=${pins.join(',')}`] : []),
    ],
  });
}

/**
 * Records what a page does that a test checks afterwards: every request URL, every navigation of
 * the main frame, console errors and uncaught exceptions.
 */
export function watchPage(page: Page): { requests: string[]; navigations: string[]; errors: string[] } {
  const seen = { requests: [] as string[], navigations: [] as string[], errors: [] as string[] };
  page.on('request', (r) => { seen.requests.push(r.url()); });
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) seen.navigations.push(f.url()); });
  page.on('pageerror', (e) => { seen.errors.push(`pageerror: ${e.message}`); });
  page.on('console', (m) => { if (m.type() === 'error') seen.errors.push(`console: ${m.text()}`); });
  return seen;
}

/**
 * Saves a full-page screenshot under SCREENSHOT_DIR as `<name>.png` and prints its path. One
 * file per kind, overwritten by each run: a timestamped name would pile up a new file on every
 * `npm test`, without bound.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`screenshot name ${JSON.stringify(name)}: use a-z, 0-9 and -`);
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`status page screenshot: ${path}`);
  return path;
}
