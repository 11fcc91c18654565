/**
 * Revocation as relying parties and devices see it: open keep-alive connections closed
 * within a second (API and CLI in another process), CRLs checked by `openssl verify
 * -crl_check`, and OCSP answers read by `openssl ocsp`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imprint } from '../helpers/cli.js';
import { curl } from '../helpers/curl.js';
import { call } from '../helpers/https.js';
import { keptAlive as keptAliveOn } from '../helpers/kept-alive.js';
import { openssl, opensslAsync, opensslExit, opensslVerify, tempDir } from '../helpers/openssl.js';
import { enrollDevice, issueOperator, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';

let t: TestServer;
let admin: { cert: string; key: string };
const work = tempDir();

type Device = EnrolledDevice & { readonly certPath: string };

/** Enrolls and writes the certificate to a file for openssl. */
async function enroll(id: string): Promise<Device> {
  const device = await enrollDevice(t, id);
  expect(device.response.status).toBe(201);
  const certPath = join(work, `${id}.pem`);
  writeFileSync(certPath, device.cert);
  return { ...device, certPath };
}

/** A device holding one kept-alive mTLS connection open. */
const keptAlive = (device: Device) => keptAliveOn(t.url, { ca: t.rootPem, cert: device.cert, key: device.key.privateKeyPem });

beforeAll(async () => {
  t = await startTestServer();
  admin = await issueOperator(t, 'alice', 'admin');
});
afterAll(async () => {
  await t.destroy();
});

describe('revocation takes effect within one second', () => {
  it.each([
    {
      name: 'over the API',
      revoke: async (id: string) => {
        const response = await call(`${t.url}/v1/admin/devices/${id}/revoke`, { ca: t.rootPem, json: { reason: 'keyCompromise' }, ...admin });
        expect(response.status).toBe(200);
      },
    },
    {
      name: 'from the CLI in another process',
      revoke: async (id: string) => {
        const result = await imprint(['devices', 'revoke', id, '--reason', 'keyCompromise', '--data', t.dataDir]);
        expect(result.code, result.stderr).toBe(0);
      },
    },
  ])('$name: open connection closed, next request refused, other devices unaffected', async ({ name, revoke }) => {
    const suffix = name.includes('CLI') ? 'cli' : 'api';
    const [victim, bystander] = [await enroll(`victim-${suffix}`), await enroll(`bystander-${suffix}`)];
    const victimConnection = keptAlive(victim);
    const bystanderConnection = keptAlive(bystander);
    expect((await victimConnection.get()).status).toBe(200);
    expect((await bystanderConnection.get()).status).toBe(200);

    await revoke(victim.id);

    expect(await victimConnection.closedWithin(1000)).toBe(true);
    const refused = await victimConnection.get();
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('device_revoked');
    const fine = await bystanderConnection.get();
    expect(fine).toMatchObject({ status: 200, body: { deviceId: bystander.id } });
    expect(await bystanderConnection.closedWithin(300)).toBe(false);
    victimConnection.agent.destroy();
    bystanderConnection.agent.destroy();
  });
});

