// The admin token check on its own: which header gets 401, which 403, which passes.
import { describe, expect, it } from 'vitest';
import { tokenChecker } from '../../src/api/auth.js';
import { ApiError } from '../../src/api/errors.js';

const check = tokenChecker('s3cret token');

function codeOf(header: string | undefined): string {
  try {
    check.check(header);
    return 'passed';
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return (err as ApiError).code;
  }
}

describe('tokenChecker', () => {
  it('passes the right token, in any case of "Bearer", with extra blanks', () => {
    expect(codeOf('Bearer s3cret token')).toBe('passed');
    expect(codeOf('bearer   s3cret token  ')).toBe('passed');
  });

  it('answers 401 (UNAUTHORIZED) to a missing, empty, non-Bearer or oversized header', () => {
    for (const h of [undefined, '', 'Basic czNjcmV0', 'Bearer', 'Bearer    ', `Bearer ${'x'.repeat(5000)}`]) {
      expect(codeOf(h)).toBe('MANATEE_ERR_UNAUTHORIZED');
    }
  });

  it('answers 403 (FORBIDDEN) to a wrong token, a prefix of it, or a longer one', () => {
    for (const t of ['wrong', 's3cret', 's3cret tokenx', 'S3CRET TOKEN']) expect(codeOf(`Bearer ${t}`)).toBe('MANATEE_ERR_FORBIDDEN');
  });

  it('refuses to be built with an empty token', () => {
    expect(() => tokenChecker('')).toThrow(/must not be empty/);
  });
});
