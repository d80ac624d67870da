// A plain HTTP server on 127.0.0.1 with a handler of the test's (one that misbehaves as the test
// needs), closed with its connections by closeTestServer() in afterEach.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

let server: Server | null = null;

/** Starts the server; resolves with its base URL (http://127.0.0.1:port). */
export async function serveTest(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const s = createServer(handler);
  server = s;
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const addr = s.address();
  return `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
}

export async function closeTestServer(): Promise<void> {
  const s = server;
  server = null;
  if (s !== null) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
}
