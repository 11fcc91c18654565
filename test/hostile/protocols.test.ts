/**
 * Hostile input for EST and SCEP against `imprint serve --workers 2` run as a real process
 * tree: malformed CMS (truncated, wrong content types, no signers, a wrong digest, an
 * envelope to another recipient, deep nesting, huge counts, lengths past the end), wrong
 * content types, oversized bodies, base64 garbage, certificates of another CA as SCEP
 * signer and as EST re-enroll client certificate, and public-key encodings that have
 * crashed native code (an EC point at infinity aborts Node 20) in EST CSRs, SCEP
 * RenewalReq CSRs and SCEP signer certificates.
 *
 * Every answer must be a 4xx JSON error with a known code or a SCEP CertRep with pkiStatus
 * FAILURE (never a 5xx, never a SUCCESS), and the processes recorded before the corpus must
 * be the ones running after each input: a replaced worker answers just as well, so only
 * its pid tells (the pid check of key-encodings.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as der from '../../src/asn1/der.js';
import { ERROR_STATUS } from '../../src/errors.js';
import { cpuSeconds, freePort, type ServerProcess } from '../../scripts/server-process.js';
import { ImprintClient } from '../../simulator/client.js';
import { buildCsrDer, generateDeviceKey, loadDeviceKey, type DeviceKey } from '../../simulator/csr.js';
import { bootDevice } from '../../simulator/device.js';
import { readBody } from '../../simulator/read-body.js';
import { buildPkiMessage, raFromCaCertificates, ScepMessageType, selfSignedCertificate, transactionIdOf, type ScepRa } from '../../simulator/scep.js';
import { imprint } from '../helpers/cli.js';
import { forgeCsr } from '../helpers/csr-forge.js';
import { call } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import { processChanges, serverPids, settledPids, waitForWorkers, type ServerPids } from '../helpers/process-tree.js';
import { spawnTestServer } from '../helpers/server.js';

const work = tempDir('imprint-protocols-hostile-');
const dataDir = join(work, 'data');
const WORKERS = 2;
const KNOWN_CODES = new Set(Object.keys(ERROR_STATUS));
const SCEP_PKI_STATUS = '2.16.840.1.113733.1.9.3';

let server: ServerProcess;
let original: ServerPids;
let ra: ScepRa;
let tokens: string[] = [];
/** A device enrolled over SCEP (RSA key): signs RenewalReqs. */
let scepDevice: { certificateDer: Buffer; certificatePem: string; key: DeviceKey };
/** A device enrolled over EST (P-256): re-enrolls over mTLS. */
let estDevice: { certificatePem: string; keyPem: string };
/** An RSA certificate (and key) of another CA, with a CN like a real device's. */
let foreign: { certificatePem: string; certificateDer: Buffer; keyPem: string };
let rsaA: DeviceKey;
const tally = { tried: 0, failures: [] as string[] };

/** One answer: status, content type and body, or why none came. */
interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly raw: Buffer;
  readonly failure?: string;
}

/** A plain-HTTP request to the status listener (SCEP's usual transport). */
function plain(path: string, options: { method?: string; body?: Buffer; contentType?: string } = {}): Promise<Answer> {
  return new Promise((resolve) => {
    const req = httpRequest(
      `${server.statusUrl}${path}`,
      {
        method: options.method ?? (options.body ? 'POST' : 'GET'),
        agent: false,
        timeout: 30_000,
        headers: { ...(options.contentType ? { 'content-type': options.contentType } : {}) },
      },
      (res: IncomingMessage) => {
        readBody(res).then(
          (raw) => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), raw }),
          (error: Error) => resolve({ status: 0, contentType: '', raw: Buffer.alloc(0), failure: error.message }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (error) => resolve({ status: 0, contentType: '', raw: Buffer.alloc(0), failure: error.message }));
    req.end(options.body);
  });
}

