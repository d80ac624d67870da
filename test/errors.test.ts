// src/errors.ts: the one way to turn a thrown value into a message or an Error.
import { describe, expect, it } from 'vitest';
import { asError, errorLine, errorMessage, hasCode, ManateeError } from '../src/errors.js';

describe('thrown values', () => {
  it('errorMessage gives an Error its message and anything else as a string', () => {
    expect(errorMessage(new Error('disk full'))).toBe('disk full');
    expect(errorMessage(new ManateeError('MANATEE_ERR_X', 'no leader'))).toBe('no leader');
    expect(errorMessage('a string was thrown')).toBe('a string was thrown');
    expect(errorMessage(42)).toBe('42');
    expect(errorMessage(undefined)).toBe('undefined');
  });

  it('errorLine keeps the first line only (a command failure carries its whole output)', () => {
    expect(errorLine(new Error('pg_config failed\nline 2\nline 3'))).toBe('pg_config failed');
    expect(errorLine('one\ntwo')).toBe('one');
    expect(errorLine(new Error(''))).toBe('');
  });

  it('asError keeps an Error as it is and wraps anything else', () => {
    const e = new ManateeError('MANATEE_ERR_X', 'x');
    expect(asError(e)).toBe(e);
    expect(hasCode(asError(e), 'MANATEE_ERR_X')).toBe(true);
    const wrapped = asError({ toString: () => 'an object' });
    expect(wrapped).toBeInstanceOf(Error);
    expect(wrapped.message).toBe('an object');
  });
});
