// The facts file (src/peer/facts.ts): what a peer remembers across restarts.
import { describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FACTS_ERR_INVALID, FileFacts, NO_FACTS, parseFacts } from '../../src/peer/facts.js';
import { hasCode } from '../../src/errors.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('the facts file', () => {
  it('reads as no facts when it does not exist yet, and reads back what was written (no temporary file left)', async () => {
    const tmp = await makeTmpDir('facts');
    try {
      const facts = new FileFacts(join(tmp.path, 'sitter-facts.json'));
      expect(await facts.read()).toEqual(NO_FACTS);
      await facts.write({ rebuiltFrom: { primaryId: 'b', generation: 7 }, initdbDone: true });
      expect(await facts.read()).toEqual({ rebuiltFrom: { primaryId: 'b', generation: 7 }, initdbDone: true });
      await facts.write({ rebuiltFrom: null, initdbDone: true });
      expect(await facts.read()).toEqual({ rebuiltFrom: null, initdbDone: true });
      expect(JSON.parse(await readFile(facts.where, 'utf8'))).toEqual({ rebuiltFrom: null, initdbDone: true });
      expect(await readdir(tmp.path)).toEqual(['sitter-facts.json']);
    } finally {
      await tmp.cleanup();
    }
  });

  it('rejects a malformed file with MANATEE_ERR_FACTS_INVALID naming the file', async () => {
    const tmp = await makeTmpDir('facts');
    try {
      const path = join(tmp.path, 'sitter-facts.json');
      await writeFile(path, '{"rebuiltFrom": {"primaryId": 3}}');
      const err = await errorOf(new FileFacts(path).read());
      expect(hasCode(err, FACTS_ERR_INVALID)).toBe(true);
      expect((err as Error).message).toBe(`${path}: rebuiltFrom must be {primaryId: string, generation: number}`);
      await writeFile(path, 'not json');
      const err2 = await errorOf(new FileFacts(path).read());
      expect(hasCode(err2, FACTS_ERR_INVALID)).toBe(true);
      expect((err2 as Error).message).toMatch(new RegExp(`^${path}: is not JSON`));
    } finally {
      await tmp.cleanup();
    }
  });

  it('fails on a file it cannot read (never forgets the facts silently)', async () => {
    const tmp = await makeTmpDir('facts');
    try {
      const path = join(tmp.path, 'sitter-facts.json');
      await mkdir(path);
      const err = await errorOf(new FileFacts(path).read());
      expect((err as { code?: string }).code).toBe('EISDIR');
    } finally {
      await tmp.cleanup();
    }
  });

  it('parses the shapes it accepts', () => {
    expect(parseFacts('{}', 'f')).toEqual(NO_FACTS);
    expect(parseFacts('{"initdbDone": true, "rebuiltFrom": null}', 'f')).toEqual({ rebuiltFrom: null, initdbDone: true });
    expect(() => parseFacts('[]', 'f')).toThrow('f: must be an object {rebuiltFrom, initdbDone}');
  });
});

describe('the record of a fenced write without an answer', () => {
  const peerOf = (id: string) => ({ id, host: id, pgUrl: `postgres://${id}:5432/postgres`, apiUrl: `http://${id}:5433` });
  const write = {
    kind: 'takeover' as const,
    write: {
      expectVersion: 4,
      newState: { generation: 3, primary: peerOf('b'), sync: peerOf('c'), async: [], deposed: [peerOf('a')], initWal: '0/3000060' },
      summary: 'sync (b) took over as primary (from a)',
    },
  };

  it('is written and read back beside the other facts', async () => {
    const tmp = await makeTmpDir('facts');
    try {
      const facts = new FileFacts(join(tmp.path, 'sitter-facts.json'));
      await facts.write({ rebuiltFrom: { primaryId: 'a', generation: 2 }, initdbDone: true, unsettledWrite: write });
      expect(await facts.read()).toEqual({ rebuiltFrom: { primaryId: 'a', generation: 2 }, initdbDone: true, unsettledWrite: write });
      await facts.write({ rebuiltFrom: { primaryId: 'a', generation: 2 }, initdbDone: true, unsettledWrite: null });
      expect(await facts.read()).toEqual({ rebuiltFrom: { primaryId: 'a', generation: 2 }, initdbDone: true });
    } finally {
      await tmp.cleanup();
    }
  });

  it('a garbled one is MANATEE_ERR_FACTS_INVALID naming the file and what is wrong, and the file (with its other facts) is left as it is', async () => {
    const tmp = await makeTmpDir('facts');
    try {
      const path = join(tmp.path, 'sitter-facts.json');
      const cases: [unknown, string][] = [
        ['takeover', 'must be an object {kind, write: {expectVersion, newState, summary}}'],
        [{ ...write, kind: 'rebuild' }, '.kind must be one of takeover, promoteSync, replaceSync, promoteAsync, onwmUpgrade (got "rebuild")'],
        [{ kind: 'takeover' }, '.write must be an object {expectVersion, newState, summary}'],
        [{ ...write, write: { ...write.write, expectVersion: -1 } }, '.write.expectVersion must be an integer >= 0 (got -1)'],
        [{ ...write, write: { ...write.write, summary: 7 } }, '.write.summary must be a string'],
        [{ ...write, write: { ...write.write, newState: { ...write.write.newState, initWal: 'x' } } }, '.write.newState is not a cluster state: initWal'],
      ];
      for (const [record, what] of cases) {
        const text = JSON.stringify({ rebuiltFrom: { primaryId: 'a', generation: 2 }, initdbDone: true, unsettledWrite: record });
        await writeFile(path, text);
        const err = await errorOf(new FileFacts(path).read());
        expect(hasCode(err, FACTS_ERR_INVALID)).toBe(true);
        const message = (err as Error).message;
        expect(message.startsWith(`${path}: unsettledWrite ${what}`)).toBe(true);
        expect(message).toMatch(/The sitter does not start on it: the fenced write it records may still commit, so its fence must hold\. The file is left as it is/);
        expect(await readFile(path, 'utf8')).toBe(text);
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
