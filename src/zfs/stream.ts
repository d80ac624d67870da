// `zfs send` and `zfs recv` as streams. Both run through execa with argument arrays; the
// stream's bytes never pass through a shell or a buffer of unbounded size.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import type { ZfsCommand } from './command.js';
import { ZFS_STDERR_BYTES_MAX } from './command.js';
import { ZfsError, ZfsNoSpaceError } from './errors.js';
import { asError } from '../errors.js';

export const ZFS_ERR_STREAM_INTERRUPTED = 'MANATEE_ERR_ZFS_STREAM_INTERRUPTED';

/** The stream into `zfs recv` ended early or failed (network cut, sender killed). */
export class ZfsStreamInterruptedError extends ZfsError {}

export interface ZfsSendStream {
  /** The raw send stream. */
  readonly stdout: Readable;
  /** Resolves when zfs send exits 0; rejects with a typed ZfsError otherwise. */
  readonly done: Promise<void>;
  /** Stops the send (SIGTERM); `done` then rejects. */
  abort(): void;
  readonly pid: number | undefined;
}

export interface ZfsReceiveOptions {
  /** -F: roll the target back to its newest snapshot first (needed for increments into a used dataset). */
  readonly force?: boolean;
  /** How long to wait for zfs recv to exit after its input ended. */
  readonly exitTimeoutMs?: number;
}

export function sendStream(cmd: ZfsCommand, snapshot: string, fromSnapshot?: string): ZfsSendStream {
  const args = fromSnapshot === undefined ? ['send', snapshot] : ['send', '-i', fromSnapshot, snapshot];
  const sub = execa(cmd.zfsPath, args, {
    reject: false,
    stdin: 'ignore',
    buffer: { stdout: false, stderr: true },
    maxBuffer: { stderr: ZFS_STDERR_BYTES_MAX },
  });
  let aborted = false;
  const done = sub.then((r) => {
    if (!r.failed) return;
    if (aborted) throw new ZfsStreamInterruptedError(ZFS_ERR_STREAM_INTERRUPTED, `zfs ${args.join(' ')} was aborted`, { args, stderr: r.stderr });
    throw cmd.failure(args, r.stderr, r.exitCode, r.timedOut, (r as { code?: string }).code);
  });
  // The caller may look at `done` only after the stream ended; that is not an unhandled rejection.
  done.catch(() => undefined);
  cmd.log.info({ args, pid: sub.pid }, 'zfs: send started');
  return {
    stdout: sub.stdout,
    done,
    pid: sub.pid,
    abort: () => {
      aborted = true;
      sub.kill('SIGTERM');
      // With zfs-fuse the daemon, not the zfs process, writes the stream into the pipe: killing
      // zfs does not stop it. Closing our end of the pipe does (EPIPE); until then the daemon
      // blocks on the full pipe and the pool stays busy.
      sub.stdout.destroy();
    },
  };
}

function isPipeError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

export async function receiveStream(cmd: ZfsCommand, dataset: string, input: Readable, opts: ZfsReceiveOptions): Promise<void> {
  const args = opts.force === true ? ['recv', '-F', dataset] : ['recv', dataset];
  const sub = execa(cmd.zfsPath, args, {
    reject: false,
    stdin: 'pipe',
    stdout: 'ignore',
    maxBuffer: { stderr: ZFS_STDERR_BYTES_MAX },
  });
  cmd.log.info({ args, pid: sub.pid }, 'zfs: receive started');
  // If the input fails, pipeline() destroys recv's stdin: recv then reads a truncated stream
  // and exits with an error by itself, which rolls back the partial receive.
  // A holder object: TypeScript does not see assignments made inside the callback below.
  const failed: { inputError: Error | null } = { inputError: null };
  const piped = pipeline(input, sub.stdin).catch((err: unknown) => {
    failed.inputError = asError(err);
  });
  const exitTimeoutMs = opts.exitTimeoutMs ?? 120_000;
  const timer = setTimeout(() => {
    // Only once the input is over: a receive may legitimately run for hours while data flows.
    if (input.readableEnded || input.destroyed) sub.kill('SIGKILL');
  }, exitTimeoutMs);
  timer.unref();
  let result;
  try {
    await piped;
    clearTimeout(timer);
    const t2 = setTimeout(() => sub.kill('SIGKILL'), exitTimeoutMs);
    t2.unref();
    result = await sub;
    clearTimeout(t2);
  } finally {
    clearTimeout(timer);
  }
  const { inputError } = failed;
  if (!result.failed) {
    if (inputError !== null) cmd.log.warn({ dataset, err: inputError.message }, 'zfs: input failed after zfs recv had the whole stream');
    return;
  }
  const err = cmd.failure(args, result.stderr, result.exitCode, result.timedOut, (result as { code?: string }).code);
  // A full pool is the more useful diagnosis even if the sender also broke off.
  if (inputError !== null && !isPipeError(inputError) && !(err instanceof ZfsNoSpaceError)) {
    const reason = inputError.message;
    throw new ZfsStreamInterruptedError(
      ZFS_ERR_STREAM_INTERRUPTED,
      `stream into zfs recv ${dataset} was interrupted: ${reason} (zfs recv: ${result.stderr.trim() || 'no output'})`,
      { args, stderr: result.stderr, cause: inputError },
    );
  }
  throw err;
}

