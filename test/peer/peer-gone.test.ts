// The probe that confirms a refused peer is gone (src/peer/peer-gone.ts): its PostgreSQL port
// must refuse as well; anything else (a listener, a bad URL) is not a refusal.
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { postgresPortRefused } from '../../src/peer/peer-gone.js';
import type { PeerInfo } from '../../src/model/index.js';
import { freePort } from '../../tools/lib/wait.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => { s.close(() => { r(); }); });
});

function peerAt(pgUrl: string): PeerInfo {
  return { id: 'p1', pgUrl, apiUrl: 'http://127.0.0.1:1', host: '127.0.0.1' };
}

describe('postgresPortRefused', () => {
  it('names the refused address when nothing listens at the peer\'s PostgreSQL port', async () => {
    const port = await freePort();
    expect(await postgresPortRefused(peerAt(`postgres://postgres@127.0.0.1:${port}/postgres`))).toBe(`its PostgreSQL port 127.0.0.1:${port} refused`);
  });

  it('is null when the port accepts (a sitter killed alone leaves its PostgreSQL running)', async () => {
    const port = await freePort();
    const srv = createServer((s) => { s.destroy(); });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
    expect(await postgresPortRefused(peerAt(`postgres://postgres@127.0.0.1:${port}/postgres`))).toBeNull();
  });

  it('is null for a pgUrl that names no address', async () => {
    expect(await postgresPortRefused(peerAt('not a url'))).toBeNull();
    expect(await postgresPortRefused(peerAt('postgres:///postgres'))).toBeNull();
  });
});
