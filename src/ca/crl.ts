/**
 * X.509 v2 CRLs (RFC 5280 5), assembled as DER and signed with Node's crypto: a CRL of
 * 100,000 entries is a loop of small buffer writes, not 100,000 pkijs objects.
 */
import { sign } from 'node:crypto';
import * as der from '../asn1/der.js';
import { encodeExtension, keyIdentifier, type SigningKey } from './certificate-builder.js';
import { OID } from './oids.js';
import { CRL_REASON_CODES } from './revocation-reasons.js';

/** One revoked certificate. */
export interface CrlEntry {
  /** Lowercase hex. */
  readonly serial: string;
  readonly revokedAt: Date;
  readonly reason: string;
}

/** Everything a CRL is made of. */
export interface CrlContent {
  readonly issuerName: Buffer;
  readonly issuerPublicKeyBits: Buffer;
  readonly crlNumber: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly entries: readonly CrlEntry[];
}

/** The reasonCode entry extension; RFC 5280 5.3.1: unspecified SHOULD be absent. */
function reasonExtensions(reason: string): Buffer[] {
  const code = CRL_REASON_CODES[reason];
  if (code === undefined || code === 0) return [];
  return [der.sequence(encodeExtension({ oid: OID.cRLReason, critical: false, value: der.enumerated(code) }))];
}

/** Builds and signs a CRL. */
export function buildCrl(content: CrlContent, signer: SigningKey): Buffer {
  // Entries with the same reason share their extension bytes.
  const extensionsByReason = new Map<string, Buffer[]>();
  const entries = content.entries.map((entry) => {
    let extensions = extensionsByReason.get(entry.reason);
    if (!extensions) extensionsByReason.set(entry.reason, (extensions = reasonExtensions(entry.reason)));
    return der.sequence(der.unsignedInteger(Buffer.from(entry.serial, 'hex')), der.time(entry.revokedAt), ...extensions);
  });
  const tbs = der.sequence(
    der.smallInteger(1), // v2
    signer.algorithm,
    content.issuerName,
    der.time(content.thisUpdate),
    der.time(content.nextUpdate),
    // RFC 5280 5.1.2.6: with no revoked certificates the list is absent, not empty.
    ...(entries.length ? [der.tlv(0x30, Buffer.concat(entries))] : []),
    der.explicit(
      0,
      der.sequence(
        encodeExtension({
          oid: OID.authorityKeyIdentifier,
          critical: false,
          value: der.sequence(der.implicitPrimitive(0, keyIdentifier(content.issuerPublicKeyBits))),
        }),
        encodeExtension({ oid: OID.cRLNumber, critical: false, value: der.smallInteger(content.crlNumber) }),
      ),
    ),
  );
  const signature = sign(signer.digest, tbs, { key: signer.privateKey, dsaEncoding: 'der' });
  return der.sequence(tbs, signer.algorithm, der.bitString(signature));
}
