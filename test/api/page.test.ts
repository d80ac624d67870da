// GET /, the status page: one self-contained HTML document (nothing fetched from the internet),
// served on a real fastify server over the in-memory reference dependencies; then the same page
// in headless Chromium, where a committed state change arrives over /watch and is drawn without
// a reload, and text from the shard cannot inject markup.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { createApi } from '../../src/api/server.js';
import type { ApiDeps } from '../../src/api/types.js';
import type { ClusterState } from '../../src/model/index.js';
import { MemoryStore, memoryDeps, peer, statusOf, threePeerState } from '../../tools/lib/memory-peer.js';
import { launchChromium, screenshot, watchPage } from './page-browser.js';

const A = peer('a');
const B = peer('b');
const C = peer('c');
const D = peer('d');

let app: FastifyInstance | null = null;
let base = '';
let store: MemoryStore;

async function start(limits?: ApiDeps['limits']): Promise<void> {
  store = new MemoryStore(threePeerState([A, B, C, D]), [A, B, C, D]);
  const all = [A, B, C, D];
  app = await createApi({
    ...memoryDeps({ self: C, store, ...(limits === undefined ? {} : { limits }) }),
    // Every peer's /status is computed from the same store, as four sitters in agreement would answer.
    fetchPeerStatus: (apiUrl) => {
      const p = all.find((x) => x.apiUrl === apiUrl);
      return p === undefined ? Promise.reject(new Error(`ECONNREFUSED (${apiUrl})`)) : Promise.resolve(statusOf(p, store));
    },
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
}

async function stop(): Promise<void> {
  await app?.close();
  app = null;
}

describe('GET / (route)', () => {
  afterEach(stop);

  it('serves one HTML document with a CSP that allows its own origin only', async () => {
    await start();
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await res.text();
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<title>Manatee shard</title>');
    // What the script reads, relative to wherever the page is served.
    expect(html).toContain("new EventSource('watch')");
    expect(html).toContain("getJson('shard')");
  });

  it('references nothing outside its own origin: no absolute URL, no external script, style or image', async () => {
    await start();
    const html = await (await fetch(`${base}/`)).text();
    expect(html.match(/https?:\/\//gi)).toBeNull();
    expect(html.match(/(?:src|href)\s*=\s*["']?\/\//gi)).toBeNull(); // protocol-relative
    expect(html.match(/<script\b[^>]*\bsrc=/gi)).toBeNull();
    expect(html.match(/<link\b[^>]*rel=["']?stylesheet/gi)).toBeNull();
    expect(html.match(/@import|url\(/gi)).toBeNull();
    expect(html.match(/<script\b/gi)).toHaveLength(1);
    expect(html.match(/<style\b/gi)).toHaveLength(1);
    // Every href is relative to the page, or the empty data: icon.
    for (const m of html.matchAll(/href="([^"]*)"/g)) expect(m[1], m[0]).toMatch(/^(data:,|[a-z.]+)$/);
  });

  it('is in /openapi.json, answers HEAD, and ignores a query string; a wrong method is a 404 with the error body', async () => {
    await start();
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toContain('/');
    const head = await fetch(`${base}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect((await fetch(`${base}/?from=bookmark`)).status).toBe(200);
    const post = await fetch(`${base}/`, { method: 'POST' });
    expect(post.status).toBe(404);
    expect(((await post.json()) as { error: { code: string } }).error.code).toBe('MANATEE_ERR_NOT_FOUND');
  });
});

describe('GET / in headless Chromium (in-memory shard)', () => {
  let browser: Browser | null = null;
  let page: Page | null = null;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    browser = null;
  });
  afterEach(async () => {
    await page?.close().catch(() => undefined);
    page = null;
    await stop();
  });

  it('draws the chain with its links, then a committed takeover arrives over /watch without a reload', async () => {
    await start();
    page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    const seen = watchPage(page);
    await page.goto(`${base}/`);
    await page.locator('[data-role="primary"] .peer-id').filter({ hasText: 'a' }).waitFor({ timeout: 30_000 });
    expect(await page.locator('#chain [data-role]').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-role') ?? ''}:${e.getAttribute('data-peer') ?? ''}`)))
      .toEqual(['primary:a', 'sync:b', 'async:c', 'async:d']);
    // Each link shows its lag from /shard: bytes from the upstream, seconds from the downstream.
    const syncLink = page.locator('[data-link="a>b"]');
    await syncLink.filter({ hasText: 'streaming' }).waitFor({ timeout: 30_000 });
    expect(await syncLink.textContent()).toContain('72 B · 0.5 s');
    await page.locator('[data-link="c>d"]').filter({ hasText: 'streaming' }).waitFor({ timeout: 30_000 });
    const eventsBefore = Number(await page.locator('body').getAttribute('data-watch-events'));
    expect(eventsBefore).toBeGreaterThanOrEqual(1); // the stream opens with the current state

    // A takeover with a summary that is markup: it must be shown as text.
    const s = store.state!;
    const next: ClusterState = { ...s, generation: s.generation + 1, primary: B, sync: C, async: [D], deposed: [A], initWal: '0/4000000' };
    store.commit(next, 'sync b took over from a <img src=x id=injected>');
    store.setActive([B, C, D]);
    await page.locator('[data-role="primary"] .peer-id').filter({ hasText: 'b' }).waitFor({ timeout: 30_000 });
    await page.locator('#generation').filter({ hasText: String(next.generation) }).waitFor({ timeout: 30_000 });
    await page.locator('[data-role="deposed"][data-peer="a"]').waitFor({ timeout: 30_000 });
    await page.locator('#history').filter({ hasText: 'sync b took over from a <img src=x id=injected>' }).waitFor({ timeout: 30_000 });
    expect(await page.locator('#injected').count()).toBe(0);
    expect(await page.locator('#history .badge.failover').first().textContent()).toBe('new primary b');
    expect(Number(await page.locator('body').getAttribute('data-watch-events'))).toBeGreaterThan(eventsBefore);
    expect(await page.locator('#live').getAttribute('class')).toContain('is-live');
    // Drawn without a reload, and nothing fetched from anywhere but the page's own origin.
    expect(seen.navigations).toHaveLength(1);
    expect(seen.requests.length).toBeGreaterThan(3);
    for (const url of seen.requests) expect(url.startsWith(`${base}/`), url).toBe(true);
    expect(seen.errors).toEqual([]);
    await screenshot(page, 'in-memory-takeover');
  });

  it("shows the operator's set-onwm while pending, then the one-node-write mode it led to", async () => {
    await start();
    page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${base}/`);
    await page.locator('[data-role="primary"] .peer-id').filter({ hasText: 'a' }).waitFor({ timeout: 30_000 });
    expect(await page.locator('.badge.onwm').count()).toBe(0);
    const s = store.state!;
    store.commit({ ...s, onwmOverride: true }, 'operator turned one-node-write mode on');
    await page.locator('.badge.onwm').filter({ hasText: 'one-node-write mode on requested by operator' }).waitFor({ timeout: 30_000 });
    store.commit({ ...s, onwmOverride: true, generation: s.generation + 1, sync: null, async: [], oneNodeWriteMode: true }, 'primary (a) entered one-node-write mode');
    await page.locator('.badge.onwm').filter({ hasText: 'one-node-write mode (set by operator)' }).waitFor({ timeout: 30_000 });
    expect(await page.locator('.badge.onwm').allTextContents()).toEqual(['one-node-write mode (set by operator)']);
  });

  it('without a Raft leader, /shard fails: the page says why and keeps the state from the watch stream', async () => {
    await start();
    page = await browser!.newPage({ viewport: { width: 1200, height: 800 } });
    await page.goto(`${base}/`);
    await page.locator('[data-role="primary"] .peer-id').filter({ hasText: 'a' }).waitFor({ timeout: 30_000 });
    await page.locator('#live.is-live').waitFor({ timeout: 30_000 });
    store.unavailable = true;
    await page.locator('#alerts .alert.warn').filter({ hasText: 'Cannot read /shard (MANATEE_ERR_RAFT_NO_LEADER)' }).waitFor({ timeout: 30_000 });
    expect(await page.locator('[data-role="primary"] .peer-id').textContent()).toBe('a');
    // Back to normal once the store answers again.
    store.unavailable = false;
    await expect.poll(async () => page!.locator('#alerts').textContent(), { timeout: 30_000 }).not.toContain('Cannot read /shard');
  });

  it('when /watch refuses it (too many watchers), the page says it is not connected and still draws from /shard', async () => {
    await start({ watchersMax: 0 });
    page = await browser!.newPage({ viewport: { width: 1200, height: 800 } });
    await page.goto(`${base}/`);
    await page.locator('#live.is-down').waitFor({ timeout: 30_000 });
    expect(await page.locator('#live-text').textContent()).toBe('not connected');
    await page.locator('[data-role="primary"] .peer-id').filter({ hasText: 'a' }).waitFor({ timeout: 30_000 });
    // A committed change still shows, by the next read of /shard.
    const s = store.state!;
    store.commit({ ...s, generation: s.generation + 1, primary: B, sync: C, async: [D], deposed: [A], initWal: '0/4000000' }, 'sync b took over from a');
    await page.locator('[data-role="primary"] .peer-id').filter({ hasText: 'b' }).waitFor({ timeout: 30_000 });
    expect(await page.locator('body').getAttribute('data-watch-events')).toBe('0');
  });

  it('says so when the peer that served it stops answering, and links the other peers', async () => {
    await start();
    page = await browser!.newPage({ viewport: { width: 1200, height: 800 } });
    const seen = watchPage(page);
    await page.goto(`${base}/`);
    await page.locator('[data-role="primary"] .peer-id').filter({ hasText: 'a' }).waitFor({ timeout: 30_000 });
    await stop();
    const alert = page.locator('#alerts .alert.bad').filter({ hasText: 'This peer is not answering' });
    await alert.waitFor({ timeout: 30_000 });
    expect(await alert.locator('a').allTextContents()).toEqual(expect.arrayContaining(['a', 'b', 'd']));
    expect(await page.locator('#live').getAttribute('class')).not.toContain('is-live');
    // The last known topology stays on the page.
    expect(await page.locator('[data-role="primary"] .peer-id').textContent()).toBe('a');
    expect(seen.navigations).toHaveLength(1);
  });
});