async function https(path: string, options: { body?: Buffer | string; contentType?: string; token?: string; cert?: string; key?: string }): Promise<Answer> {
  try {
    const response = await call(`${server.url}${path}`, {
      ca: server.rootPem,
      ...(options.body !== undefined ? { body: options.body } : {}),
      ...(options.cert ? { cert: options.cert, key: options.key! } : {}),
      headers: { ...(options.contentType ? { 'content-type': options.contentType } : {}), ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
    });
    return { status: response.status, contentType: String(response.headers['content-type'] ?? ''), raw: response.raw };
  } catch (error) {
    return { status: 0, contentType: '', raw: Buffer.alloc(0), failure: (error as Error).message };
  }
}

/** pkiStatus of a CertRep, or why it is not one. */
function pkiStatusOf(raw: Buffer): string {
  try {
    const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(new Uint8Array(raw)).content });
    const value = signed.signerInfos[0]?.signedAttrs?.attributes.find((a) => a.type === SCEP_PKI_STATUS)?.values[0] as asn1js.PrintableString | undefined;
    return value?.valueBlock.value ?? 'no pkiStatus';
  } catch (error) {
    return `not a CertRep: ${(error as Error).message}`;
  }
}

/** Undefined when the answer is a refusal we accept; else what is wrong with it. */
function refused(answer: Answer, allowRefusedHandshake = false): string | undefined {
  if (answer.failure !== undefined) {
    if (allowRefusedHandshake && /alert|certificate|SSL|TLS/i.test(answer.failure)) return undefined;
    return `no HTTP answer: ${answer.failure}`;
  }
  const text = answer.raw.toString('utf8').slice(0, 160);
  if (answer.status >= 500) return `a 5xx: ${answer.status} ${text}`;
  if (answer.status >= 400) {
    let body: { error?: string; message?: string } = {};
    try {
      body = JSON.parse(answer.raw.toString('utf8')) as typeof body;
    } catch {
      return `a ${answer.status} that is not JSON: ${text}`;
    }
    return KNOWN_CODES.has(body.error ?? '') && typeof body.message === 'string' ? undefined : `not a known error: ${answer.status} ${text}`;
  }
  if (answer.status === 200 && answer.contentType.startsWith('application/x-pki-message')) {
    const status = pkiStatusOf(answer.raw);
    return status === '2' ? undefined : `a CertRep with pkiStatus ${status}, not FAILURE`;
  }
  return `not a refusal: ${answer.status} ${answer.contentType} ${text}`;
}

/** Sends one input; fails when a process died or the answer is not a refusal. */
async function attempt(label: string, send: () => Promise<Answer>, allowRefusedHandshake = false): Promise<void> {
  tally.tried++;
  const primary = server.child.pid!;
  const before = serverPids(primary);
  const answer = await send();
  const after = answer.failure === undefined ? serverPids(primary) : await settledPids(primary, before, 500);
  const problem = processChanges(before, after) ?? refused(answer, allowRefusedHandshake);
  if (problem) tally.failures.push(`${label}: ${problem}`);
  expect(problem, label).toBeUndefined();
}

const nextToken = (): string => {
  const token = tokens.shift();
  if (!token) throw new Error('ran out of bootstrap tokens');
  return token;
};

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

const ab = (bytes: Buffer): ArrayBuffer => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
const OIDS = { signedData: '1.2.840.113549.1.7.2', envelopedData: '1.2.840.113549.1.7.3', data: '1.2.840.113549.1.7.1', messageDigest: '1.2.840.113549.1.9.4', md5: '1.2.840.113549.2.5' };

/** An honest PKCSReq for a fresh device with an unused token. */
function pkcsReq(key: DeviceKey = rsaA, deviceId = `hostile-${randomBytes(4).toString('hex')}`, toRa: ScepRa = ra): Buffer {
  const csrDer = buildCsrDer(key, deviceId, { challengePassword: nextToken() });
  return buildPkiMessage(toRa, { messageType: ScepMessageType.PKCSReq, transactionId: transactionIdOf(key), senderNonce: randomBytes(16), csrDer, signerCertificate: selfSignedCertificate(key, deviceId), signerKey: key });
}

