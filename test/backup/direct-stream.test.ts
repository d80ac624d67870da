// The parts of the direct stream (zfs send and zfs recv on the connection itself) that need no
// pool: the kernel's byte counts of a connection read with `ss`, and the refusal to hand zfs a
// socket it cannot use (TLS, closed).
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, Socket, type Server } from 'node:net';
import { TLSSocket } from 'node:tls';
import { silentLogger } from '../../src/log.js';
import { Zfs } from '../../src/zfs/index.js';
import { shutdownSocketRead } from '../../src/zfs/stream.js';
import { spawn } from 'node:child_process';
import { parseSsBytes, socketBytes, socketEnds } from '../../src/backup/socket-bytes.js';
import { waitFor } from '../../tools/lib/wait.js';

const opened: Array<Server | Socket> = [];
afterEach(() => {
  for (const x of opened.splice(0)) {
    if (x instanceof Socket) x.destroy();
    else x.close();
  }
});

/** A loopback connection: the client, connected, and the server's side of it once accepted. */
async function connectedPair(): Promise<{ client: Socket; accepted: Promise<Socket> }> {
  let accept: (s: Socket) => void = () => undefined;
  const accepted = new Promise<Socket>((r) => { accept = r; });
  const server = createServer((s) => { opened.push(s); accept(s); });
  opened.push(server);
  await new Promise<void>((r) => { server.listen(0, '127.0.0.1', r); });
  const addr = server.address();
  const client = connect(typeof addr === 'object' && addr !== null ? addr.port : 0, '127.0.0.1');
  opened.push(client);
  await new Promise<void>((r) => { client.once('connect', r); });
  return { client, accepted };
}

/** A connected client socket whose server accepts and never sends: a reader of it blocks. */
async function connected(): Promise<Socket> {
  return (await connectedPair()).client;
}

describe('socket byte counts from the kernel', () => {
  it('parses the counters of an ss -tin info line, and says null when there are none', () => {
    const line = 'cubic wscale:7,7 rto:204 rtt:0.02/0.01 mss:32768 bytes_sent:5000 bytes_acked:4242 bytes_received:1234 segs_out:10';
    expect(parseSsBytes(line)).toEqual({ acked: 4241, received: 1234 }); // the SYN is not data
    expect(parseSsBytes('cubic wscale:7,7 rto:204 bytes_received:99')).toEqual({ acked: 0, received: 99 });
    expect(parseSsBytes('cubic wscale:7,7 rto:204')).toBeNull();
    expect(parseSsBytes('')).toBeNull();
  });

  it('reads what a loopback connection sent and received, after the fact too, and null for a connection that does not exist', async () => {
    const { client, accepted } = await connectedPair();
    const payload = Buffer.alloc(300_000, 7);
    let got = 0;
    const srv = await accepted;
    srv.on('data', (c: Buffer) => { got += c.length; });
    client.write(payload);
    await waitFor('all bytes received', () => got === payload.length);
    const ends = socketEnds(client);
    const sent = await waitFor('the kernel counts them acked', async () => { const b = await socketBytes(ends); return b !== null && b.acked === payload.length ? b : null; });
    expect(sent.acked).toBe(payload.length);
    const received = await socketBytes(socketEnds(srv));
    expect(received?.received).toBe(payload.length);
    expect(await socketBytes({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 2 })).toBeNull();
    expect(await socketBytes({})).toBeNull();
    expect(await socketBytes(ends, '/nonexistent/ss')).toBeNull();
  });
});

describe('handing a socket to zfs', () => {
  const zfs = new Zfs({ log: silentLogger(), zfsPath: '/nonexistent/zfs' });

  it('refuses a TLS socket and a closed one with MANATEE_ERR_ZFS_DIRECT_STREAM, before running zfs', () => {
    const tls = new TLSSocket(new Socket());
    opened.push(tls);
    expect(() => zfs.sendToSocket('p/a@1600000000000', tls)).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_ZFS_DIRECT_STREAM', message: expect.stringMatching(/TLS socket/) }));
    const closed = new Socket();
    expect(() => zfs.receiveFromSocket('p/b', closed)).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_ZFS_DIRECT_STREAM', message: expect.stringMatching(/closed or has no file descriptor/) }));
  });

  it('a zfs that cannot be run fails its stream with MANATEE_ERR_ZFS_COMMAND naming the path', async () => {
    const client = await connected();
    const s = zfs.sendToSocket('p/a@1600000000000', client);
    await expect(s.done).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_COMMAND', message: expect.stringMatching(/cannot run \/nonexistent\/zfs: not found/) });
  });
});

describe('ending a read that another process is blocked in', () => {

  it('shutdownSocketRead makes a child blocked reading the socket see its end', async () => {
    const client = await connected();
    // cat holds the socket as its stdin, as zfs recv (and zfs-fuse's daemon) do.
    const cat = spawn('cat', [], { stdio: [client, 'ignore', 'ignore'] });
    const exited = new Promise<number | null>((r) => { cat.once('close', (code) => { r(code); }); });
    let done = false;
    void exited.then(() => { done = true; });
    await new Promise((r) => setTimeout(r, 300));
    expect(done).toBe(false); // still blocked: nothing was sent
    expect(await shutdownSocketRead(client)).toBeNull();
    expect(await exited).toBe(0);
  });

  it('says why when it cannot: no perl, or a closed socket', async () => {
    const client = await connected();
    expect(await shutdownSocketRead(client, '/nonexistent/perl')).toMatch(/cannot run \/nonexistent\/perl/);
    client.destroy();
    expect(await shutdownSocketRead(client)).toBe('the socket is closed');
  });
});
