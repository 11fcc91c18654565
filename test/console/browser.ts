/**
 * A Chromium for console tests, driven by playwright-core. Playwright presents client
 * certificates through a TLS proxy of its own, which checks the server's certificate with
 * Node's trust store; Node reads NODE_EXTRA_CA_CERTS only when a process starts, so the
 * browser is launched by a child process started with it pointing at the test server's
 * root, and the test connects to that browser. Certificate checks stay on (no
 * ignoreHTTPSErrors).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

const LAUNCH_OPTIONS = {
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
};

/** Where the tests write their screenshots (not committed): IMPRINT_SCREENSHOTS or a temp folder. */
export const SCREENSHOTS = process.env.IMPRINT_SCREENSHOTS ?? join(tmpdir(), 'imprint-console-screenshots');
mkdirSync(SCREENSHOTS, { recursive: true });

/** A browser whose certificate checks trust `rootPath`, and how to stop it. */
export interface TestBrowser {
  readonly browser: Browser;
  /**
   * A context presenting `identity` (cert chain + key PEM) to `origin`. Without one,
   * Playwright's proxy stays out of the way and Chromium checks the server itself against
   * its own (NSS) store, which cannot be given our root here: that context alone ignores
   * certificate errors, and only the no-certificate page is tested with it.
   */
  context(origin: string, identity?: { cert: string; key: string }, options?: { viewport?: { width: number; height: number } }): Promise<BrowserContext>;
  close(): Promise<void>;
}

const SERVER_SCRIPT = `
import('playwright-core').then(async ({ chromium }) => {
  const server = await chromium.launchServer(JSON.parse(process.env.LAUNCH));
  process.stdout.write(server.wsEndpoint() + '\\n');
  process.stdin.on('end', () => server.close().then(() => process.exit(0)));
  process.stdin.resume();
});`;

/** Launches Chromium (bounded: 30 s) in a child process that trusts `rootPath`. */
export async function launchBrowser(rootPath: string): Promise<TestBrowser> {
  const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', SERVER_SCRIPT], {
    cwd: process.cwd(),
    env: { ...process.env, NODE_EXTRA_CA_CERTS: rootPath, LAUNCH: JSON.stringify(LAUNCH_OPTIONS) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('chromium did not start within 30 s')), 30_000);
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve(line.trim());
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the browser process ended (${code})`));
    });
  });
  const browser = await chromium.connect(endpoint, { timeout: 30_000 });
  return {
    browser,
    async context(origin, identity, options = {}) {
      const context = await browser.newContext({
        ignoreHTTPSErrors: !identity,
        acceptDownloads: true,
        viewport: options.viewport ?? { width: 1280, height: 900 },
        ...(identity ? { clientCertificates: [{ origin, cert: Buffer.from(identity.cert), key: Buffer.from(identity.key) }] } : {}),
      });
      context.setDefaultTimeout(15_000);
      context.setDefaultNavigationTimeout(15_000);
      return context;
    },
    async close() {
      await browser.close().catch(() => undefined);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