/** A RenewalReq carrying `csrDer`, signed with `signer`. */
function renewalReq(csrDer: Buffer, signer: { certificateDer: Buffer; key: DeviceKey }): Buffer {
  return buildPkiMessage(ra, { messageType: ScepMessageType.RenewalReq, transactionId: transactionIdOf(signer.key), senderNonce: randomBytes(16), csrDer, signerCertificate: signer.certificateDer, signerKey: signer.key });
}

/** Re-encodes a pkiMessage after `edit` changed its SignedData. */
function editSigned(message: Buffer, edit: (signed: pkijs.SignedData) => void): Buffer {
  const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(ab(message)).content });
  edit(signed);
  return Buffer.from(new pkijs.ContentInfo({ contentType: OIDS.signedData, content: signed.toSchema(true) }).toSchema().toBER(false));
}

/** The message with its outer content type OID replaced. */
function withContentType(message: Buffer, oid: string): Buffer {
  const from = der.objectIdentifier(OIDS.signedData);
  const at = message.indexOf(from);
  return Buffer.concat([message.subarray(0, at), der.objectIdentifier(oid), message.subarray(at + from.length)]);
}

const nestedSequences = (depth: number): Buffer => {
  let out: Buffer = Buffer.alloc(0);
  for (let i = 0; i < depth; i++) out = der.sequence(out);
  return out;
};
const contentInfo = (oid: string, content: Buffer): Buffer => der.sequence(der.objectIdentifier(oid), der.explicit(0, content));

// ---------------------------------------------------------------------------------------
// Key encodings (a cross-section of the corpus in key-encodings.test.ts)
// ---------------------------------------------------------------------------------------

const algorithm = (id: string, ...parameters: Buffer[]): Buffer => der.sequence(der.objectIdentifier(id), ...parameters);
const spkiOf = (alg: Buffer, key: Buffer): Buffer => der.sequence(alg, der.bitString(key));
const EC = '1.2.840.10045.2.1';
const P256 = '1.2.840.10045.3.1.7';
const RSA = '1.2.840.113549.1.1.1';
const exportSpki = (key: KeyObject): Buffer => (key.type === 'public' ? key : createPublicKey(key)).export({ type: 'spki', format: 'der' });
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const point = exportSpki(p256.publicKey).subarray(-65);
const x = point.subarray(1, 33);
const y = point.subarray(33);
const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
const modulus = Buffer.from(rsa1024.publicKey.export({ format: 'jwk' }).n!, 'base64url');
const rsaKey = (n: Buffer, e: Buffer): Buffer => spkiOf(algorithm(RSA, der.nullValue()), der.sequence(der.unsignedInteger(n), der.unsignedInteger(e)));
const E65537 = Buffer.from([1, 0, 1]);

