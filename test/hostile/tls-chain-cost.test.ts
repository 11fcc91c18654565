/**
 * An anonymous client's certificate chain cannot make the TLS handshake expensive (handshake-guard.ts).
 * The hostile chain: a P-256 leaf the client holds, "issued" by fake intermediates each holding
 * an RSA-3072 key with a 3072-bit public exponent and a random signature. Unguarded, OpenSSL
 * checks every link's signature on the event loop (~4-5 ms each: ~220-290 ms for 60 links).
 * CPU is read from /proc (the server runs in this process), not from wall time.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuSeconds, spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import * as der from '../../src/asn1/der.js';
import { HANDSHAKE_BYTE_BUDGET } from '../../src/http/handshake-guard.js';
import { query } from '../helpers/database.js';
import { tempDir } from '../helpers/openssl.js';
import { call } from '../helpers/https.js';
import { enrollDevice, recordExpiredDevice, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';

const OID = {
  commonName: '2.5.4.3',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  basicConstraints: '2.5.29.19',
};

const name = (cn: string) => der.sequence(der.set(der.sequence(der.objectIdentifier(OID.commonName), der.utf8String(cn))));
const pem = (bytes: Buffer) => `-----BEGIN CERTIFICATE-----\n${bytes.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;

/** A leaf and `links` costly fake intermediates, as one PEM chain, and the leaf's key. */
function hostileChain(links: number): { cert: string; key: string; bytes: number } {
  const sigAlg = der.sequence(der.objectIdentifier(OID.sha256WithRsa), der.nullValue());
  const validity = der.sequence(der.time(new Date(Date.now() - 3_600_000)), der.time(new Date(Date.now() + 86_400_000)));
  // One RSA-3072 modulus for every link; the exponent n - 2 is odd, below n and 3072 bits long.
  const modulus = randomBytes(384);
  modulus[0]! |= 0x80;
  modulus[383]! |= 1;
  const exponent = Buffer.from(modulus);
  exponent[383]! -= 2;
  const rsaSpki = der.sequence(der.sequence(der.objectIdentifier(OID.rsaEncryption), der.nullValue()), der.bitString(der.sequence(der.unsignedInteger(modulus), der.unsignedInteger(exponent))));
  const caExtension = der.explicit(3, der.sequence(der.sequence(der.objectIdentifier(OID.basicConstraints), der.boolean(true), der.octetString(der.sequence(der.boolean(true))))));
  const certificate = (subject: string, issuer: string, spki: Buffer, extensions: Buffer[]) =>
    der.sequence(
      der.sequence(der.explicit(0, der.smallInteger(2)), der.unsignedInteger(randomBytes(15)), sigAlg, name(issuer), validity, name(subject), spki, ...extensions),
      sigAlg,
      der.bitString(randomBytes(384)),
    );
  const leafKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const certificates = [certificate('hostile-leaf', 'I1', leafKey.publicKey.export({ type: 'spki', format: 'der' }), [])];
  for (let i = 1; i <= links; i++) certificates.push(certificate(`I${i}`, `I${i + 1}`, rsaSpki, [caExtension]));
  return {
    cert: certificates.map(pem).join(''),
    key: leafKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    bytes: certificates.reduce((sum, each) => sum + each.length, 0),
  };
}

/** What a handshake attempt got: the server's answer to GET /healthz, and how it ended. */
interface Attempt {
  /** The client's handshake completed. */
  readonly secured: boolean;
  readonly answer: string;
  readonly error: string | undefined;
}

