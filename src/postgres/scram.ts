// PostgreSQL's SCRAM-SHA-256 password verifiers (pg_authid.rolpassword), as RFC 5802 and 7677
// define them and PostgreSQL stores them: "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"
// (base64). Built from node:crypto's PBKDF2, HMAC and SHA-256, nothing of our own.
//
// Why: a rotation of the shard secret moves the derived role passwords (src/peer/pg-credentials.ts).
// A standby reads the replicated verifier from its own catalog and finds which candidate password
// it matches, and the primary sets a new password as a verifier, so that no plain password is in
// the statement (a server log with log_statement would keep it). Passwords are taken as they are:
// PostgreSQL runs SASLprep first, which changes nothing in the ASCII passwords Manatee derives.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

const PREFIX = 'SCRAM-SHA-256';
/** PostgreSQL's default scram_iterations. */
export const SCRAM_ITERATIONS = 4096;
const SALT_BYTES = 16;
/** A verifier's iteration count above this is not computed (a hostile catalog must not stall the sitter). */
const ITERATIONS_MAX = 100_000;

interface Keys {
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

// PBKDF2 runs on libuv's thread pool: thousands of rounds must not stall the sitter's event loop,
// which also carries Raft.
async function keysOf(password: string, salt: Buffer, iterations: number): Promise<Keys> {
  const salted = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

/** A verifier for `password` (a fresh salt unless one is given), as ALTER ROLE ... PASSWORD takes it. */
export async function scramVerifier(password: string, opts: { salt?: Buffer; iterations?: number } = {}): Promise<string> {
  const salt = opts.salt ?? randomBytes(SALT_BYTES);
  const iterations = opts.iterations ?? SCRAM_ITERATIONS;
  const k = await keysOf(password, salt, iterations);
  return `${PREFIX}$${iterations}:${salt.toString('base64')}$${k.storedKey.toString('base64')}:${k.serverKey.toString('base64')}`;
}

/** Whether `verifier` (pg_authid.rolpassword) is the one of `password`; false for anything not a SCRAM-SHA-256 verifier. */
export async function scramVerifierMatches(verifier: string, password: string): Promise<boolean> {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(verifier);
  if (m === null) return false;
  const iterations = Number(m[1]);
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > ITERATIONS_MAX) return false;
  const k = await keysOf(password, Buffer.from(m[2]!, 'base64'), iterations);
  const stored = Buffer.from(m[3]!, 'base64');
  const server = Buffer.from(m[4]!, 'base64');
  return stored.length === k.storedKey.length && server.length === k.serverKey.length
    && timingSafeEqual(stored, k.storedKey) && timingSafeEqual(server, k.serverKey);
}