// ---- Streams straight between zfs and a socket ----
//
// Over plain TCP the stream need not pass through Node at all: `zfs send` gets the connected
// socket as its stdout, `zfs recv` as its stdin, and the kernel moves the bytes (through Node, the
// bootstrap ran at 0.14x to 0.5x a shell's `zfs send | zfs recv`; see tools/bench/bootstrap.ts).
// What the caller must know:
// - child_process stops this process's reading of the socket when it becomes a child's stdio, and
//   libuv makes the socket blocking for the child (the flag is shared by every holder): this
//   process must not read or write the socket afterwards, only end it (shutdown) or destroy it;
// - with zfs-fuse the daemon, not the zfs process, holds a copy of the socket and moves the
//   bytes: killing the zfs process does not stop it. Ending the socket (shutdown of its sending
//   side) does: the daemon's next write fails (EPIPE), and the other side reads the end;
// - nothing here counts bytes: the kernel does (see src/backup/socket-bytes.ts).

export const ZFS_ERR_DIRECT_STREAM = 'MANATEE_ERR_ZFS_DIRECT_STREAM';

/** A zfs command that reads or writes a socket directly. */
export interface ZfsSocketStream {
  /** Resolves when zfs exits 0; rejects with a typed ZfsError otherwise. */
  readonly done: Promise<void>;
  /** Stops it: SIGTERM to the zfs process (and its process group), and, for a send, ends the socket. `done` then rejects. */
  abort(reason: string): void;
  readonly pid: number | undefined;
}

/** The socket's file descriptor must be shareable: a plain TCP (or Unix) socket with an open handle. */
function checkSocket(socket: Socket, what: string): void {
  const handle = (socket as unknown as { _handle?: { fd?: number } | null })._handle;
  if ((socket as { encrypted?: boolean }).encrypted === true) {
    throw new ZfsError(ZFS_ERR_DIRECT_STREAM, `zfs ${what}: a TLS socket cannot be handed to zfs (its bytes are encrypted by this process)`);
  }
  if (socket.destroyed || handle === null || handle === undefined || typeof handle.fd !== 'number' || handle.fd < 0) {
    throw new ZfsError(ZFS_ERR_DIRECT_STREAM, `zfs ${what}: the socket is closed or has no file descriptor`);
  }
}