const KEYS: readonly { name: string; spki: Buffer }[] = [
  { name: 'ec/point-at-infinity', spki: spkiOf(algorithm(EC, der.objectIdentifier(P256)), Buffer.from([0])) },
  { name: 'ec/not-on-curve', spki: spkiOf(algorithm(EC, der.objectIdentifier(P256)), Buffer.concat([Buffer.from([4]), x, Buffer.from(y.map((b, i) => (i === 31 ? b ^ 1 : b)))])) },
  { name: 'ec/compressed', spki: spkiOf(algorithm(EC, der.objectIdentifier(P256)), Buffer.concat([Buffer.from([2 | (y[31]! & 1)]), x])) },
  { name: 'ec/bad-prefix', spki: spkiOf(algorithm(EC, der.objectIdentifier(P256)), Buffer.concat([Buffer.from([5]), x, y])) },
  { name: 'ec/truncated-point', spki: spkiOf(algorithm(EC, der.objectIdentifier(P256)), Buffer.concat([Buffer.from([4]), x])) },
  { name: 'ec/explicit-garbage', spki: spkiOf(algorithm(EC, der.sequence(der.smallInteger(1))), point) },
  { name: 'ec/unknown-curve', spki: spkiOf(algorithm(EC, der.objectIdentifier('1.2.3.4')), point) },
  { name: 'ec/no-parameters', spki: spkiOf(algorithm(EC), point) },
  { name: 'ec/secp256k1', spki: exportSpki(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey) },
  { name: 'ed25519', spki: exportSpki(generateKeyPairSync('ed25519').publicKey) },
  { name: 'x25519', spki: exportSpki(generateKeyPairSync('x25519').publicKey) },
  { name: 'dsa', spki: exportSpki(generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).publicKey) },
  { name: 'rsa/1024', spki: exportSpki(rsa1024.publicKey) },
  { name: 'rsa/even-modulus', spki: rsaKey(Buffer.from(modulus.map((b, i) => (i === modulus.length - 1 ? b & 0xfe : b))), E65537) },
  { name: 'rsa/exponent-1', spki: rsaKey(modulus, Buffer.from([1])) },
  { name: 'rsa/exponent-even', spki: rsaKey(modulus, Buffer.from([1, 0, 0])) },
  { name: 'rsa/negative-modulus', spki: spkiOf(algorithm(RSA, der.nullValue()), der.sequence(der.tlv(0x02, Buffer.concat([Buffer.from([0x80]), modulus])), der.unsignedInteger(E65537))) },
  { name: 'rsa/zero-modulus', spki: rsaKey(Buffer.from([0]), E65537) },
  { name: 'rsa/16384-bit-odd', spki: rsaKey(Buffer.concat([Buffer.from([0xc0]), randomBytes(2046), Buffer.from([0x01])]), E65537) },
  { name: 'rsa/no-null-parameters', spki: spkiOf(algorithm(RSA), der.sequence(der.unsignedInteger(modulus), der.unsignedInteger(E65537))) },
  { name: 'spki/unused-bits', spki: der.sequence(algorithm(EC, der.objectIdentifier(P256)), der.tlv(0x03, Buffer.from([3]), point)) },
  { name: 'spki/trailing-bytes', spki: der.sequence(algorithm(EC, der.objectIdentifier(P256)), der.bitString(point), der.nullValue()) },
  { name: 'spki/empty', spki: der.sequence() },
];

/** A certificate carrying `spki`, "signed" with garbage: the signer of a SCEP message. */
function certificateWith(spki: Buffer): Buffer {
  const name = der.sequence(der.set(der.sequence(der.objectIdentifier('2.5.4.3'), der.utf8String('hostile-signer'))));
  const validity = der.sequence(der.time(new Date(Date.now() - 60_000)), der.time(new Date(Date.now() + 86_400_000)));
  const alg = algorithm('1.2.840.113549.1.1.11', der.nullValue());
  const tbs = der.sequence(der.explicit(0, der.smallInteger(2)), der.smallInteger(7), alg, name, validity, name, spki);
  return der.sequence(tbs, alg, der.bitString(randomBytes(256)));
}

// ---------------------------------------------------------------------------------------

beforeAll(async () => {
  server = await spawnTestServer(dataDir, ['--workers', String(WORKERS), '--rate-limit', 'off', '--status-port', String(await freePort())]);
  await waitForWorkers(server.child.pid!, WORKERS);
  original = serverPids(server.child.pid!);

  const minted = await imprint(['tokens', 'create', '--data', dataDir, '--count', '120']);
  expect(minted.code, minted.stderr).toBe(0);
  tokens = minted.stdout.trim().split('\n');

  const client = new ImprintClient(server.url, server.rootPem);
  ra = raFromCaCertificates(await client.scepCaCertificates(), server.rootPem);
  rsaA = await generateDeviceKey('rsa');

  const scepState = join(work, 'scep-device');
  await bootDevice(client, { stateDir: scepState, deviceId: 'hostile-scep-device', token: nextToken(), protocol: 'scep' });
  const scepPem = readFileSync(join(scepState, 'device.pem'), 'utf8');
  scepDevice = { certificatePem: scepPem, certificateDer: Buffer.from(scepPem.replace(/-----[^-]+-----|\s/g, ''), 'base64'), key: loadDeviceKey(readFileSync(join(scepState, 'device.key'), 'utf8')) };

  const estState = join(work, 'est-device');
  await bootDevice(client, { stateDir: estState, deviceId: 'hostile-est-device', token: nextToken(), protocol: 'est' });
  estDevice = { certificatePem: readFileSync(join(estState, 'device.pem'), 'utf8'), keyPem: readFileSync(join(estState, 'device.key'), 'utf8') };

  // Another CA issues an RSA certificate naming a real device.
  const sh = (script: string) => execFileSync('bash', ['-c', `set -euo pipefail\n${script}`], { cwd: work, stdio: 'ignore' });
  sh(`
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key -out other-ca.pem -subj "/CN=imprint Issuing CA" -days 2 2>/dev/null
    openssl genrsa -out other.key 2048 2>/dev/null
    openssl req -new -key other.key -subj "/CN=hostile-scep-device" -out other.csr
    printf 'keyUsage=critical,digitalSignature,keyEncipherment\\nextendedKeyUsage=clientAuth\\n' > other.ext
    openssl x509 -req -in other.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -days 2 -extfile other.ext -out other.pem 2>/dev/null
  `);
  const otherPem = readFileSync(join(work, 'other.pem'), 'utf8');
  foreign = { certificatePem: otherPem, certificateDer: Buffer.from(otherPem.replace(/-----[^-]+-----|\s/g, ''), 'base64'), keyPem: readFileSync(join(work, 'other.key'), 'utf8') };
}, 90_000);

