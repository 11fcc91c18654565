/** Runs the built `imprint` CLI and the simulator as separate processes, as a user would. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { databaseArgs } from './database.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Exit code and output of a finished process. */
export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(script: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * `imprint ARGS` from the build in dist/ (npm test builds first), on the store of the data
 * directory it names with `--data` unless it names a `--database` itself.
 */
export async function imprint(args: string[], env?: Record<string, string>): Promise<Run> {
  const data = args.indexOf('--data');
  const store = data >= 0 && data + 1 < args.length && !args.includes('--database') ? await databaseArgs(args[data + 1]!) : [];
  return run('dist/src/cli/main.js', [...args, ...store], env);
}

/** `npm run simulate -- ARGS` without npm in between. */
export const simulate = (args: string[]): Promise<Run> => run('dist/simulator/main.js', args);

/** `npm run demo` without npm in between. */
export const demo = (): Promise<Run> => run('dist/scripts/demo.js', []);
