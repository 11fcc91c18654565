/**
 * The three ways a device enrolls and renews: imprint's JSON API (/v1/enroll, /v1/renew),
 * EST (RFC 7030 simpleenroll and simplereenroll) and SCEP (RFC 8894 PKCSReq and
 * RenewalReq). Each turns a token, a key and a device id into a request made ready before
 * any clock starts (the device's own work is not the server's), then sends it.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import * as pkijs from 'pkijs';
import type { ClientIdentity, EnrollmentResponse, ImprintClient } from './client.js';
import { ServerRefusedError } from './client.js';
import { buildCsr, buildCsrDer, generateDeviceKey, loadDeviceKey, pemOf, type DeviceKey, type KeyKind } from './csr.js';
import { buildPkiMessage, raFromCaCertificates, readCertRep, ScepMessageType, selfSignedCertificate, transactionIdOf, type ScepRa } from './scep.js';

/** The enrollment protocols the simulator speaks. */
export const PROTOCOLS = ['json', 'est', 'scep'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Reads a --protocol value. */
export function parseProtocol(value: string | undefined): Protocol {
  const protocol = value ?? 'json';
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) throw new Error(`--protocol must be one of ${PROTOCOLS.join(', ')}`);
  return protocol as Protocol;
}

/** SCEP replies are encrypted to the requester's key by RSA key transport: SCEP devices hold RSA keys. */
export const keyKindOf = (protocol: Protocol): KeyKind => (protocol === 'scep' ? 'rsa' : 'ec');

/** An enrollment made ready: sending it is all that is left. */
export type PreparedEnrollment = () => Promise<EnrollmentResponse & { status: number }>;

/** A protocol bound to one server. */
export interface EnrollmentProtocol {
  readonly protocol: Protocol;
  /** Makes a key of the kind this protocol needs. */
  newKey(): Promise<DeviceKey>;
  /** Builds the first enrollment's request (CSR, and for SCEP the whole signed and encrypted message). */
  prepareEnroll(token: string, key: DeviceKey, deviceId: string): Promise<PreparedEnrollment>;
  /** Renews with `newKey`, authenticated by the current certificate. */
  renew(identity: ClientIdentity, newKey: DeviceKey, deviceId: string): Promise<EnrollmentResponse>;
}

/** The response body fields read from a certificate (EST and SCEP answer with the certificate alone). */
function responseOf(certificateDer: Buffer, deviceId: string): EnrollmentResponse {
  const certificate = new X509Certificate(certificateDer);
  return {
    deviceId,
    serial: certificate.serialNumber.toLowerCase().replace(/^(00)+(?=.)/, ''),
    certificate: pemOf(certificateDer, 'CERTIFICATE'),
    chain: [],
    notAfter: new Date(certificate.validTo).toISOString(),
  };
}

/** The first certificate of a certs-only CMS (RFC 7030 4.1.3). */
function firstCertificate(certsOnly: Buffer): Buffer {
  const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(new Uint8Array(certsOnly)).content });
  const certificate = signed.certificates?.find((c): c is pkijs.Certificate => c instanceof pkijs.Certificate);
  if (!certificate) throw new Error('EST: the answer holds no certificate');
  return Buffer.from(certificate.toSchema().toBER(false));
}

/** The protocol `protocol` over `client`. */
export function enrollmentProtocol(protocol: Protocol, client: ImprintClient, rootPem: string): EnrollmentProtocol {
  switch (protocol) {
    case 'json':
      return {
        protocol,
        newKey: () => generateDeviceKey('ec'),
        prepareEnroll: async (token, key, deviceId) => {
          const csr = buildCsr(key, deviceId);
          return () => client.enroll(token, csr);
        },
        renew: (identity, newKey, deviceId) => client.renew(identity, buildCsr(newKey, deviceId)),
      };
    case 'est':
      return {
        protocol,
        newKey: () => generateDeviceKey('ec'),
        prepareEnroll: async (token, key, deviceId) => {
          const csr = buildCsrDer(key, deviceId);
          // RFC 7030 answers 200 whether the certificate is new or a retry's.
          return async () => ({ ...responseOf(firstCertificate(await client.estEnroll(token, csr)), deviceId), status: 200 });
        },
        renew: async (identity, newKey, deviceId) => responseOf(firstCertificate(await client.estReenroll(identity, buildCsrDer(newKey, deviceId))), deviceId),
      };
    case 'scep':
      return new ScepProtocol(client, rootPem);
  }
}

/** SCEP: the RA is fetched once (GetCACert) and checked against the root; each request is a signed, enveloped pkiMessage. */
class ScepProtocol implements EnrollmentProtocol {
  readonly protocol = 'scep' as const;
  private ra: Promise<ScepRa> | undefined;

  constructor(
    private readonly client: ImprintClient,
    private readonly rootPem: string,
  ) {}

  newKey(): Promise<DeviceKey> {
    return generateDeviceKey('rsa');
  }

  private raCertificate(): Promise<ScepRa> {
    this.ra ??= this.client.scepCaCertificates().then((pkcs7) => raFromCaCertificates(pkcs7, this.rootPem));
    return this.ra;
  }

  async prepareEnroll(token: string, key: DeviceKey, deviceId: string): Promise<PreparedEnrollment> {
    const ra = await this.raCertificate();
    // RFC 8894 2.3: a first request is signed with a self-signed certificate of the CSR's own key.
    const csrDer = buildCsrDer(key, deviceId, { challengePassword: token });
    const exchange = this.exchange(ra, ScepMessageType.PKCSReq, csrDer, selfSignedCertificate(key, deviceId), key, deviceId);
    return async () => ({ ...(await exchange()), status: 200 });
  }

  async renew(identity: ClientIdentity, newKey: DeviceKey, deviceId: string): Promise<EnrollmentResponse> {
    const ra = await this.raCertificate();
    // RFC 8894 3.3.1.2: a RenewalReq is signed with the current certificate, and the reply encrypted to it.
    const current = new X509Certificate(identity.certificatePem).raw;
    return this.exchange(ra, ScepMessageType.RenewalReq, buildCsrDer(newKey, deviceId), current, loadDeviceKey(identity.keyPem), deviceId)();
  }

  /** A ready pkiMessage and the reading of its CertRep; a FAILURE is a ServerRefusedError with the failInfo as its code. */
  private exchange(ra: ScepRa, messageType: (typeof ScepMessageType)[keyof typeof ScepMessageType], csrDer: Buffer, signerCertificate: Buffer, signerKey: DeviceKey, deviceId: string) {
    const transactionId = transactionIdOf(signerKey);
    const senderNonce = randomBytes(16);
    const message = buildPkiMessage(ra, { messageType, transactionId, senderNonce, csrDer, signerCertificate, signerKey });
    return async (): Promise<EnrollmentResponse> => {
      const reply = readCertRep(await this.client.scepPkiOperation(message), { ra, transactionId, senderNonce, recipientKey: signerKey, commonName: deviceId });
      if (reply.status === 'failure') throw new ServerRefusedError(200, reply.failInfo, `SCEP FAILURE CertRep: ${reply.failInfo}`);
      if (reply.status === 'pending') throw new ServerRefusedError(200, 'pending', 'SCEP PENDING CertRep');
      return responseOf(reply.certificate, deviceId);
    };
  }
}