afterAll(async () => {
  console.log(`protocol corpus: ${tally.tried} inputs${tally.failures.length ? `\n  ${tally.failures.join('\n  ')}` : ''}`);
  await server?.killGroup('SIGKILL').catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

const scepPost = (body: Buffer, contentType = 'application/x-pki-message') => plain('/scep?operation=PKIOperation', { body, contentType });

describe('SCEP: malformed CMS', () => {
  const cases: [string, () => Buffer][] = [
    ['cms/truncated-1', () => pkcsReq().subarray(0, 1)],
    ['cms/truncated-16', () => pkcsReq().subarray(0, 16)],
    ['cms/truncated-half', () => { const m = pkcsReq(); return m.subarray(0, m.length >> 1); }],
    ['cms/truncated-last-byte', () => { const m = pkcsReq(); return m.subarray(0, m.length - 1); }],
    ['cms/trailing-garbage', () => Buffer.concat([pkcsReq(), randomBytes(64)])],
    ['cms/content-type-enveloped', () => withContentType(pkcsReq(), OIDS.envelopedData)],
    ['cms/content-type-data', () => withContentType(pkcsReq(), OIDS.data)],
    ['cms/content-type-unknown', () => withContentType(pkcsReq(), '1.2.3.4.5')],
    ['cms/no-signers', () => editSigned(pkcsReq(), (s) => void (s.signerInfos = []))],
    ['cms/no-certificates', () => editSigned(pkcsReq(), (s) => void (s.certificates = []))],
    ['cms/no-content', () => editSigned(pkcsReq(), (s) => void (s.encapContentInfo = new pkijs.EncapsulatedContentInfo({ eContentType: OIDS.data })))],
    ['cms/wrong-digest', () => editSigned(pkcsReq(), (s) => {
      const attribute = s.signerInfos[0]!.signedAttrs!.attributes.find((a) => a.type === OIDS.messageDigest)!;
      attribute.values = [new asn1js.OctetString({ valueHex: new Uint8Array(32).buffer })];
    })],
    ['cms/md5-digest-algorithm', () => editSigned(pkcsReq(), (s) => void (s.signerInfos[0]!.digestAlgorithm = new pkijs.AlgorithmIdentifier({ algorithmId: OIDS.md5 })))],
    ['cms/bad-signature', () => editSigned(pkcsReq(), (s) => void (s.signerInfos[0]!.signature = new asn1js.OctetString({ valueHex: randomBytes(256).buffer })))],
    ['cms/enveloped-to-another-recipient', () => {
      const other: ScepRa = { der: foreign.certificateDer, certificate: new X509Certificate(foreign.certificatePem) };
      return pkcsReq(rsaA, 'hostile-other-recipient', other);
    }],
    ['cms/content-not-enveloped', () => editSigned(pkcsReq(), (s) => void (s.encapContentInfo = new pkijs.EncapsulatedContentInfo({ eContentType: OIDS.data, eContent: new asn1js.OctetString({ valueHex: randomBytes(300).buffer }) })))],
    ['cms/nested-4000', () => contentInfo(OIDS.signedData, nestedSequences(4000))],
    ['cms/indefinite-nesting', () => Buffer.concat([Buffer.alloc(20_000).fill(Buffer.from([0x30, 0x80]))])],
    ['cms/20000-nulls', () => contentInfo(OIDS.signedData, der.sequence(...Array.from({ length: 20_000 }, () => der.nullValue())))],
    ['cms/10000-empty-certificates', () => contentInfo(OIDS.signedData, der.sequence(der.smallInteger(1), der.set(), der.sequence(der.objectIdentifier(OIDS.data)), der.implicitConstructed(0, ...Array.from({ length: 10_000 }, () => der.sequence())), der.set()))],
    ['cms/length-past-end', () => Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x06, 0x09])],
    ['cms/length-64-bit', () => Buffer.from([0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00])],
    ['cms/random-bytes', () => randomBytes(4096)],
  ];
  it.each(cases)('%s', async (label, build) => attempt(label, () => scepPost(build())));
});

