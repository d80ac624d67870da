import { describe, expect, it } from 'vitest';
import { compareLsn, formatLsn, isLsn, lsnAtLeast, lsnDiffBytes, parseLsn } from '../../src/model/index.js';
import { hasCode } from '../../src/errors.js';

describe('LSN helpers', () => {
  it('parses "X/Y" into a 64-bit position and formats it back as PostgreSQL prints it', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('0/16B3748')).toBe(0x16b3748n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).toBe(0xffffffffffffffffn);
    expect(formatLsn(parseLsn('16/b374d848'))).toBe('16/B374D848');
    expect(formatLsn(0n)).toBe('0/0');
  });

  it('compares across the 32-bit boundary (string order would be wrong)', () => {
    expect(compareLsn('1/0', '0/FFFFFFFF')).toBe(1);
    expect(compareLsn('0/9', '0/10')).toBe(-1);
    expect(compareLsn('A/1', 'a/1')).toBe(0);
    expect(lsnAtLeast('0/10', '0/9')).toBe(true);
    expect(lsnAtLeast('0/9', '0/10')).toBe(false);
  });

  it('subtracts positions in bytes', () => {
    expect(lsnDiffBytes('1/0', '0/FFFFFFFF')).toBe(1n);
    expect(lsnDiffBytes('0/100', '0/200')).toBe(-256n);
  });

  it('rejects malformed LSNs with MANATEE_ERR_PG_LSN_MALFORMED', () => {
    for (const bad of ['', '0', '0/', '/0', 'G/0', '0/0/0', '123456789/0', ' 0/0', '0x1/0', '-1/0']) {
      expect(isLsn(bad)).toBe(false);
      let caught: unknown = null;
      try { parseLsn(bad); } catch (err) { caught = err; }
      expect(hasCode(caught, 'MANATEE_ERR_PG_LSN_MALFORMED'), `input ${JSON.stringify(bad)}`).toBe(true);
    }
    expect(() => formatLsn(-1n)).toThrow(/outside/);
    expect(() => formatLsn(1n << 64n)).toThrow(/outside/);
  });
});
