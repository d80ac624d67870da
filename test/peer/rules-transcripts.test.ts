// Runs the scenario transcripts in testdata/rules/ (see transcript.ts for the format).
// UPDATE_TRANSCRIPTS=1 rewrites their expected outputs.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTranscript } from './transcript.js';

const dir = join(import.meta.dirname, 'testdata', 'rules');
const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

describe('rules transcripts', () => {
  it('finds the transcripts', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files)('%s', (file) => {
    const mismatches = runTranscript(join(dir, file), process.env.UPDATE_TRANSCRIPTS === '1');
    expect(mismatches).toEqual([]);
  });
});