describe('SCEP: cost of a refusal', () => {
  /** `count` copies of `unit` in one SEQUENCE: up to the 64 KiB body cap of tiny elements, as DER and as BER. */
  const many = (unit: Buffer, count: number) => der.sequence(...Array.from({ length: count }, () => unit));
  const indefinite = (unit: Buffer, count: number) => Buffer.concat([Buffer.from([0x30, 0x80]), ...Array.from({ length: count }, () => unit), Buffer.from([0, 0])]);
  const bodies: [string, Buffer][] = [
    ['der/21000-oids', many(Buffer.from('06012a', 'hex'), 21_000)],
    ['der/signed-data-of-20000-oids', contentInfo(OIDS.signedData, many(Buffer.from('06012a', 'hex'), 20_000))],
    ['ber/21000-oids', indefinite(Buffer.from('06012a', 'hex'), 21_000)],
    ['ber/31000-nulls', indefinite(Buffer.from('0500', 'hex'), 31_000)],
  ];

  it('64 KiB of tiny elements is refused for well under a millisecond of the server\'s CPU each, not the ~0.1-0.25 s a full decode took', async () => {
    const cpu = () => cpuSeconds(server.child.pid!);
    const before = cpu();
    for (let round = 0; round < 5; round++) {
      for (const [label, body] of bodies) {
        expect(body.length, label).toBeLessThan(64 * 1024);
        const answer = await scepPost(body);
        expect(answer.status, label).toBe(400);
        expect(JSON.parse(answer.raw.toString()), label).toMatchObject({ error: 'bad_request' });
      }
    }
    // 20 requests: decoded they took 2-5 s of CPU here; bounded first, their HTTP is most of it.
    expect(cpu() - before).toBeLessThan(1);
  });
});

describe('SCEP: HTTP', () => {
  const cases: [string, () => Promise<Answer>][] = [
    ['http/text-plain', () => scepPost(Buffer.from('garbage'), 'text/plain')],
    ['http/json', () => scepPost(Buffer.from('{}'), 'application/json')],
    ['http/form', () => scepPost(Buffer.from('a=b'), 'application/x-www-form-urlencoded')],
    ['http/no-content-type', () => plain('/scep?operation=PKIOperation', { body: Buffer.from('x'), method: 'POST' })],
    ['http/pkcs7-of-est', () => scepPost(Buffer.from('x'), 'application/pkcs7-mime')],
    ['http/oversized', () => scepPost(Buffer.alloc(70 * 1024, 0x30))],
    ['http/oversized-megabyte', () => scepPost(randomBytes(1024 * 1024))],
    ['http/empty', () => scepPost(Buffer.alloc(0))],
    ['get/base64-garbage', () => plain(`/scep?operation=PKIOperation&message=${encodeURIComponent('!!!!****')}`)],
    ['get/base64-unpadded', () => plain('/scep?operation=PKIOperation&message=AAA')],
    ['get/base64-of-random', () => plain(`/scep?operation=PKIOperation&message=${encodeURIComponent(randomBytes(3000).toString('base64'))}`)],
    ['get/base64-too-long', () => plain(`/scep?operation=PKIOperation&message=${'A'.repeat(100_000)}`)],
    ['get/base64-truncated-message', () => plain(`/scep?operation=PKIOperation&message=${encodeURIComponent(pkcsReq().subarray(0, 500).toString('base64'))}`)],
    ['get/operation-unknown', () => plain('/scep?operation=GetCRL')],
    ['get/operation-repeated', () => plain('/scep?operation=GetCACaps&operation=PKIOperation')],
  ];
  it.each(cases)('%s', async (label, send) => attempt(label, send));
});

