/**
 * PKCS#12 (RFC 7292) files for operators, built in-process with pkijs: the key in a
 * PKCS8ShroudedKeyBag under PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), the certificate and
 * its issuing CA in CertBags, and a password-based HMAC-SHA256 over the whole (the PKCS#12
 * key derivation, which is what OpenSSL 3.0, browsers and OS keychains read). Written once
 * per operator, off any hot path.
 */
import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

/** OIDs of RFC 7292 and RFC 2985 used here. */
const OIDS = {
  certBag: '1.2.840.113549.1.12.10.1.3',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
} as const;

/** PBKDF2 and MAC iterations: OpenSSL 3's default for both. */
const ITERATIONS = 2048;

const arrayBuffer = (bytes: Uint8Array): ArrayBuffer => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

/** What goes into the file. */
export interface Pkcs12Contents {
  readonly privateKey: KeyObject;
  /** The holder's certificate first, then the CAs above it. */
  readonly certificatesDer: readonly Buffer[];
  readonly friendlyName: string;
  readonly passphrase: string;
}

/** Builds a PKCS#12 file (DER) protecting the key and its certificates with `passphrase`. */
export async function buildPkcs12(contents: Pkcs12Contents): Promise<Buffer> {
  const password = arrayBuffer(Buffer.from(contents.passphrase, 'utf8'));
  const localKeyId = arrayBuffer(randomBytes(20));
  const attributes = (withKeyId: boolean) => [
    new pkijs.Attribute({ type: OIDS.friendlyName, values: [new asn1js.BmpString({ value: contents.friendlyName })] }),
    ...(withKeyId ? [new pkijs.Attribute({ type: OIDS.localKeyId, values: [new asn1js.OctetString({ valueHex: localKeyId })] })] : []),
  ];

  const pkcs8 = contents.privateKey.export({ type: 'pkcs8', format: 'der' });
  const keyBag = new pkijs.PKCS8ShroudedKeyBag({
    parsedValue: pkijs.PrivateKeyInfo.fromBER(arrayBuffer(pkcs8)),
  });
  const certificateBags = contents.certificatesDer.map(
    (der, index) =>
      new pkijs.SafeBag({
        bagId: OIDS.certBag,
        bagValue: new pkijs.CertBag({ parsedValue: pkijs.Certificate.fromBER(arrayBuffer(der)) }),
        // Only the holder's own certificate pairs with the key.
        bagAttributes: index === 0 ? attributes(true) : [],
      }),
  );
  const encryption = {
    password,
    contentEncryptionAlgorithm: { name: 'AES-CBC', length: 256 },
    hmacHashAlgorithm: 'SHA-256',
    iterationCount: ITERATIONS,
  };

  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0, // password-based integrity
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            { privacyMode: 0, value: new pkijs.SafeContents({ safeBags: certificateBags }) },
            {
              privacyMode: 0, // the key bag is shrouded on its own
              value: new pkijs.SafeContents({
                safeBags: [new pkijs.SafeBag({ bagId: OIDS.pkcs8ShroudedKeyBag, bagValue: keyBag, bagAttributes: attributes(true) })],
              }),
            },
          ],
        },
      }),
    },
  });
  await keyBag.makeInternalValues(encryption);
  await pfx.parsedValue!.authenticatedSafe!.makeInternalValues({ safeContents: [{}, {}] });
  await pfx.makeInternalValues({
    password,
    iterations: ITERATIONS,
    pbkdf2HashAlgorithm: { name: 'SHA-256' },
    hmacHashAlgorithm: 'SHA-256',
  });
  return Buffer.from(pfx.toSchema().toBER(false));
}