function spawnOnSocket(cmd: ZfsCommand, args: string[], socket: Socket, direction: 'send' | 'recv'): ZfsSocketStream {
  checkSocket(socket, args[0] ?? '');
  // Its own process group: a zfs replaced by a wrapper script (tests, operators' hooks) is stopped whole.
  const child = spawn(cmd.zfsPath, args, {
    stdio: direction === 'send' ? ['ignore', socket, 'pipe'] : [socket, 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < ZFS_STDERR_BYTES_MAX) stderr += c.toString('utf8');
  });
  let abortReason: string | null = null;
  const done = new Promise<void>((resolve, reject) => {
    let spawnCode: string | undefined;
    child.once('error', (err: NodeJS.ErrnoException) => {
      spawnCode = err.code;
      if (child.pid === undefined) reject(cmd.failure(args, stderr, undefined, false, spawnCode));
    });
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (code === 0) {
        resolve();
        return;
      }
      if (abortReason !== null) {
        reject(new ZfsStreamInterruptedError(ZFS_ERR_STREAM_INTERRUPTED, `zfs ${args.join(' ')} was aborted: ${abortReason}`, { args, stderr }));
        return;
      }
      const err = cmd.failure(args, signal !== null ? `${stderr}\nkilled by ${signal}` : stderr, code ?? undefined, false, spawnCode);
      reject(err);
    });
  });
  done.catch(() => undefined);
  cmd.log.info({ args, pid: child.pid, direct: true }, `zfs: ${direction === 'send' ? 'send' : 'receive'} started on the socket`);
  return {
    done,
    pid: child.pid,
    abort: (reason: string) => {
      if (abortReason === null) abortReason = reason;
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          child.kill('SIGTERM');
        }
      }
      // The daemon writes on: shutting the socket's sending side down makes its next write fail.
      if (direction === 'send' && !socket.destroyed) socket.end();
      // The daemon reads on, blocked for as long as the other side sends nothing (a source cut off
      // by a partition: until TCP keepalive gives up, minutes). Shutting the receiving side down
      // ends that read at once (zfs recv then refuses the short stream and discards it).
      // (A socket its holder destroyed already, a TLS relay's pipe, has a writer of its own to stop.)
      if (direction === 'recv' && !socket.destroyed) {
        void shutdownSocketRead(socket).then((err) => {
          if (err !== null) cmd.log.warn({ args, err, reason }, 'zfs: could not shut the receiving side of the socket down; zfs recv ends when the connection does');
        });
      }
    },
  };
}

/**
 * shutdown(SHUT_RD) of a socket: a read blocked on it, in any process holding it, returns the end.
 * Node has no call for it (its shutdown is SHUT_WR only), so a perl one-liner does it on a copy of
 * the socket (perl-base is part of every Debian system). Resolves null when done, else why not.
 */
export function shutdownSocketRead(socket: Socket, perlPath = 'perl'): Promise<string | null> {
  const handle = (socket as unknown as { _handle?: { fd?: number } | null })._handle;
  if (socket.destroyed || handle === null || handle === undefined) return Promise.resolve('the socket is closed');
  return new Promise((resolve) => {
    let stderr = '';
    // 0 is SHUT_RD. fd 3 is the socket (a copy: the connection is the same).
    const child = spawn(perlPath, ['-e', 'open(my $s, "+<&=", 3) or die "open fd 3: $!\\n"; shutdown($s, 0) or die "shutdown: $!\\n";'], {
      stdio: ['ignore', 'ignore', 'pipe', socket],
    });
    child.stderr?.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    child.once('error', (err) => { resolve(`cannot run ${perlPath}: ${err.message}`); });
    child.once('close', (code) => { resolve(code === 0 ? null : `${perlPath} exited ${code ?? 'on a signal'}: ${stderr.trim()}`); });
  });
}

/**
 * `zfs send [-i from] snapshot` with `socket` as its stdout. The caller has written whatever must
 * precede the stream on the socket (and waited for it to be flushed).
 */
export function sendToSocket(cmd: ZfsCommand, snapshot: string, socket: Socket, fromSnapshot?: string): ZfsSocketStream {
  const args = fromSnapshot === undefined ? ['send', snapshot] : ['send', '-i', fromSnapshot, snapshot];
  return spawnOnSocket(cmd, args, socket, 'send');
}

/**
 * `zfs recv [-F] dataset` with `socket` as its stdin. No byte of the stream may have been read
 * from the socket by this process. A stream that ends early (the sender died, the connection was
 * cut) is refused by zfs recv itself, which then discards the partial receive.
 */
export function receiveFromSocket(cmd: ZfsCommand, dataset: string, socket: Socket, opts: Pick<ZfsReceiveOptions, 'force'> = {}): ZfsSocketStream {
  const args = opts.force === true ? ['recv', '-F', dataset] : ['recv', dataset];
  return spawnOnSocket(cmd, args, socket, 'recv');
}