describe('SCEP: signers and certificates', () => {
  it('a RenewalReq signed by another CA\'s certificate naming a real device', () =>
    attempt('signer/other-ca-renewal', () => scepPost(renewalReq(buildCsrDer(rsaA, 'hostile-scep-device'), { certificateDer: foreign.certificateDer, key: loadDeviceKey(foreign.keyPem) }))));
  it('a PKCSReq signed by another CA\'s certificate (not self-signed, not the CSR key)', () =>
    attempt('signer/other-ca-pkcsreq', async () => {
      const key = loadDeviceKey(foreign.keyPem);
      const csrDer = buildCsrDer(rsaA, 'hostile-pkcsreq-other-ca', { challengePassword: nextToken() });
      return scepPost(buildPkiMessage(ra, { messageType: ScepMessageType.PKCSReq, transactionId: transactionIdOf(key), senderNonce: randomBytes(16), csrDer, signerCertificate: foreign.certificateDer, signerKey: key }));
    }));
  it('a RenewalReq signed by a self-signed certificate', () =>
    attempt('signer/self-signed-renewal', () => scepPost(renewalReq(buildCsrDer(rsaA, 'hostile-scep-device'), { certificateDer: selfSignedCertificate(rsaA, 'hostile-scep-device'), key: rsaA }))));
  it('a PKCSReq with an EC signer certificate (the reply cannot be encrypted to it)', async () => {
    const ec = await generateDeviceKey('ec');
    await attempt('signer/ec-key', async () => {
      const csrDer = buildCsrDer(ec, 'hostile-ec-signer', { challengePassword: nextToken() });
      return scepPost(buildPkiMessage(ra, { messageType: ScepMessageType.PKCSReq, transactionId: transactionIdOf(ec), senderNonce: randomBytes(16), csrDer, signerCertificate: selfSignedCertificate(ec, 'hostile-ec-signer'), signerKey: ec }));
    });
  });
  it('a GetCert messageType', () =>
    attempt('message-type/get-cert', async () => {
      const message = editSigned(pkcsReq(), (s) => {
        const attribute = s.signerInfos[0]!.signedAttrs!.attributes.find((a) => a.type === '2.16.840.1.113733.1.9.2')!;
        attribute.values = [new asn1js.PrintableString({ value: '21' })];
      });
      return scepPost(message);
    }));
});

describe('key encodings', () => {
  const inputs = KEYS.flatMap((key) => [
    { ...key, where: 'est-simpleenroll' },
    { ...key, where: 'est-simplereenroll' },
    { ...key, where: 'scep-renewal-csr' },
    { ...key, where: 'scep-signer-certificate' },
  ]);
  it.each(inputs)('$name in $where', async ({ name, spki, where }) => {
    const label = `${name} in ${where}`;
    switch (where) {
      case 'est-simpleenroll':
        return attempt(label, () => https('/.well-known/est/simpleenroll', { body: forgeCsr({ spki, commonNames: ['hostile-est-key'] }).toString('base64'), contentType: 'application/pkcs10', token: nextToken() }));
      case 'est-simplereenroll':
        return attempt(label, () => https('/.well-known/est/simplereenroll', { body: forgeCsr({ spki, commonNames: ['hostile-est-device'] }).toString('base64'), contentType: 'application/pkcs10', cert: estDevice.certificatePem, key: estDevice.keyPem }));
      case 'scep-renewal-csr':
        return attempt(label, () => scepPost(renewalReq(forgeCsr({ spki, commonNames: ['hostile-scep-device'] }), scepDevice)));
      default: {
        // The signer certificate carries the key; the CMS signature is made with an honest key.
        let message: Buffer;
        try {
          const csrDer = buildCsrDer(rsaA, 'hostile-signer-key', { challengePassword: nextToken() });
          message = buildPkiMessage(ra, { messageType: ScepMessageType.PKCSReq, transactionId: 'hostile', senderNonce: randomBytes(16), csrDer, signerCertificate: certificateWith(spki), signerKey: rsaA });
        } catch {
          // pkijs cannot even read the certificate to name it as signer: send the certificate alone inside.
          message = contentInfo(OIDS.signedData, der.sequence(der.smallInteger(1), der.set(), der.sequence(der.objectIdentifier(OIDS.data)), der.implicitConstructed(0, certificateWith(spki)), der.set()));
        }
        return attempt(label, () => scepPost(message));
      }
    }
  });
});

