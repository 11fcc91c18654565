/**
 * The relying parties of the README's recipes, the real Debian binaries: nginx with
 * `ssl_verify_client on` and `ssl_crl`, and mosquitto with `require_certificate` and
 * `crlfile`, both fed by `imprint crl --watch --with-root --exec '<reload>'`. A device
 * revoked through the API is refused by each of them within seconds, with no hand reload,
 * and the other devices keep working. .ci/run installs nginx and mosquitto.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/server-process.js';
import { databaseArgs } from '../helpers/database.js';
import { call } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import { enrollDevice, issueOperator, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

let t: TestServer;
let admin: { cert: string; key: string };
let dir: string;
/** `--database URL` when the run's store is PostgreSQL. */
let store: string[];
const children: ChildProcess[] = [];

/** Files a relying party reads: the CA chain it trusts, and our device's key and certificate. */
function files(device: EnrolledDevice): { cert: string; key: string } {
  const cert = join(dir, `${device.id}.pem`);
  const key = join(dir, `${device.id}.key`);
  writeFileSync(cert, device.cert);
  writeFileSync(key, device.key.privateKeyPem, { mode: 0o600 });
  return { cert, key };
}

/** `imprint crl --watch` keeping `file` current and running `reload` after each change. */
function watchCrl(file: string, reload: string): void {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', 'crl', '--data', t.dataDir, ...store, '--out', file, '--with-root', '--watch', '--interval', '1', '--exec', reload], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
}

/** Polls until `check` holds (bounded), returning how long it took. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await check()) return Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`not within ${ms} ms`);
}

const revoke = async (id: string) =>
  expect((await call(`${t.url}/v1/admin/devices/${id}/revoke`, { ca: t.rootPem, json: { reason: 'keyCompromise' }, ...admin })).status).toBe(200);

beforeAll(async () => {
  t = await startTestServer();
  store = await databaseArgs(t.dataDir);
  admin = await issueOperator(t, 'rp-admin', 'admin');
  dir = tempDir();
  writeFileSync(join(dir, 'chain.pem'), readFileSync(t.rootPath, 'utf8') + readFileSync(t.issuerPath, 'utf8'));
});

afterAll(async () => {
  for (const child of children) child.kill('SIGTERM');
  await t.destroy();
});

describe('nginx', () => {
  let port: number;
  let conf: string;
  const nginx = (...args: string[]) => spawnSync('nginx', ['-p', join(dir, 'nginx'), '-c', conf, '-e', join(dir, 'nginx', 'error.log'), ...args], { encoding: 'utf8' });

  beforeAll(async () => {
    port = await freePort();
    mkdirSync(join(dir, 'nginx'));
    conf = join(dir, 'nginx', 'nginx.conf');
    const crl = join(dir, 'nginx-crl.pem');
    const tls = join(t.dataDir, 'tls');
    writeFileSync(
      conf,
      `daemon on;
user root;
pid ${join(dir, 'nginx', 'nginx.pid')};
error_log ${join(dir, 'nginx', 'error.log')};
events {}
http {
  access_log off;
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `${name}_temp_path ${join(dir, 'nginx', name)};`).join('\n  ')}
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${join(tls, 'server.pem')};
    ssl_certificate_key ${join(tls, 'server.key')};
    ssl_client_certificate ${join(dir, 'chain.pem')};
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_crl ${crl};
    location / { return 200 "hello $ssl_client_s_dn\\n"; }
  }
}
`,
    );
    const first = spawnSync(process.execPath, ['dist/src/cli/main.js', 'crl', '--data', t.dataDir, ...store, '--out', crl, '--with-root'], { cwd: root });
    expect(first.status, first.stderr?.toString()).toBe(0);
    const started = nginx();
    expect(started.status, started.stderr).toBe(0);
    watchCrl(crl, `nginx -p ${join(dir, 'nginx')} -c ${conf} -s reload`);
  });

  afterAll(() => {
    if (conf) nginx('-s', 'stop');
  });

  it('refuses a revoked device within seconds, without a hand reload; the others keep working', async () => {
    const [victim, bystander] = [await enrollDevice(t, 'nginx-victim'), await enrollDevice(t, 'nginx-bystander')];
    const get = async (device: EnrolledDevice) =>
      (await call(`https://127.0.0.1:${port}/`, { ca: t.rootPem, cert: device.cert, key: device.key.privateKeyPem })).status;
    expect(await get(victim)).toBe(200);
    await revoke('nginx-victim');
    const took = await within(10_000, async () => (await get(victim)) === 400);
    console.log(`nginx refused the revoked device after ${took} ms`);
    expect(await get(bystander)).toBe(200);
  });
});

describe('mosquitto', () => {
  let port: number;
  let broker: ChildProcess;

  beforeAll(async () => {
    port = await freePort();
    const crl = join(dir, 'mosquitto-crl.pem');
    const tls = join(t.dataDir, 'tls');
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        'user root',
        'per_listener_settings false',
        'allow_anonymous false',
        'persistence false',
        'log_dest stderr',
        `listener ${port} 127.0.0.1`,
        `cafile ${join(dir, 'chain.pem')}`,
        `certfile ${join(tls, 'server.pem')}`,
        `keyfile ${join(tls, 'server.key')}`,
        'require_certificate true',
        'use_identity_as_username true',
        `crlfile ${crl}`,
        '',
      ].join('\n'),
    );
    const first = spawnSync(process.execPath, ['dist/src/cli/main.js', 'crl', '--data', t.dataDir, ...store, '--out', crl, '--with-root'], { cwd: root });
    expect(first.status, first.stderr?.toString()).toBe(0);
    broker = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    children.push(broker);
    // mosquitto re-reads its certificates and CRL on SIGHUP.
    watchCrl(crl, `kill -HUP ${broker.pid}`);
    await within(5_000, async () => spawnSync('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]).status === 0);
  });

  it('refuses a revoked device within seconds, without a hand reload; the others keep working', async () => {
    const [victim, bystander] = [await enrollDevice(t, 'mqtt-victim'), await enrollDevice(t, 'mqtt-bystander')];
    const publish = (device: EnrolledDevice) => {
      const { cert, key } = files(device);
      return spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '--cafile', t.rootPath, '--cert', cert, '--key', key, '-t', 'fleet/hello', '-m', device.id], {
        timeout: 10_000,
      }).status;
    };
    expect(publish(victim)).toBe(0);
    await revoke('mqtt-victim');
    const took = await within(10_000, async () => publish(victim) !== 0);
    console.log(`mosquitto refused the revoked device after ${took} ms`);
    expect(publish(bystander)).toBe(0);
  });
});
