// src/errors.ts: the one way to turn a thrown value into a message or an Error.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERR_THROWN_VALUE, asError, certificateProblem, errorLine, errorMessage, hasCode, ManateeError } from '../src/errors.js';

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
    expect(wrapped).toBeInstanceOf(ManateeError);
    expect(wrapped).toMatchObject({ code: ERR_THROWN_VALUE, message: 'an object' });
  });

  it('certificateProblem says what was wrong with a refused server certificate, and nothing for other errors', () => {
    const err = (code: string, message = code): Error => Object.assign(new Error(message), { code });
    expect(certificateProblem(err('SELF_SIGNED_CERT_IN_CHAIN'))).toBe('its certificate is not signed by a trusted CA (SELF_SIGNED_CERT_IN_CHAIN)');
    expect(certificateProblem(err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'))).toMatch(/not signed by a trusted CA/);
    expect(certificateProblem(err('CERT_HAS_EXPIRED'))).toBe('its certificate has expired (CERT_HAS_EXPIRED)');
    expect(certificateProblem(err('CERT_NOT_YET_VALID'))).toMatch(/not valid yet .*clock/);
    expect(certificateProblem(err('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames: IP: 10.0.0.9 is not in the cert's list"))).toMatch(/does not name the host dialled \(Hostname\/IP does not match/);
    expect(certificateProblem(err('MANATEE_ERR_TLS_PEER_ID', 'bound to peer "c", not to "b"'))).toBe('its certificate is not the peer\'s it was asked for (bound to peer "c", not to "b")');
    expect(certificateProblem(err('ECONNREFUSED'))).toBeNull();
    expect(certificateProblem(new Error('no code'))).toBeNull();
    expect(certificateProblem('a string')).toBeNull();
  });
});

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? tsFiles(path) : name.endsWith('.ts') ? [path] : [];
  });
}

/** Errors made in src/ without a stable code: `new Error(`, `new RangeError(`..., or a class that extends Error itself. */
function uncodedErrors(file: string, code: string): string[] {
  const out: string[] = [];
  code.split('\n').forEach((line, i) => {
    if (/^\s*(\/\/|\*)/.test(line)) return;
    if (/\bnew (?:Type|Range|Syntax|Reference)?Error\(/.test(line) || /\bextends (?:Type|Range)?Error\b/.test(line)) out.push(`${file}:${i + 1}: ${line.trim()}`);
  });
  return out;
}

describe('every error src/ makes has a stable code', () => {
  it('no untyped Error is made in src/ (ManateeError and its subclasses carry MANATEE_ERR_* codes)', () => {
    // The base class itself, and the status page's browser script (not Node code: its errors are shown on the page).
    const skip = new Set(['src/errors.ts']);
    const problems = tsFiles(join(ROOT, 'src'))
      .map((path) => relative(ROOT, path))
      .filter((file) => !skip.has(file) && !file.startsWith('src/api/page/'))
      .flatMap((file) => uncodedErrors(file, readFileSync(join(ROOT, file), 'utf8')));
    expect(problems).toEqual([]);
  });

  it('the check finds an untyped error, and passes a coded one', () => {
    expect(uncodedErrors('x.ts', "throw new Error('boom');\nreject(new RangeError('r'));\nclass E extends Error {}\nthrow new ManateeError('MANATEE_ERR_X', 'ok');\n// new Error( in a comment")).toEqual([
      "x.ts:1: throw new Error('boom');", "x.ts:2: reject(new RangeError('r'));", 'x.ts:3: class E extends Error {}',
    ]);
  });
});
