// The one error of a call to a peer's API. Its code is stable: the API's own code when the peer
// answered {error: {code, message}}, or one of WIRE_ERR when it could not be reached, did not
// answer in time, or answered something that is not the API.
import { ManateeError } from '../errors.js';

export const WIRE_ERR = {
  /** No connection: the request was never delivered (`sent` false), or the connection broke after it was sent (`sent` true). */
  unreachable: 'MANATEE_ERR_UNREACHABLE',
  /** No whole answer within the deadline: the request may have been acted on. */
  timeout: 'MANATEE_ERR_TIMEOUT',
  /** An answer that is not the API's: not JSON, too large, an error status without a code, or not the expected shape. */
  badResponse: 'MANATEE_ERR_BAD_RESPONSE',
  /** The URL given is not an http(s) URL. */
  badUrl: 'MANATEE_ERR_BAD_URL',
} as const;

export class WireError extends ManateeError {
  /** The HTTP status of the answer; null when there was none. */
  readonly status: number | null;
  /** The request may have reached the peer (so repeating it elsewhere could apply a change twice). */
  readonly sent: boolean;
  /** For MANATEE_ERR_UNREACHABLE: the system's word for it (ECONNREFUSED, ENOTFOUND, ECONNRESET...) or its message. */
  readonly reason: string | null;

  constructor(code: string, message: string, details: { status?: number | null; sent?: boolean; reason?: string | null; cause?: unknown } = {}) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status ?? null;
    this.sent = details.sent ?? true;
    this.reason = details.reason ?? null;
  }
}