/** One handshake from `localAddress` presenting `chain`, then GET /healthz. */
function attempt(port: number, localAddress: string, chain: { cert: string; key: string }): Promise<Attempt> {
  return new Promise((resolve) => {
    let secured = false;
    let answer = '';
    let error: string | undefined;
    const tcp = netConnect({ host: '127.0.0.1', port, localAddress });
    const socket: TLSSocket = connect({ socket: tcp, cert: chain.cert, key: chain.key, rejectUnauthorized: false }, () => {
      secured = true;
      socket.end('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    });
    socket.setTimeout(20_000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    socket.on('error', (e) => (error = e.message));
    socket.on('close', () => resolve({ secured, answer, error }));
  });
}

/** Milliseconds of this process's CPU (the server's, and the client's little) over `run`. */
async function cpuMs(run: () => Promise<unknown>): Promise<number> {
  const before = cpuSeconds(process.pid);
  await run();
  return (cpuSeconds(process.pid) - before) * 1000;
}

describe('hostile client certificate chains', () => {
  let t: TestServer;
  let port: number;
  let device: EnrolledDevice;
  const long = hostileChain(60);
  const short = hostileChain(6);

  beforeAll(async () => {
    t = await startTestServer();
    port = Number(new URL(t.url).port);
    device = await enrollDevice(t, 'guard-device');
  });
  afterAll(() => t.destroy());

  const healthy = async () => (await call(`${t.url}/healthz`, { ca: t.rootPem })).status;

  /** What every real client does, on a quiet server (native TLS) and on one under attack (guarded). */
  const legitimateClients = (armed: boolean) => {

    it('a device reconnects over mTLS and is told who it is', async () => {
      const response = await call(`${t.url}/v1/device`, { ca: t.rootPem, cert: device.cert, key: device.key.privateKeyPem });
      expect(response.status).toBe(200);
      expect(response.body.deviceId).toBe('guard-device');
    });

    it('a device enrolls without a certificate, and the audit log names its address', async () => {
      const enrolled = await enrollDevice(t, `guard-new-${armed ? 'g' : 'n'}`);
      expect(enrolled.response.status).toBe(201);
      const [event] = query<{ source: string }>(t.dataDir, "SELECT source FROM audit_events WHERE device_id = ? ORDER BY id DESC LIMIT 1", enrolled.id);
      expect(event?.source).toBe('127.0.0.1');
    });

    it('a device resumes its TLS session', async () => {
      const first = await resumable(undefined);
      const second = await resumable(first.session);
      expect(second.reused).toBe(true);
      expect(second.answer).toMatch(/^HTTP\/1\.1 200/);
    });

    it('a device with an expired certificate gets its 401 JSON on every try', async () => {
      const expired = await recordExpiredDevice(t, `guard-expired-${armed ? 'g' : 'n'}`, 2);
      for (let i = 0; i < 2; i++) {
        const response = await call(`${t.url}/v1/device`, { ca: t.rootPem, cert: expired.cert, key: expired.key.privateKeyPem });
        expect(response.status).toBe(401);
        expect(response.body.error).toBe('client_cert_invalid');
      }
    });
  };

  describe('on a quiet server', () => legitimateClients(false));

  it('the chains are what they claim: the long one is far over the byte budget, the short one well within it', () => {
    expect(long.bytes).toBeGreaterThan(4 * HANDSHAKE_BYTE_BUDGET);
    expect(short.bytes).toBeLessThan(HANDSHAKE_BYTE_BUDGET - 2048);
  });

  it('the first hostile handshake arms the guard; later ones, from any source, are cut cheaply and others are served', async () => {
    // A quiet server takes the native path: this one costs what it costs, and arms the guard.
    await attempt(port, '127.0.0.2', long);
    const costs: number[] = [];
    const answers: string[] = [];
    for (const source of ['127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']) {
      costs.push(await cpuMs(async () => answers.push((await attempt(port, source, long)).answer)));
      expect(await healthy()).toBe(200);
    }
    // Unguarded, each costs ~220-290 ms of CPU; cut, a few ms (one 10 ms tick of /proc at most, mostly).
    const average = costs.reduce((sum, each) => sum + each, 0) / costs.length;
    expect(average, `CPU per hostile handshake: ${costs.join(', ')} ms`).toBeLessThan(50);
    // Cut before OpenSSL held the whole certificate message: no answer.
    expect(answers).toEqual(['', '', '', '']);
  });

  it('a source whose chain was cut at the byte budget is not refused: the cut cost nothing, and its address may be a NAT\'s', async () => {
    const honest = await call(`${t.url}/v1/device`, { ca: t.rootPem, cert: device.cert, key: device.key.privateKeyPem, localAddress: '127.0.0.3' });
    expect(honest.status).toBe(200);
  });

  it('a costly chain that fits the byte budget costs one handshake (~30 ms), then its source is refused at accept, before TLS reads a byte', async () => {
    expect(await cpuMs(() => attempt(port, '127.0.0.7', short))).toBeLessThan(150);
    const second = await attempt(port, '127.0.0.7', short);
    expect(second.secured).toBe(false);
    expect(second.answer).toBe('');
    expect(await healthy()).toBe(200);
  });

  it('ten costly chains at once from one source cost one handshake: the others are cut before TLS reads them', async () => {
    const attempts: Promise<Attempt>[] = [];
    const cost = await cpuMs(async () => {
      for (let i = 0; i < 10; i++) attempts.push(attempt(port, '127.0.0.8', short));
      await Promise.all(attempts);
    });
    // Each costs ~30 ms when read: ten read would be ~300 ms.
    expect(cost).toBeLessThan(150);
    expect((await Promise.all(attempts)).filter((each) => each.answer !== '').length).toBeLessThanOrEqual(1);
  });

  describe('under attack', () => legitimateClients(true));

  /** GET /v1/device as the device on a connection offering `session`; resolves once the answer is in. */
  function resumable(session: Buffer | undefined): Promise<{ reused: boolean; answer: string; session: Buffer | undefined }> {
    return new Promise((resolve, reject) => {
      let answer = '';
      let latest: Buffer | undefined;
      let reused = false;
      const socket = connect({ host: '127.0.0.1', port, ca: t.rootPem, cert: device.cert, key: device.key.privateKeyPem, servername: 'localhost', session }, () => {
        reused = socket.isSessionReused();
        socket.write('GET /v1/device HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      });
      socket.on('session', (ticket: Buffer) => (latest = ticket));
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.on('error', reject);
      socket.on('close', () => resolve({ reused, answer, session: latest }));
    });
  }
});

describe('serve --workers 2: a worker that sees a hostile chain warns the other', () => {
  let server: ServerProcess;
  const long = hostileChain(60);
  const short = hostileChain(6);

  beforeAll(async () => {
    server = await spawnServer(join(tempDir(), 'data'), ['--workers', '2', '--rate-limit', 'off']);
  });
  afterAll(async () => {
    if (server.child.exitCode === null) await server.killGroup('SIGKILL');
  });

  it('arming and back-offs reach both workers: no source gets an unguarded hostile handshake from the second worker', async () => {
    // One message through the primary: moments on a quiet machine, longer on a busy CI one (it failed once at 200 ms).
    const settle = () => new Promise((resolve) => setTimeout(resolve, 1000));
    // Unarmed, the first costs what it costs, in one worker, and arms the guard in both.
    const first = await attempt(server.port, '127.0.1.2', long);
    expect(first.secured).toBe(true);
    await settle();
    // Spread over both workers (in turn, or by the kernel's hash), every one is cut.
    const cut: Attempt[] = [];
    for (const source of ['127.0.1.3', '127.0.1.4', '127.0.1.5', '127.0.1.6']) cut.push(await attempt(server.port, source, long));
    expect(cut.map((each) => each.answer)).toEqual(['', '', '', '']);
    // A costly chain within the budget: one handshake in one worker, then its source is refused at accept by both.
    const cpuBefore = cpuSeconds(server.child.pid!);
    await attempt(server.port, '127.0.1.7', short);
    const spentMs = Math.round((cpuSeconds(server.child.pid!) - cpuBefore) * 1000);
    await settle();
    // Ten land on the other worker too, however connections are spread (all on one once in 1,024).
    for (let i = 0; i < 10; i++) expect((await attempt(server.port, '127.0.1.7', short)).secured, `attempt ${i + 1} after one that cost the server ${spentMs} ms of CPU`).toBe(false);
    // Others are served by both.
    for (let i = 0; i < 4; i++) expect((await call(`${server.url}/healthz`, { ca: server.rootPem })).status).toBe(200);
  });
});
