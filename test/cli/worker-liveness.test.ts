/**
 * `serve --workers 2` when a worker's event loop stops (SIGSTOP stands in for a hung loop):
 * the primary, whose pings go unanswered, kills it and starts another, and the server answers
 * every new connection again; the worker that kept answering is left alone.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { workersBindThePort } from '../../src/serve.js';
import { call } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import { childPids, isRunning, portHolders } from '../helpers/process-tree.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** How long the harness's workers may go unanswered: short, for the test, but never reached by a busy machine's healthy worker. */
const HUNG_MS = 3_000;

describe('serve --workers 2: a worker that stops answering', () => {
  it('is killed once its pings have gone unanswered for the set time, and replaced; the other one is left alone', { timeout: 60_000 }, async () => {
    const work = tempDir();
    const dataDir = join(work, 'data');
    // serve() as the CLI calls it, with a short hung time.
    const harness = join(work, 'hung-serve.mjs');
    const dist = (path: string) => JSON.stringify(join(root, 'dist', path));
    writeFileSync(
      harness,
      [
        `import { serve } from ${dist('src/serve.js')};`,
        `import { DEFAULT_LIMITS, withoutRateLimits } from ${dist('src/http/limits.js')};`,
        `await serve({ dataDir: process.env.DATA, host: '127.0.0.1', port: 0, limits: withoutRateLimits(DEFAULT_LIMITS), workerHungMs: ${HUNG_MS} }, 2, { stderr: (text) => process.stderr.write(text + '\\n') });`,
      ].join('\n'),
    );
    const primary = spawn(process.execPath, [harness], { env: { ...process.env, DATA: dataDir }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    primary.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const waitFor = async (pattern: RegExp, withinMs: number) => {
      for (let waited = 0; waited < withinMs; waited += 50) {
        const match = pattern.exec(stderr);
        if (match) return match;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`not seen within ${withinMs} ms: ${pattern}: ${stderr}`);
    };
    try {
      const url = (await waitFor(/is serving on (https:\/\/\S+)/, 20_000))[1]!;
      const port = Number(new URL(url).port);
      const ca = readFileSync(join(dataDir, 'ca/root.pem'), 'utf8');
      const listeningAt = Date.now();
      // Quiet but answering: nobody is killed over several hung times.
      await new Promise((resolve) => setTimeout(resolve, 2 * HUNG_MS));
      const [hung, answering] = childPids(primary.pid!);
      expect(stderr).not.toMatch(/has not answered/);
      // A worker that dies within 5 s of starting stops the server (serve.ts EARLY_DEATH_MS).
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 5_300 - (Date.now() - listeningAt))));
      process.kill(hung!, 'SIGSTOP');
      const stoppedAt = Date.now();
      await waitFor(new RegExp(`worker ${hung} has not answered for \\d+ s: killing it`), 4 * HUNG_MS);
      // Not long before the set time (a ping answered just before the stop counts from then).
      expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(HUNG_MS / 2);
      await waitFor(new RegExp(`worker ${hung} exited \\(SIGKILL\\); starting another`), 2_000);
      const replacement = Number((await waitFor(/worker (\d+) is listening/, 20_000))[1]);
      expect(isRunning(hung!)).toBe(false);
      expect(isRunning(answering!)).toBe(true);
      expect(childPids(primary.pid!)).toEqual([answering!, replacement].sort((a, b) => a - b));
      // Where the workers bind the port themselves, the replacement bound the same one.
      if (workersBindThePort()) expect([...portHolders(port, 'listening')].sort()).toEqual([answering!, replacement].sort());
      for (let i = 0; i < 8; i++) expect((await call(`${url}/healthz`, { ca })).status).toBe(200);
    } finally {
      try {
        process.kill(-primary.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
});