describe('CRL', () => {
  let revoked: Device;
  let good: Device;
  let crlPath: string;

  beforeAll(async () => {
    [revoked, good] = [await enroll('crl-revoked'), await enroll('crl-good')];
  });

  it('GET /crl lists the revoked device with its reason under a higher CRL number', async () => {
    const crlNumber = async () => {
      const file = join(work, `crl-${Date.now()}.der`);
      const response = await curl(['--cacert', t.rootPath, '-o', file, `${t.url}/crl`]);
      expect(response.status).toBe(200);
      return { file, number: parseInt(openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-crlnumber']).split('=')[1]!, 16) };
    };
    const first = await crlNumber();
    const revoke = await call(`${t.url}/v1/admin/devices/crl-revoked/revoke`, { ca: t.rootPem, json: { reason: 'keyCompromise' }, ...admin });
    expect(revoke.status).toBe(200);
    const second = await crlNumber();
    expect(second.number).toBeGreaterThan(first.number);
    const text = openssl(['crl', '-inform', 'DER', '-in', second.file, '-noout', '-text']);
    expect(text).toContain(`Serial Number: ${revoked.serial.toUpperCase()}`);
    expect(text).toMatch(/CRL Reason Code: \s*\n\s+Key Compromise/);
    expect(text).not.toContain(good.serial.toUpperCase());
    crlPath = join(work, 'crl.pem');
    writeFileSync(crlPath, openssl(['crl', '-inform', 'DER', '-in', second.file]));
  });

  it('openssl verify -crl_check reports the revoked certificate as revoked and the other as OK', () => {
    expect(() => opensslVerify(revoked.cert, t.rootPath, t.issuerPath, ['-crl_check', '-CRLfile', crlPath])).toThrow(/certificate revoked/);
    expect(opensslVerify(good.cert, t.rootPath, t.issuerPath, ['-crl_check', '-CRLfile', crlPath])).toMatch(/: OK/);
  });

  it('imprint crl --with-root writes both CRLs, enough for -crl_check_all', async () => {
    const file = join(work, 'both.pem');
    const result = await imprint(['crl', '--data', t.dataDir, '--out', file, '--with-root']);
    expect(result.code, result.stderr).toBe(0);
    expect(readFileSync(file, 'utf8').match(/BEGIN X509 CRL/g)).toHaveLength(2);
    expect(opensslVerify(good.cert, t.rootPath, t.issuerPath, ['-crl_check_all', '-CRLfile', file])).toMatch(/: OK/);
    expect(() => opensslVerify(revoked.cert, t.rootPath, t.issuerPath, ['-crl_check_all', '-CRLfile', file])).toThrow(/certificate revoked/);
  });

  it('GET /crl/root is signed by the root', async () => {
    const file = join(work, 'root.crl');
    expect((await curl(['--cacert', t.rootPath, '-o', file, `${t.url}/crl/root`])).status).toBe(200);
    expect(openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-CAfile', t.rootPath])).toBe('');
  });
});

describe('OCSP', () => {
  let revoked: Device;
  let good: Device;

  beforeAll(async () => {
    [revoked, good] = [await enroll('ocsp-revoked'), await enroll('ocsp-good')];
    await call(`${t.url}/v1/admin/devices/ocsp-revoked/revoke`, { ca: t.rootPem, json: { reason: 'cessationOfOperation' }, ...admin });
  });

  it('openssl ocsp -url reads revoked, good and unknown, and the response verifies against the root', async () => {
    const ask = (...target: string[]) =>
      opensslAsync(['ocsp', '-issuer', t.issuerPath, ...target, '-url', `${t.url}/ocsp`, '-CAfile', t.rootPath, '-resp_text']);
    const revokedAnswer = await ask('-cert', revoked.certPath);
    expect(revokedAnswer).toMatch(new RegExp(`${revoked.certPath}: revoked`));
    expect(revokedAnswer).toMatch(/Reason: cessationOfOperation/);
    expect(await ask('-cert', good.certPath)).toMatch(new RegExp(`${good.certPath}: good`));
    expect(await ask('-serial', '0x0123456789abcdef0123456789abcdef')).toMatch(/0x0123456789ABCDEF0123456789ABCDEF: unknown/i);
    // The server's own TLS certificate is the same CA's: relying parties get an answer for it too.
    const serverCert = join(t.dataDir, 'tls', 'server.pem');
    expect(await ask('-cert', serverCert)).toMatch(new RegExp(`${serverCert}: good`));
  });

  it('a request made by openssl ocsp -reqout and sent by curl, POST and GET, gets its nonce back', async () => {
    const requestFile = join(work, 'request.der');
    openssl(['ocsp', '-issuer', t.issuerPath, '-cert', revoked.certPath, '-reqout', requestFile]);
    const post = join(work, 'post.der');
    const get = join(work, 'get.der');
    expect((await curl(['--cacert', t.rootPath, '-H', 'Content-Type: application/ocsp-request', '--data-binary', `@${requestFile}`, '-o', post, `${t.url}/ocsp`])).status).toBe(200);
    const encoded = encodeURIComponent(readFileSync(requestFile).toString('base64'));
    expect((await curl(['--cacert', t.rootPath, '-o', get, `${t.url}/ocsp/${encoded}`])).status).toBe(200);
    for (const response of [post, get]) {
      // With -reqin, openssl checks that the response carries the request's nonce.
      const verified = openssl(['ocsp', '-reqin', requestFile, '-respin', response, '-CAfile', t.rootPath]);
      expect(verified).not.toMatch(/error/i);
      expect(openssl(['ocsp', '-respin', response, '-CAfile', t.rootPath, '-resp_text'])).toMatch(/Cert Status: revoked/);
    }
  });

  it('a nonce-less answer is reused until a revocation, even one made by the CLI in another process', async () => {
    const device = await enroll('ocsp-reused');
    const requestFile = join(work, 'no-nonce.der');
    openssl(['ocsp', '-issuer', t.issuerPath, '-cert', device.certPath, '-no_nonce', '-reqout', requestFile]);
    const ask = async (name: string) => {
      const file = join(work, `${name}.der`);
      const sent = await curl(['--cacert', t.rootPath, '-H', 'Content-Type: application/ocsp-request', '--data-binary', `@${requestFile}`, '-o', file, `${t.url}/ocsp`]);
      expect(sent.status).toBe(200);
      expect(openssl(['ocsp', '-reqin', requestFile, '-respin', file, '-CAfile', t.rootPath])).not.toMatch(/error/i);
      return { bytes: readFileSync(file), text: openssl(['ocsp', '-respin', file, '-CAfile', t.rootPath, '-resp_text']) };
    };
    const first = await ask('reused-1');
    expect(first.text).toMatch(/Cert Status: good/);
    // The same signed bytes again: the answer was kept, not re-signed (ECDSA signatures differ each time).
    expect((await ask('reused-2')).bytes.equals(first.bytes)).toBe(true);

    const revoked = await imprint(['devices', 'revoke', 'ocsp-reused', '--reason', 'keyCompromise', '--data', t.dataDir]);
    expect(revoked.code).toBe(0);
    // Straight after the other process returns: no poll interval to wait for.
    const after = await ask('reused-3');
    expect(after.text).toMatch(/Cert Status: revoked/);
    expect(after.text).toMatch(/Reason: keyCompromise/);
  });

  it.each([
    { name: 'garbage body', args: ['-H', 'Content-Type: application/ocsp-request', '--data-binary', 'garbage'], path: '/ocsp' },
    { name: 'json body', args: ['-H', 'Content-Type: application/json', '--data-binary', '{"a":1}'], path: '/ocsp' },
    { name: 'bad base64 in GET', args: [], path: '/ocsp/not*base64' },
    { name: 'undecodable GET path', args: [], path: '/ocsp/%%%' },
  ])('$name -> OCSP malformedRequest', async ({ args, path }) => {
    const file = join(work, `malformed-${Math.random()}.der`);
    const response = await curl(['--cacert', t.rootPath, ...args, '-o', file, `${t.url}${path}`]);
    expect(response.status).toBe(200);
    // openssl exits 1 on any response status other than successful.
    expect(opensslExit(['ocsp', '-respin', file, '-resp_text'])).toEqual({ code: 1, output: expect.stringMatching(/Responder Error: malformedrequest \(1\)/) });
  });
});
