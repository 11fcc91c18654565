/**
 * CMS (RFC 5652) structures for the standard enrollment protocols, assembled from DER
 * parts (tested against pkijs): the certs-only message answers every EST enrollment, and
 * a serving process loads pkijs and asn1js only once a SCEP message needs them
 * (scep-service.ts). Pure PKI: no HTTP, no SQL.
 */
import * as der from '../asn1/der.js';
import { OID } from './oids.js';

/** CMS content types (RFC 5652 4 and 5.1). */
export const CMS_OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
} as const;

/** The PKCS#9 challengePassword attribute (RFC 2985 5.4.1). */
export const CHALLENGE_PASSWORD_OID = '1.2.840.113549.1.9.7';

/**
 * A "certs-only" CMS message (RFC 5652 5.1 degenerate SignedData; RFC 7030 4.1.3 and
 * 4.2.3, RFC 8894 3.4): version 1, no content, no signers, just the certificates in the
 * order given. Readable by `openssl pkcs7 -inform DER -print_certs`.
 */
export function certsOnlyCms(certificates: readonly Buffer[]): Buffer {
  // Assembled from the certificates' DER as they are: through pkijs each answer cost a
  // full certificate parse (~1.3 ms), most of an EST enrollment's CPU. The bytes are the
  // same as pkijs's (a test compares them).
  const signedData = der.sequence(
    der.smallInteger(1),
    der.set(), // digestAlgorithms
    der.sequence(der.objectIdentifier(CMS_OID.data)), // encapContentInfo, no content
    der.implicitConstructed(0, ...certificates),
    der.set(), // signerInfos
  );
  return der.sequence(der.objectIdentifier(CMS_OID.signedData), der.explicit(0, signedData));
}

/**
 * The CsrAttrs of RFC 7030 4.5.2 telling a client what CSR we want:
 *
 *     CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
 *     AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
 *
 * We ask for an EC key on P-256 (the attribute form RFC 7030's own example uses for the
 * curve: id-ecPublicKey with the curve OID as its value) signed with ecdsa-with-SHA256.
 * P-256 because DESIGN chose it for every link of the chain; other keys the CSR policy
 * allows are still accepted, this is only the preference.
 */
export function csrAttributes(): Buffer {
  return der.sequence(
    der.sequence(der.objectIdentifier(OID.ecPublicKey), der.set(der.objectIdentifier(OID.prime256v1))),
    der.objectIdentifier(OID.ecdsaWithSha256),
  );
}

/** Base64 in 64-character lines, as RFC 7030/8951 bodies are sent (and `openssl base64 -d` reads). */
export function base64Lines(der: Buffer): string {
  return (der.toString('base64').match(/.{1,64}/g) ?? []).join('\n') + '\n';
}
