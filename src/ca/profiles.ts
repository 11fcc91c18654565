/**
 * Certificate profiles: which extensions each kind of certificate carries (RFC 5280 4.2).
 * The server decides the profile; nothing a CSR asks for beyond its CN and key is used.
 * Extensions that are the same in every device certificate are encoded once.
 */
import { isIP } from 'node:net';
import * as der from '../asn1/der.js';
import { encodeExtension, keyIdentifier } from './certificate-builder.js';
import { OID } from './oids.js';

/** KeyUsage bit positions (RFC 5280 4.2.1.3). */
export const KeyUsageBit = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

/** KeyUsage as a DER BIT STRING with the minimal number of unused bits. */
function keyUsage(bits: readonly number[]): Buffer {
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  const unused = 7 - (highest & 7);
  return der.tlv(0x03, Buffer.from([unused]), bytes);
}

const extension = (oid: string, critical: boolean, value: Buffer) => encodeExtension({ oid, critical, value });

const basicConstraints = (ca: boolean, pathLength?: number) =>
  extension(
    OID.basicConstraints,
    true,
    ca ? der.sequence(der.boolean(true), ...(pathLength === undefined ? [] : [der.smallInteger(pathLength)])) : der.sequence(),
  );

const keyUsageExtension = (bits: readonly number[]) => extension(OID.keyUsage, true, keyUsage(bits));
const extendedKeyUsage = (...oids: string[]) =>
  extension(OID.extKeyUsage, false, der.sequence(...oids.map((oid) => der.objectIdentifier(oid))));
const subjectKeyIdentifier = (keyBits: Buffer) =>
  extension(OID.subjectKeyIdentifier, false, der.octetString(keyIdentifier(keyBits)));
const authorityKeyIdentifier = (issuerKeyBits: Buffer) =>
  extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicitPrimitive(0, keyIdentifier(issuerKeyBits))));

const uriName = (uri: string) => der.implicitPrimitive(6, Buffer.from(uri, 'ascii'));
const dnsName = (name: string) => der.implicitPrimitive(2, Buffer.from(name, 'ascii'));

/** An iPAddress GeneralName: 4 or 16 octets (RFC 5280 4.2.1.6). */
function ipName(address: string): Buffer {
  if (isIP(address) === 4) return der.implicitPrimitive(7, Buffer.from(address.split('.').map(Number)));
  const [head = '', tail = ''] = address.split('::');
  const groups = (part: string) => (part ? part.split(':') : []);
  const missing = 8 - groups(head).length - groups(tail).length;
  const all = [...groups(head), ...(address.includes('::') ? Array(missing).fill('0') : []), ...groups(tail)];
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return der.implicitPrimitive(7, bytes);
}

/** Root CA: CA:true, may sign certificates and CRLs. */
export function rootExtensions(keyBits: Buffer): Buffer[] {
  return [
    basicConstraints(true),
    keyUsageExtension([KeyUsageBit.keyCertSign, KeyUsageBit.cRLSign]),
    subjectKeyIdentifier(keyBits),
  ];
}

/** Issuing CA: pathLen 0, signs device certificates, CRLs and OCSP responses. */
export function issuerExtensions(keyBits: Buffer, rootKeyBits: Buffer): Buffer[] {
  return [
    basicConstraints(true, 0),
    keyUsageExtension([KeyUsageBit.digitalSignature, KeyUsageBit.keyCertSign, KeyUsageBit.cRLSign]),
    subjectKeyIdentifier(keyBits),
    authorityKeyIdentifier(rootKeyBits),
  ];
}

/** The server's own TLS certificate: serverAuth for the given DNS names and IP addresses. */
export function serverExtensions(keyBits: Buffer, issuerKeyBits: Buffer, names: readonly string[]): Buffer[] {
  const generalNames = names.map((name) => (isIP(name) ? ipName(name) : dnsName(name)));
  return [
    basicConstraints(false),
    keyUsageExtension([KeyUsageBit.digitalSignature]),
    extendedKeyUsage(OID.serverAuth),
    extension(OID.subjectAltName, false, der.sequence(...generalNames)),
    subjectKeyIdentifier(keyBits),
    authorityKeyIdentifier(issuerKeyBits),
  ];
}

/**
 * The SCEP registration authority's RSA certificate (RFC 8894 2.1, 2.2): clients encrypt
 * their requests to it (keyEncipherment) and it signs the CertReps (digitalSignature). No
 * extended key usage: it authenticates no TLS peer.
 */
export function scepRaExtensions(keyBits: Buffer, issuerKeyBits: Buffer): Buffer[] {
  return [
    basicConstraints(false),
    keyUsageExtension([KeyUsageBit.digitalSignature, KeyUsageBit.keyEncipherment]),
    subjectKeyIdentifier(keyBits),
    authorityKeyIdentifier(issuerKeyBits),
  ];
}

/** Settings that shape every client (device and operator) certificate. */
export interface ClientProfileSettings {
  readonly trustDomain: string;
  /** Base URL of this server as relying parties reach it, without a trailing slash. */
  readonly publicUrl: string;
}

/**
 * Client certificates (devices now, operators later): CA:false, clientAuth, CRL DP and
 * OCSP AIA. The constant extensions are encoded once per CA; per certificate only the
 * key usage, SKI and SPIFFE SAN are built.
 */
export class ClientProfile {
  private readonly constant: Buffer[];
  private readonly ecKeyUsage = keyUsageExtension([KeyUsageBit.digitalSignature]);
  // RFC 5280 4.2.1.3: RSA keys may also be used for key transport.
  private readonly rsaKeyUsage = keyUsageExtension([KeyUsageBit.digitalSignature, KeyUsageBit.keyEncipherment]);

  constructor(
    private readonly settings: ClientProfileSettings,
    issuerKeyBits: Buffer,
  ) {
    const accessDescription = (method: string, uri: string) => der.sequence(der.objectIdentifier(method), uriName(uri));
    this.constant = [
      basicConstraints(false),
      extendedKeyUsage(OID.clientAuth),
      authorityKeyIdentifier(issuerKeyBits),
      extension(
        OID.crlDistributionPoints,
        false,
        der.sequence(der.sequence(der.explicit(0, der.implicitConstructed(0, uriName(`${settings.publicUrl}/crl`))))),
      ),
      extension(
        OID.authorityInfoAccess,
        false,
        der.sequence(accessDescription(OID.accessOcsp, `${settings.publicUrl}/ocsp`)),
      ),
    ];
  }

  /** The SPIFFE ID of a client: spiffe://<trust-domain>/<kind>/<name>. */
  spiffeId(kind: 'device' | 'operator', name: string): string {
    return `spiffe://${this.settings.trustDomain}/${kind}/${encodeURIComponent(name)}`;
  }

  /** All extensions for one client certificate. */
  extensions(kind: 'device' | 'operator', name: string, keyType: string, keyBits: Buffer): Buffer[] {
    return [
      keyType === 'rsa' ? this.rsaKeyUsage : this.ecKeyUsage,
      extension(OID.subjectAltName, false, der.sequence(uriName(this.spiffeId(kind, name)))),
      subjectKeyIdentifier(keyBits),
      ...this.constant,
    ];
  }
}