describe('EST', () => {
  const csr = () => forgeCsr({ commonNames: ['hostile-est'] });
  const cases: [string, () => Promise<Answer>, boolean?][] = [
    ['est/json', () => https('/.well-known/est/simpleenroll', { body: JSON.stringify({ csr: 'x' }), contentType: 'application/json', token: nextToken() })],
    ['est/text-plain', () => https('/.well-known/est/simpleenroll', { body: csr().toString('base64'), contentType: 'text/plain', token: nextToken() })],
    ['est/no-content-type', () => https('/.well-known/est/simpleenroll', { body: csr().toString('base64'), token: nextToken() })],
    ['est/binary-der', () => https('/.well-known/est/simpleenroll', { body: csr(), contentType: 'application/pkcs10', token: nextToken() })],
    ['est/base64-garbage', () => https('/.well-known/est/simpleenroll', { body: '!!!!****', contentType: 'application/pkcs10', token: nextToken() })],
    ['est/base64-of-random', () => https('/.well-known/est/simpleenroll', { body: randomBytes(3000).toString('base64'), contentType: 'application/pkcs10', token: nextToken() })],
    ['est/truncated-csr', () => https('/.well-known/est/simpleenroll', { body: csr().subarray(0, 60).toString('base64'), contentType: 'application/pkcs10', token: nextToken() })],
    ['est/nested-4000', () => https('/.well-known/est/simpleenroll', { body: nestedSequences(4000).toString('base64'), contentType: 'application/pkcs10', token: nextToken() })],
    ['est/oversized', () => https('/.well-known/est/simpleenroll', { body: 'A'.repeat(100 * 1024), contentType: 'application/pkcs10', token: nextToken() })],
    ['est/no-token', () => https('/.well-known/est/simpleenroll', { body: csr().toString('base64'), contentType: 'application/pkcs10' })],
    ['est/cms-instead-of-csr', () => https('/.well-known/est/simpleenroll', { body: pkcsReq().toString('base64'), contentType: 'application/pkcs10', token: nextToken() })],
    ['est/unknown-label', () => https('/.well-known/est/no-such-label/simpleenroll', { body: csr().toString('base64'), contentType: 'application/pkcs10', token: nextToken() })],
    ['est/reenroll-without-certificate', () => https('/.well-known/est/simplereenroll', { body: csr().toString('base64'), contentType: 'application/pkcs10' })],
    ['est/reenroll-other-ca', () => https('/.well-known/est/simplereenroll', { body: forgeCsr({ commonNames: ['hostile-scep-device'] }).toString('base64'), contentType: 'application/pkcs10', cert: foreign.certificatePem, key: foreign.keyPem }), true],
  ];
  it.each(cases)('%s', async (label, send, allowRefusedHandshake) => attempt(label, send, allowRefusedHandshake ?? false));
});

describe('after the whole corpus', () => {
  it('the same primary and workers run as before it, and the server still answers', async () => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(processChanges(original, serverPids(original.primary!))).toBeUndefined();
    expect((await call(`${server.url}/healthz`, { ca: server.rootPem })).status).toBe(200);
    expect(tally.failures).toEqual([]);
  });
});
