import { readFileSync } from 'node:fs';

/**
 * Reads the version from the project's package.json, found by walking up from this file:
 * src/version.ts (run through tsx) sits one level below it, dist/src/version.js two.
 * Read once at import; a missing or unreadable package.json yields '0.0.0-unknown' rather
 * than stopping the server over a label.
 */
function readPackageVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const parsed = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (parsed.name === 'imprint' && typeof parsed.version === 'string') return parsed.version;
    } catch {
      // not here: try the next level up
    }
  }
  return '0.0.0-unknown';
}

/** imprint's version, as in package.json (e.g. "0.1.0"). */
export const VERSION: string = readPackageVersion();
