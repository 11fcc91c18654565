/**
 * A real imprint server on an ephemeral loopback port with its own temporary data directory,
 * in this process or as its own; on the store this test run uses (database.ts).
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { caPaths } from '../../src/ca/ca-directory.js';
import { DEFAULT_LIMITS, withoutRateLimits, type Limits } from '../../src/http/limits.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/server.js';
import { createHash, createPublicKey } from 'node:crypto';
import { buildCsr, generateDeviceKey, type DeviceKey } from '../../simulator/csr.js';
import { spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import { databaseArgs, databaseUrlFor } from './database.js';
import { call, type Response } from './https.js';
import { tempDir } from './openssl.js';

/** A started server and the paths a client needs. */
export interface TestServer {
  readonly server: RunningServer;
  readonly url: string;
  readonly dataDir: string;
  readonly rootPath: string;
  readonly issuerPath: string;
  readonly rootPem: string;
  mintToken(options?: { deviceId?: string; ttlSeconds?: number; label?: string }): Promise<{ id: string; token: string }>;
  /** Stops the listener; the data directory stays for a restart. */
  stop(): Promise<void>;
  /** Stops and removes the data directory. */
  destroy(): Promise<void>;
}

/**
 * Starts a server on 127.0.0.1:0, on a fresh data directory or an existing one. Rate limits
 * are off unless given: every test client shares one loopback address.
 */
export async function startTestServer(
  dataDir = join(tempDir(), 'data'),
  limits: Limits = withoutRateLimits(DEFAULT_LIMITS),
  options: Pick<ServeOptions, 'statusPort' | 'init' | 'renewal'> = {},
): Promise<TestServer> {
  const databaseUrl = await databaseUrlFor(dataDir);
  const server = await startServer({ dataDir, databaseUrl, host: '127.0.0.1', port: 0, limits, ...options });
  const paths = caPaths(dataDir);
  let stopped = false;
  const stop = async () => {
    if (!stopped) await server.close();
    stopped = true;
  };
  return {
    server,
    url: server.url,
    dataDir,
    rootPath: paths.root,
    issuerPath: paths.issuer,
    rootPem: readFileSync(paths.root, 'utf8'),
    async mintToken(options = {}) {
      const { tokens } = await server.instance.tokens.mint(
        {
          ttlSeconds: options.ttlSeconds,
          label: options.label,
          deviceIds: options.deviceId ? [options.deviceId] : undefined,
        },
        { actor: 'cli:test', role: 'admin' },
      );
      return tokens[0]!;
    },
    stop,
    async destroy() {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `imprint serve` as its own process (scripts/server-process.ts) on `dataDir`. */
export async function spawnTestServer(dataDir: string, args: string[] = [], env: Record<string, string> = {}): Promise<ServerProcess> {
  return spawnServer(dataDir, [...args, ...(await databaseArgs(dataDir))], env);
}

/** An operator's certificate chain and key, issued through the same service as the CLI. */
export async function issueOperator(t: TestServer, name: string, role: 'admin' | 'provisioner') {
  const issued = await t.server.instance.signing().operators.issue({ name, role }, { actor: 'cli:test', role: 'admin' });
  return { cert: issued.certificatePem + issued.chainPem[0], key: issued.keyPem, serial: issued.serial };
}

/** A device enrolled over HTTPS with a fresh P-256 key (and a fresh token unless one is given). */
export interface EnrolledDevice {
  readonly id: string;
  readonly key: DeviceKey;
  readonly cert: string;
  readonly serial: string;
  readonly response: Response;
}

/** Enrolls `id` as a device would; the caller checks `response` when refusal is possible. */
export async function enrollDevice(t: TestServer, id: string, token?: string): Promise<EnrolledDevice> {
  const key = await generateDeviceKey();
  const response = await call(`${t.url}/v1/enroll`, {
    ca: t.rootPem,
    json: { csr: buildCsr(key, id) },
    headers: { authorization: `Bearer ${token ?? (await t.mintToken()).token}` },
  });
  return { id, key, cert: response.body.certificate, serial: response.body.serial, response };
}

/**
 * A device certificate signed by the server's issuing CA directly, bypassing enrollment
 * (so never recorded), valid from `fromMs` to `toMs` relative to now.
 */
export async function signedButNotRecorded(t: TestServer, name: string, fromMs: number, toMs: number): Promise<{ cert: string; key: string }> {
  const key = await generateDeviceKey();
  const spki = createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' });
  const issued = t.server.instance.signing().ca.issueClientCertificate({
    kind: 'device',
    name,
    keyType: 'ec',
    subjectPublicKeyInfo: spki,
    subjectPublicKeyBits: spki.subarray(spki.length - 65),
    notBefore: new Date(Date.now() + fromMs),
    notAfter: new Date(Date.now() + toMs),
  });
  return { cert: issued.pem, key: key.privateKeyPem };
}

/** A device enrolled long ago whose certificate expired `daysAgo` days ago (recorded as enrollment would). */
export async function recordExpiredDevice(server: TestServer, id: string, daysAgo: number): Promise<{ id: string; key: DeviceKey; cert: string; serial: string }> {
  const key = await generateDeviceKey();
  const spki = createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' });
  const notAfter = new Date(Date.now() - daysAgo * 86_400_000);
  const notBefore = new Date(notAfter.getTime() - 90 * 86_400_000);
  const issued = server.server.instance.signing().ca.issueClientCertificate({
    kind: 'device',
    name: id,
    keyType: 'ec',
    subjectPublicKeyInfo: spki,
    subjectPublicKeyBits: spki.subarray(spki.length - 65),
    notBefore,
    notAfter,
  });
  const token = await server.mintToken();
  const recorded = await server.server.instance.store.redeemTokenAndRecordCertificate({
    tokenId: token.id,
    now: notBefore,
    csrSha256: createHash('sha256').update(id).digest('hex'),
    mode: 'create',
    supersede: 'superseded',
    certificate: {
      serial: issued.serial,
      kind: 'device',
      subject: id,
      deviceId: id,
      spkiSha256: createHash('sha256').update(spki).digest('hex'),
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      issuedAt: notBefore,
      tokenId: token.id,
      der: issued.der,
    },
    audit: { at: notBefore, actor: `token:${token.id}`, action: 'enroll', outcome: 'ok', deviceId: id },
  });
  if (!recorded.ok) throw new Error(`could not record ${id}: ${recorded.conflict}`);
  return { id, key, cert: issued.pem, serial: issued.serial };
}
