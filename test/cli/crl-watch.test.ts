/** `imprint crl --watch`: a relying party's CRL file kept current, locally and from --server, with a reload hook. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imprint } from '../helpers/cli.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { enrollDevice, issueOperator, startTestServer, type TestServer } from '../helpers/server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let t: TestServer;
const children: ChildProcess[] = [];

beforeAll(async () => {
  t = await startTestServer();
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await t.destroy();
});

/** Starts `imprint ARGS` and leaves it running; its stderr is collected. */
function start(args: string[]): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { child, stderr: () => stderr };
}

async function until(what: string, check: () => boolean, timeoutMs = 8_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : []);
/** Serials in the file's first CRL (the issuing CA's), as openssl prints them. */
const revokedSerials = (file: string) => [...openssl(['crl', '-in', file, '-noout', '-text']).matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase().replace(/^0+/, ''));

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return exited;
}

describe.each([
  { mode: 'local', args: () => ['--data', t.dataDir] },
  { mode: 'remote', args: () => remoteArgs },
])('imprint crl --watch ($mode)', ({ mode, args }) => {
  it('rewrites the file when a device is revoked, and runs --exec after each rewrite', async () => {
    const dir = tempDir();
    const file = join(dir, 'crl.pem');
    const marker = join(dir, 'reloads');
    const watcher = start(['crl', '--out', file, '--with-root', '--watch', '--interval', '1', '--exec', `echo reloaded >> '${marker}'; exit 3`, ...args()]);
    await until('the first write and reload', () => lines(marker).length === 1);
    expect(readFileSync(file, 'utf8').match(/-----BEGIN X509 CRL-----/g)).toHaveLength(2);
    const before = readFileSync(file, 'utf8');

    const device = await enrollDevice(t, `watched-${mode}`);
    await t.server.instance.fleet.revokeDevice(device.id, 'keyCompromise', { actor: 'cli:test', role: 'admin' });
    await until('the rewrite', () => readFileSync(file, 'utf8') !== before);
    await until('the second reload', () => lines(marker).length === 2);
    expect(revokedSerials(file)).toContain(device.serial.replace(/^0+/, ''));

    // Nothing changed: no rewrite, no reload.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(lines(marker)).toHaveLength(2);
    // The hook's failure is logged with its status, never fatal.
    expect(watcher.stderr()).toMatch(/--exec .* exited 3/);
    expect(watcher.child.exitCode).toBeNull();
    expect(await stop(watcher.child)).toBe(0);
  });
});

let remoteArgs: string[] = [];
beforeAll(async () => {
  const dir = tempDir();
  const operator = await issueOperator(t, 'crl-watcher', 'provisioner');
  writeFileSync(join(dir, 'op.pem'), operator.cert);
  writeFileSync(join(dir, 'op.key'), operator.key);
  remoteArgs = ['--server', t.url, '--cert', join(dir, 'op.pem'), '--key', join(dir, 'op.key'), '--cacert', t.rootPath];
});

describe('imprint crl without the CA key', () => {
  it('exports the CRL the server published, with the issuing key out of reach', async () => {
    await enrollDevice(t, 'keyless-check').then((device) =>
      t.server.instance.fleet.revokeDevice(device.id, undefined, { actor: 'cli:test', role: 'admin' }),
    );
    // The server publishes the current CRL as it serves it.
    const served = await imprint(['crl', ...remoteArgs]);
    expect(served.code, served.stderr).toBe(0);
    const key = join(t.dataDir, 'ca', 'issuer.key');
    renameSync(key, `${key}.away`);
    try {
      const local = await imprint(['crl', '--data', t.dataDir]);
      expect(local.code, local.stderr).toBe(0);
      expect(local.stdout).toBe(served.stdout);
    } finally {
      renameSync(`${key}.away`, key);
    }
  });

  it.each([
    { name: 'exec without watch', args: ['--exec', 'true'], message: /--exec and --interval go with --watch/ },
    { name: 'interval out of range', args: ['--out', 'x.pem', '--watch', '--interval', '0'], message: /--interval must be a whole number from 1 to 3600/ },
    { name: 'der with root', args: ['--der', '--with-root'], message: /--der writes one CRL/ },
  ])('$name is a usage error', async ({ args, message }) => {
    const result = await imprint(['crl', '--data', t.dataDir, ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});
