// The admin token check: `Authorization: Bearer <token>`. Missing or malformed → 401 (who are
// you?), present but wrong → 403 (not you). The comparison takes the same time whatever the
// token is, so that timing does not reveal how much of a guess was right.
import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiError } from './errors.js';

/** Longest Authorization header considered: a longer one is malformed, not compared. */
const AUTH_HEADER_CHARS_MAX = 4096;

function digest(s: string): Buffer {
  // Hashing first gives equal lengths, which timingSafeEqual needs, without leaking the length.
  return createHash('sha256').update(s, 'utf8').digest();
}

export interface TokenChecker {
  /** Throws ApiError 401/403 unless `header` carries the admin token. */
  check(header: string | undefined): void;
}

/**
 * `adminToken`: the token, or every token accepted (read at each check, so that a rotation's
 * reload takes effect at the next request: src/peer/credentials.ts).
 */
export function tokenChecker(adminToken: string | (() => readonly string[])): TokenChecker {
  const tokens = typeof adminToken === 'string' ? () => [adminToken] : adminToken;
  const check = (list: readonly string[]): void => {
    if (list.length === 0 || list.some((t) => t.length === 0)) throw new ApiError('MANATEE_ERR_BAD_REQUEST', 'the admin token must not be empty');
  };
  check(tokens());
  const expected = (): Buffer[] => {
    const list = tokens();
    check(list);
    return list.map(digest);
  };
  return {
    check(header) {
      if (header === undefined || header.length === 0) {
        throw new ApiError('MANATEE_ERR_UNAUTHORIZED', 'admin routes need an "Authorization: Bearer <admin token>" header');
      }
      const m = header.length <= AUTH_HEADER_CHARS_MAX ? /^Bearer +(.*\S) *$/i.exec(header) : null;
      if (m === null) {
        throw new ApiError('MANATEE_ERR_UNAUTHORIZED', 'the Authorization header must be "Bearer <admin token>"');
      }
      const given = digest(m[1]!);
      // Every accepted token is compared (no early exit), so timing does not tell which matched.
      let ok = false;
      for (const e of expected()) ok = timingSafeEqual(given, e) || ok;
      if (!ok) {
        throw new ApiError('MANATEE_ERR_FORBIDDEN', 'the admin token is wrong');
      }
    },
  };
}
