/** Reading CSRs from untrusted text: the accepted forms and the refusals, by code. */
import { describe, expect, it } from 'vitest';
import { MAX_CSR_DER_BYTES, decodeCsrText, parseCsr, verifyCsrSignature } from '../../src/ca/csr.js';
import { ImprintError } from '../../src/errors.js';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { opensslCsr, type KeyKind } from '../helpers/openssl.js';

const pem = opensslCsr('p256', '/O=Acme/CN=sensor-9').csrPem;
const base64 = pem.replace(/-----[A-Z ]+-----|\s/g, '');

async function codeOf(action: () => unknown): Promise<string | undefined> {
  try {
    await action();
  } catch (error) {
    if (error instanceof ImprintError) return error.code;
    throw error;
  }
  return undefined;
}

describe('parseCsr', () => {
  it.each([
    { name: 'pem', text: pem },
    { name: 'pem/crlf', text: pem.replace(/\n/g, '\r\n') },
    { name: 'pem/new-label', text: pem.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST') },
    { name: 'base64-der', text: base64 },
    { name: 'base64-der/wrapped', text: base64.replace(/(.{64})/g, '$1\n') },
  ])('accepts $name', async ({ text }) => {
    const csr = await parseCsr(text);
    expect(csr.commonNames).toEqual(['sensor-9']);
    expect(csr.key).toEqual({ type: 'ec', curve: 'prime256v1' });
    expect(await verifyCsrSignature(csr)).toBe(true);
    expect(csr.spkiSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    { name: 'empty', text: '', code: 'csr_malformed' },
    { name: 'pem/certificate-label', text: pem.replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE'), code: 'csr_malformed' },
    { name: 'pem/mismatched-labels', text: pem.replace('END CERTIFICATE REQUEST', 'END NEW CERTIFICATE REQUEST'), code: 'csr_malformed' },
    { name: 'pem/trailing-garbage', text: `${pem}garbage`, code: 'csr_malformed' },
    { name: 'pem/two-blocks', text: pem + pem, code: 'csr_malformed' },
    { name: 'base64/bad-padding', text: `${base64}=A`, code: 'csr_malformed' },
    { name: 'der/truncated', text: Buffer.from(base64, 'base64').subarray(0, 50).toString('base64'), code: 'csr_malformed' },
    { name: 'der/not-a-csr', text: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]).toString('base64'), code: 'csr_malformed' },
    { name: 'der/over-16-KiB', text: Buffer.alloc(MAX_CSR_DER_BYTES + 1, 0x30).toString('base64'), code: 'csr_malformed' },
    { name: 'null-bytes', text: 'MII\u0000\u0000', code: 'csr_malformed' },
    // Found by fuzzing: asn1js threw a plain Error on an OID arc with 0x80 padding.
    {
      name: 'der/oid-arc-padding',
      text:
        'MIHSMHkCAQAwFzEVMBMGA1UEAwwMY29ycHVzLXZhbGlkMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9TnrA/w8bFDYEP2LmGldjOMB6k0lUpGa6NkpCkZV9y4RfU6eJWZWQQeXUQs3jUSdQo3axPh7cM0+eFOc579XtaAAMCqGSAAAzj0EAwIDSQAwRgIhAP17gCYe+NhW13htHoZUSO+o7eMZ5EziazoyrqWfJs1YAiEA5DmwWyZsHxFEgIC1sx4TG1prF5/PZRgAAAAAAAabVohXjSW1NQ==',
      code: 'csr_malformed',
    },
  ])('refuses $name as $code', async ({ text, code }) => {
    expect(await codeOf(() => parseCsr(text))).toBe(code);
  });

  // Every text a client can send in 64 KiB is judged in linear time: a base64 pattern that
  // could match newlines two ways took ~1 s of CPU to refuse this one (~0.1 ms now).
  it.each([
    { name: 'newlines then a stray character', text: `A${'\n'.repeat(32_000)}!` },
    { name: 'CRLFs then a stray character', text: `A${'\r\n'.repeat(16_000)}!` },
    { name: 'a PEM body of newlines, no END line', text: `-----BEGIN CERTIFICATE REQUEST-----\n${'\n'.repeat(32_000)}!` },
    { name: 'padding then newlines', text: `A==${'\n'.repeat(32_000)}A` },
  ])('refuses $name in linear time', async ({ text }) => {
    const started = process.cpuUsage();
    expect(await codeOf(() => parseCsr(text))).toBe('csr_malformed');
    const spent = process.cpuUsage(started);
    expect((spent.user + spent.system) / 1000).toBeLessThan(150);
  });

  it('decodes exactly the DER that was sent', () => {
    expect(decodeCsrText(pem).toString('base64')).toBe(base64);
  });
});

describe('parseCsr agrees with pkijs', () => {
  // openssl adds an extensionRequest attribute with -addext; a full subject adds more RDNs.
  it.each([
    ['p256', '/C=DE/O=Acme/OU=Line 3/CN=agree-p256', []],
    ['p384', '/CN=agree-p384', ['-addext', 'subjectAltName=DNS:a.example,URI:spiffe://x/y', '-addext', 'keyUsage=digitalSignature']],
    ['rsa2048', '/O=Acme/CN=agree-rsa', ['-addext', 'basicConstraints=CA:TRUE']],
  ] as [KeyKind, string, string[]][])('%s %s', async (kind, subject, extra) => {
    const text = opensslCsr(kind, subject, undefined, extra).csrPem;
    const ours = await parseCsr(text);
    const theirs = new pkijs.CertificationRequest({ schema: asn1js.fromBER(decodeCsrText(text)).result });
    const theirCns = theirs.subject.typesAndValues.filter((t) => t.type === '2.5.4.3').map((t) => t.value.valueBlock.value as string);
    expect(ours.commonNames).toEqual(theirCns);
    expect(ours.signatureAlgorithm).toBe(theirs.signatureAlgorithm.algorithmId);
    expect(ours.signature.equals(Buffer.from(theirs.signatureValue.valueBlock.valueHexView))).toBe(true);
    expect(ours.subjectPublicKeyInfo.equals(Buffer.from(theirs.subjectPublicKeyInfo.toSchema().toBER()))).toBe(true);
    expect(ours.signedBytes.equals(Buffer.from(theirs.tbsView))).toBe(true);
    expect(await verifyCsrSignature(ours)).toBe(true);
  });
});
