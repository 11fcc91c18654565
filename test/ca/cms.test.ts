/** The certs-only CMS assembled from DER parts is byte for byte what pkijs builds, and openssl reads it. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pkijs from 'pkijs';
import { describe, expect, it } from 'vitest';
import { certsOnlyCms, CMS_OID } from '../../src/ca/cms.js';
import { certificatesFromPem } from '../../src/ca/pem.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { startTestServer } from '../helpers/server.js';

const ab = (bytes: Buffer): ArrayBuffer => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

/** The same message the straightforward pkijs way. */
function pkijsCertsOnly(certificates: readonly Buffer[]): Buffer {
  const signedData = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: CMS_OID.data }),
    certificates: certificates.map((der) => pkijs.Certificate.fromBER(ab(der))),
    signerInfos: [],
  });
  return Buffer.from(new pkijs.ContentInfo({ contentType: CMS_OID.signedData, content: signedData.toSchema(true) }).toSchema().toBER(false));
}

describe('certsOnlyCms', () => {
  it('matches pkijs byte for byte and prints the certificates with openssl, in order', async () => {
    const t = await startTestServer();
    try {
      const chain = certificatesFromPem(readFileSync(t.issuerPath, 'utf8') + t.rootPem);
      for (const certificates of [chain.slice(0, 1), chain]) {
        const ours = certsOnlyCms(certificates);
        expect(ours.equals(pkijsCertsOnly(certificates))).toBe(true);
        const file = join(tempDir(), 'certs.p7b');
        writeFileSync(file, ours);
        const printed = openssl(['pkcs7', '-inform', 'DER', '-in', file, '-print_certs']);
        expect(printed.match(/BEGIN CERTIFICATE/g)).toHaveLength(certificates.length);
        expect(printed.indexOf('Issuing')).toBeLessThan(certificates.length > 1 ? printed.indexOf('Root') : Infinity);
      }
    } finally {
      await t.destroy();
    }
  });
});
