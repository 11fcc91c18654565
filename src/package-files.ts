/** Folders shipped with the package (migrations/, console/, deploy/), found whether the code runs from src or dist. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's folder `name` holding `marker`: the nearest one beside a package.json above this module. */
export function packageDirectory(name: string, marker = '.'): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, name);
    if (existsSync(join(dir, 'package.json')) && existsSync(join(candidate, marker))) return candidate;
  }
  throw new Error(`${name} directory not found next to package.json`);
}
