/** Atomic file writes: the final mode from the start, fresh temp files, nothing left behind. */
import { closeSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTempBeside, writeFileAtomic } from '../src/files.js';
import { tempDir } from './helpers/openssl.js';

describe('writeFileAtomic', () => {
  it('writes the content with its mode and leaves only the file', () => {
    const dir = tempDir();
    writeFileAtomic(join(dir, 'a.key'), 'secret', 0o600);
    writeFileAtomic(join(dir, 'a.key'), 'secret 2', 0o600);
    expect(readFileSync(join(dir, 'a.key'), 'utf8')).toBe('secret 2');
    expect(statSync(join(dir, 'a.key')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['a.key']);
  });

  it('removes its temp file when the rename fails', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'taken'));
    mkdirSync(join(dir, 'taken', 'inside'));
    expect(() => writeFileAtomic(join(dir, 'taken'), 'x')).toThrow();
    expect(readdirSync(dir)).toEqual(['taken']);
  });
});

describe('createTempBeside', () => {
  it('makes a new, unpredictable name each time, with the mode from the start', () => {
    const dir = tempDir();
    const names = new Set(
      Array.from({ length: 20 }, () => {
        const { temp, fd } = createTempBeside(join(dir, 'f'), 0o600);
        closeSync(fd);
        return temp;
      }),
    );
    expect(names.size).toBe(20);
    for (const name of names) expect(statSync(name).mode & 0o777).toBe(0o600);
  });
});
