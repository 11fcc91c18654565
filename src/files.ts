/** File helpers shared by the CA, the data directory, the store and the CLI. */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Creates a new, empty file beside `path` that nobody else can have prepared: a random
 * name, created exclusively and never through a symbolic link, with `mode` from the start
 * (a key is never briefly world-readable, and a file another user made in a shared
 * directory is never written into). Returns its name and an open descriptor.
 */
export function createTempBeside(path: string, mode: number): { readonly temp: string; readonly fd: number } {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  return { temp, fd };
}

/**
 * Writes a file so that a crash leaves either the old or the new content, never half of
 * one: a fresh temp file (createTempBeside), fsync, rename.
 */
export function writeFileAtomic(path: string, content: string | Buffer, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const { temp, fd } = createTempBeside(path, mode);
  try {
    try {
      writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}
