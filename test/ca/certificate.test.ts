/**
 * Certificates built from DER parts, checked by independent parsers: Node's X509Certificate
 * (OpenSSL) and pkijs, which re-encodes and verifies the signature with WebCrypto.
 */
import { createHash, createPublicKey, generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../src/ca/authority.js';
import { pooledRandomBytes, randomSerial } from '../../src/ca/certificate-builder.js';
import { certificatesFromPem, toPem } from '../../src/ca/pem.js';
import { childrenOf, bytesOf, readElement } from '../../src/asn1/der-reader.js';
import { createCa, loadCa } from '../../src/ca/ca-directory.js';
import { tempDir } from '../helpers/openssl.js';

function authority() {
  const dataDir = tempDir();
  createCa(dataDir, { org: 'Acme Devices', passphrase: undefined, now: new Date() });
  return new CertificateAuthority(loadCa(dataDir, undefined), {
    org: 'Acme Devices',
    trustDomain: 'fleet.example.com',
    publicUrl: 'https://enroll.example.com',
  });
}

function deviceCertificate(ca: CertificateAuthority, keyType: 'ec' | 'rsa') {
  const { publicKey } =
    keyType === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const parsedSpki = pkijs.PublicKeyInfo.fromBER(spki);
  return ca.issueClientCertificate({
    kind: 'device',
    name: 'sensor-42',
    keyType,
    subjectPublicKeyInfo: spki,
    subjectPublicKeyBits: Buffer.from(parsedSpki.subjectPublicKey.valueBlock.valueHexView),
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2026-04-01T00:00:00Z'),
  });
}

describe('device certificate', () => {
  it('parses in pkijs, re-encodes byte for byte and verifies against the issuing CA', async () => {
    pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as pkijs.CryptoEngineParameters["crypto"] }));
    const ca = authority();
    const issued = deviceCertificate(ca, 'ec');
    const certificate = pkijs.Certificate.fromBER(issued.der);
    expect(Buffer.from(certificate.toSchema(true).toBER(false)).equals(issued.der)).toBe(true);
    const issuer = pkijs.Certificate.fromBER(ca.material.issuer.der);
    expect(await certificate.verify(issuer)).toBe(true);

    expect(certificate.version).toBe(2);
    expect(Buffer.from(certificate.serialNumber.valueBlock.valueHexView).toString('hex')).toBe(issued.serial);
    const extensions = Object.fromEntries(certificate.extensions!.map((e) => [e.extnID, e]));
    expect(extensions['2.5.29.19']!.critical).toBe(true); // basicConstraints
    expect(extensions['2.5.29.15']!.critical).toBe(true); // keyUsage
    expect(Object.keys(extensions).sort()).toEqual(
      ['1.3.6.1.5.5.7.1.1', '2.5.29.14', '2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.31', '2.5.29.35', '2.5.29.37'].sort(),
    );
  });

  it('reads the same in OpenSSL: subject, SAN, validity, issuer', () => {
    const ca = authority();
    const x509 = new X509Certificate(deviceCertificate(ca, 'ec').der);
    expect(x509.subject).toBe('O=Acme Devices\nCN=sensor-42');
    expect(x509.subjectAltName).toBe('URI:spiffe://fleet.example.com/device/sensor-42');
    expect(x509.issuer).toBe('O=Acme Devices\nCN=imprint Issuing CA');
    expect(new Date(x509.validFrom).toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(new Date(x509.validTo).toISOString()).toBe('2026-04-01T00:00:00.000Z');
    expect(x509.verify(createPublicKey(ca.material.issuerKey))).toBe(true);
    expect(x509.ca).toBe(false);
  });

  it('gives RSA keys keyEncipherment too', () => {
    const certificate = pkijs.Certificate.fromBER(deviceCertificate(authority(), 'rsa').der);
    const keyUsage = certificate.extensions!.find((e) => e.extnID === '2.5.29.15')!;
    const bits = (keyUsage.parsedValue as asn1js.BitString).valueBlock.valueHexView[0]!;
    expect(bits).toBe(0xa0); // digitalSignature | keyEncipherment
  });
});

