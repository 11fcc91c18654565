/**
 * The running CA: the only code that signs with the issuing key. It takes instructions
 * (who, which key, which validity) from the enrollment services and knows nothing of
 * tokens, devices or storage.
 */
import { buildCertificate, encodeName, pooledRandomBytes, randomSerial, signingKeyFor, type SigningKey } from './certificate-builder.js';
import type { CaMaterial } from './ca-directory.js';
import { OcspResponder } from './ocsp.js';
import { OID } from './oids.js';
import { toPem } from './pem.js';
import { ClientProfile, type ClientProfileSettings } from './profiles.js';

/** What the CA is told to certify. */
export interface ClientCertificateRequest {
  readonly kind: 'device' | 'operator';
  readonly name: string;
  readonly keyType: string;
  readonly subjectPublicKeyInfo: Buffer;
  readonly subjectPublicKeyBits: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** A freshly signed certificate. */
export interface IssuedCertificate {
  readonly der: Buffer;
  readonly pem: string;
  /** Lowercase hex, as in the API and the store. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Settings of the CA beyond its keys. */
export interface AuthoritySettings extends ClientProfileSettings {
  readonly org: string | undefined;
}

/** Signs client certificates with the issuing CA. */
export class CertificateAuthority {
  /** PEM certificates from the issuing CA up to the root, as served by GET /v1/ca. */
  readonly chainPem: readonly string[];
  /** The issuing CA answering OCSP for the certificates it issued. */
  readonly ocspResponder: OcspResponder;
  private readonly signer: SigningKey;
  private readonly profile: ClientProfile;

  constructor(
    readonly material: CaMaterial,
    private readonly settings: AuthoritySettings,
    private readonly random: (size: number) => Buffer = pooledRandomBytes(),
  ) {
    this.signer = signingKeyFor(material.issuerKey);
    this.profile = new ClientProfile(settings, material.issuer.publicKeyBits);
    this.chainPem = [toPem(material.issuer.der), toPem(material.root.der)];
    this.ocspResponder = new OcspResponder(this.signer, material.issuer);
  }

  /** Signs a device or operator certificate with the fixed client profile. */
  issueClientCertificate(request: ClientCertificateRequest): IssuedCertificate {
    const serial = randomSerial(this.random);
    const der = buildCertificate(
      {
        serial,
        issuer: this.material.issuer.subjectName,
        subject: encodeName([
          ...(this.settings.org ? [{ oid: OID.organizationName, value: this.settings.org }] : []),
          { oid: OID.commonName, value: request.name },
        ]),
        notBefore: request.notBefore,
        notAfter: request.notAfter,
        subjectPublicKeyInfo: request.subjectPublicKeyInfo,
        extensions: this.profile.extensions(request.kind, request.name, request.keyType, request.subjectPublicKeyBits),
      },
      this.signer,
    );
    return {
      der,
      pem: toPem(der),
      serial: serial.toString('hex'),
      notBefore: request.notBefore,
      notAfter: request.notAfter,
    };
  }
}
