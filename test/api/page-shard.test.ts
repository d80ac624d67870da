// The status page against a real shard of three manatee-sitter processes, in headless Chromium:
// it shows the primary; the primary peer is killed (sitter and PostgreSQL, SIGKILL); the page,
// open all along and never reloaded, shows the sync that took over as the new primary, the old
// one as deposed, and the new generation. A screenshot of the page after the failover is saved
// under test-results/status-page/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Shard } from '../../tools/lib/shard.js';
import { peerCertFile } from '../../src/tls/index.js';
import { launchChromium, screenshot, watchPage } from './page-browser.js';

const WAIT_MS = 120_000;

describe('status page on a real shard', () => {
  let shard: Shard | null = null;
  let browser: Browser | null = null;
  let page: Page | null = null;

  beforeAll(async () => {
    // The peers serve https with certificates of the shard's own CA: Chromium accepts exactly
    // their keys. It starts while the sitters set the shard up.
    const s = await Shard.create({ peers: 3, prefix: 'page' });
    shard = s;
    const certsDir = s.certsDir;
    browser = await launchChromium({ trustCertFiles: certsDir === null ? [] : s.peers.map((p) => peerCertFile(certsDir, p.id)) });
  });

  afterAll(async () => {
    await page?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await shard?.teardown();
  });

  it('shows the primary, and after the primary peer is killed, the new primary without a reload', async () => {
    const sh = shard!;
    const { peer: primary, status } = await sh.waitForPrimaryWritable({ timeoutMs: WAIT_MS });
    const syncId = status.state!.sync!.id;
    const asyncId = status.state!.async[0]!.id;
    await sh.waitForTopology({ primary: primary.id, sync: syncId, async: [asyncId] }, WAIT_MS);
    // The page is served by the async, which outlives the failover.
    const served = sh.peer(asyncId);
    page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    const seen = watchPage(page);
    await page.goto(`${served.apiUrl}/`);

    const primaryCard = page.locator('[data-role="primary"] .peer-id');
    await primaryCard.filter({ hasText: primary.id }).waitFor({ timeout: WAIT_MS });
    await page.locator('[data-role="sync"] .peer-id').filter({ hasText: syncId }).waitFor({ timeout: WAIT_MS });
    await page.locator(`.link.ok[data-link="${primary.id}>${syncId}"]`).filter({ hasText: 'streaming · sync' }).waitFor({ timeout: WAIT_MS });
    await page.locator('#live.is-live').waitFor({ timeout: WAIT_MS });
    const generationBefore = Number(await page.locator('body').getAttribute('data-generation'));
    const eventsBefore = Number(await page.locator('body').getAttribute('data-watch-events'));
    await screenshot(page, 'shard-before-failover');

    await sh.killPeer(primary);

    // The sync takes over: the page shows it as the primary, with the old primary deposed.
    await primaryCard.filter({ hasText: syncId }).waitFor({ timeout: WAIT_MS });
    await page.locator(`[data-role="deposed"][data-peer="${primary.id}"]`).waitFor({ timeout: WAIT_MS });
    expect(Number(await page.locator('body').getAttribute('data-generation'))).toBeGreaterThan(generationBefore);
    // The change came over the watch stream (the page also polls /shard, which alone would not count).
    expect(Number(await page.locator('body').getAttribute('data-watch-events'))).toBeGreaterThan(eventsBefore);
    // The committed state agrees with the page.
    const { peer: newPrimary } = await sh.waitForPrimaryWritable({ not: primary.id, timeoutMs: WAIT_MS });
    expect(newPrimary.id).toBe(syncId);
    await sh.waitForTopology({ primary: syncId, sync: asyncId, async: [] }, WAIT_MS);
    // Drawn as it settles: the new sync link streams and the new primary is writable.
    // (Right after the promotion the link streams as 'async' until the primary names its sync: amber.)
    await page.locator(`.link.ok[data-link="${syncId}>${asyncId}"]`).filter({ hasText: 'streaming · sync' }).waitFor({ timeout: WAIT_MS });
    await page.locator(`[data-role="primary"][data-peer="${syncId}"] [data-health="ok"]`).waitFor({ timeout: WAIT_MS });
    await page.locator('#history .badge.failover').filter({ hasText: `new primary ${syncId}` }).waitFor({ timeout: WAIT_MS });
    const path = await screenshot(page, 'shard-after-failover');
    expect(path).toMatch(/\.png$/);

    expect(seen.navigations).toHaveLength(1);
    const origin = new URL(served.apiUrl).origin;
    for (const url of seen.requests) expect(new URL(url).origin, url).toBe(origin);
    expect(seen.errors.filter((e) => !/Failed to load resource|ERR_/.test(e))).toEqual([]);
  });
});