describe('the DER fast path against pkijs the straightforward way', () => {
  it('builds the same TBSCertificate, byte for byte, and pkijs verifies our signature', async () => {
    pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as pkijs.CryptoEngineParameters['crypto'] }));
    const ca = authority();
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const keyBits = spki.subarray(spki.length - 65);
    const notBefore = new Date('2026-01-01T00:00:00Z');
    const notAfter = new Date('2026-04-01T00:00:00Z');
    const ours = ca.issueClientCertificate({ kind: 'device', name: 'sensor-7', keyType: 'ec', subjectPublicKeyInfo: spki, subjectPublicKeyBits: keyBits, notBefore, notAfter });

    // The same certificate, built field by field with pkijs's own classes.
    const issuer = pkijs.Certificate.fromBER(ca.material.issuer.der);
    const uri = (value: string) => new pkijs.GeneralName({ type: 6, value });
    const ext = (extnID: string, critical: boolean, value: { toSchema(): asn1js.AsnType } | asn1js.AsnType) =>
      new pkijs.Extension({ extnID, critical, extnValue: ('toSchema' in value ? value.toSchema() : value).toBER(false) });
    const sha1 = (bytes: Uint8Array) => createHash('sha1').update(bytes).digest();
    const certificate = new pkijs.Certificate();
    certificate.version = 2;
    certificate.serialNumber = new asn1js.Integer({ valueHex: Buffer.from(ours.serial, 'hex') });
    certificate.issuer = issuer.subject;
    certificate.notBefore.value = notBefore;
    certificate.notAfter.value = notAfter;
    // One attribute per RDN (pkijs encodes a plain typesAndValues list as one multi-valued RDN; decoded ones keep their shape).
    const rdn = (type: string, value: string) =>
      new asn1js.Set({ value: [new pkijs.AttributeTypeAndValue({ type, value: new asn1js.Utf8String({ value }) }).toSchema()] });
    certificate.subject = pkijs.RelativeDistinguishedNames.fromBER(new asn1js.Sequence({ value: [rdn('2.5.4.10', 'Acme Devices'), rdn('2.5.4.3', 'sensor-7')] }).toBER());
    certificate.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(spki);
    const issuerSki = issuer.extensions!.find((e) => e.extnID === '2.5.29.14')!.parsedValue as asn1js.OctetString;
    certificate.extensions = [
      ext('2.5.29.15', true, new asn1js.BitString({ valueHex: new Uint8Array([0x80]).buffer, unusedBits: 7 })),
      ext('2.5.29.17', false, new pkijs.GeneralNames({ names: [uri('spiffe://fleet.example.com/device/sensor-7')] })),
      ext('2.5.29.14', false, new asn1js.OctetString({ valueHex: sha1(keyBits) })),
      ext('2.5.29.19', true, new pkijs.BasicConstraints({ cA: false })),
      ext('2.5.29.37', false, new pkijs.ExtKeyUsage({ keyPurposes: ['1.3.6.1.5.5.7.3.2'] })),
      ext('2.5.29.35', false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: issuerSki.valueBlock.valueHexView }) })),
      ext('2.5.29.31', false, new pkijs.CRLDistributionPoints({ distributionPoints: [new pkijs.DistributionPoint({ distributionPoint: [uri('https://enroll.example.com/crl')] })] })),
      ext('1.3.6.1.5.5.7.1.1', false, new pkijs.InfoAccess({ accessDescriptions: [new pkijs.AccessDescription({ accessMethod: '1.3.6.1.5.5.7.48.1', accessLocation: uri('https://enroll.example.com/ocsp') })] })),
    ];
    const issuerKey = await webcrypto.subtle.importKey('pkcs8', ca.material.issuerKey.export({ type: 'pkcs8', format: 'der' }), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    await certificate.sign(issuerKey as unknown as Parameters<pkijs.Certificate['sign']>[0], 'SHA-256');

    const [ourTbs] = childrenOf(ours.der, readElement(ours.der));
    expect(bytesOf(ours.der, ourTbs!).toString('hex')).toBe(Buffer.from(certificate.tbsView).toString('hex'));
    expect(await pkijs.Certificate.fromBER(ours.der).verify(issuer)).toBe(true);
  });
});

describe('randomSerial', () => {
  it('is always 16 bytes, positive, with a non-zero first byte', () => {
    for (const fill of [0x00, 0xff, 0x80]) {
      const serial = randomSerial((size) => Buffer.alloc(size, fill));
      expect(serial).toHaveLength(16);
      expect(serial[0]! & 0x80).toBe(0);
      expect(serial[0]).not.toBe(0);
    }
  });
});

describe('pooledRandomBytes', () => {
  it('hands out each pooled byte once, across refills, in buffers of their own', () => {
    const random = pooledRandomBytes(64);
    const drawn = Array.from({ length: 40 }, () => random(16));
    expect(drawn.every((bytes) => bytes.length === 16)).toBe(true);
    // 16-byte draws from fresh CSPRNG output: any repeat would be a pool handing bytes out twice.
    expect(new Set(drawn.map((bytes) => bytes.toString('hex'))).size).toBe(40);
    // A draw is a copy: refilling the pool does not change what was handed out.
    const kept = Buffer.from(drawn[0]!);
    for (let i = 0; i < 8; i++) random(16);
    expect(drawn[0]).toEqual(kept);
  });

  it('refuses a draw larger than its pool', () => {
    expect(() => pooledRandomBytes(32)(33)).toThrow(RangeError);
  });
});

describe('toPem', () => {
  it.each([1, 47, 48, 49, 96, 560])('%i bytes of DER: 64-character lines that read back', (size) => {
    const der = Buffer.from(Array.from({ length: size }, (_, i) => (i * 37) & 0xff));
    const pem = toPem(der);
    const lines = pem.split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines.at(-2)).toBe('-----END CERTIFICATE-----');
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(1, -2).join('')).toBe(der.toString('base64'));
    expect(lines.slice(1, -3).every((line) => line.length === 64)).toBe(true);
    expect(lines.at(-3)!.length).toBeGreaterThan(0);
    expect(lines.at(-3)!.length).toBeLessThanOrEqual(64);
    expect(certificatesFromPem(pem)).toEqual([der]);
  });
});
