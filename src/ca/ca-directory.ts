/**
 * The CA half of the data directory: creating a root and issuing CA, importing an
 * existing issuing CA, issuing the server's TLS certificate, and loading it all back.
 * File names are part of the contract (DESIGN "Data directory").
 */
import { createPrivateKey, createPublicKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { childrenOf, contentOf, readElement } from '../asn1/der-reader.js';
import { writeFileAtomic } from '../files.js';
import { buildCertificate, encodeName, randomSerial, signingKeyFor, type NameAttribute } from './certificate-builder.js';
import { certificateParts, type CertificateParts } from './certificate-info.js';
import { generateP256, generateRsa2048, readPrivateKey, writePrivateKey } from './keys.js';
import { OID } from './oids.js';
import { certificatesFromPem, toPem } from './pem.js';
import { issuerExtensions, rootExtensions, scepRaExtensions, serverExtensions } from './profiles.js';

/** Where each CA file lives below a data directory. */
export function caPaths(dataDir: string) {
  return {
    root: join(dataDir, 'ca', 'root.pem'),
    rootKey: join(dataDir, 'ca', 'root.key'),
    issuer: join(dataDir, 'ca', 'issuer.pem'),
    issuerKey: join(dataDir, 'ca', 'issuer.key'),
    serverCertificate: join(dataDir, 'tls', 'server.pem'),
    serverKey: join(dataDir, 'tls', 'server.key'),
    scepRa: join(dataDir, 'ca', 'scep-ra.pem'),
    scepRaKey: join(dataDir, 'ca', 'scep-ra.key'),
  };
}

const DAY_MS = 86_400_000;
const ROOT_VALIDITY_DAYS = 20 * 365;
const ISSUER_VALIDITY_DAYS = 10 * 365;
const SERVER_VALIDITY_DAYS = 397;
/** The server certificate is re-issued at start-up when less than this is left. */
export const SERVER_RENEW_BEFORE_DAYS = 30;
/** The SCEP RA certificate lives about a year and is re-issued like the server's. */
const SCEP_RA_VALIDITY_DAYS = 365;
/** The SCEP RA certificate is re-issued at start-up when less than this is left. */
export const SCEP_RA_RENEW_BEFORE_DAYS = 30;

/** Everything loaded from the CA directory that the running CA needs. */
export interface CaMaterial {
  readonly root: CertificateParts;
  readonly issuer: CertificateParts;
  readonly issuerKey: KeyObject;
  /** Present only when imprint created the root (it may then sign the root's CRL). */
  readonly rootKey: KeyObject | undefined;
}

/** The server's TLS identity: PEM chain (leaf, issuing CA) and key. */
export interface ServerIdentity {
  readonly certificateChainPem: string;
  readonly keyPem: string;
  readonly notAfter: Date;
  /** The leaf, as the store records it so that OCSP answers for it. */
  readonly leaf: ServerLeaf;
}

/** The server's own certificate, described. */
export interface ServerLeaf {
  readonly serial: string;
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly der: Buffer;
}

/** Describes our own server certificate (a file we wrote, not client input). */
function serverLeaf(der: Buffer): ServerLeaf {
  const x509 = new X509Certificate(der);
  return {
    serial: x509.serialNumber.toLowerCase(),
    subject: x509.subject,
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    der,
  };
}

/** True once a CA has been created or imported in this data directory. */
export const caExists = (dataDir: string): boolean => existsSync(caPaths(dataDir).issuer);

const names = (commonName: string, org: string | undefined): NameAttribute[] => [
  ...(org ? [{ oid: OID.organizationName, value: org }] : []),
  { oid: OID.commonName, value: commonName },
];

const spkiOf = (key: KeyObject): Buffer => createPublicKey(key).export({ type: 'spki', format: 'der' });
const keyBitsOf = (spki: Buffer): Buffer => spki.subarray(spki.length - 65); // uncompressed P-256 point

/** Options for creating a new root and issuing CA. */
export interface CreateCaOptions {
  readonly org: string | undefined;
  readonly passphrase: string | undefined;
  readonly now: Date;
}

/** Creates root (P-256, ~20 y) and issuing CA (P-256, ~10 y, pathLen 0). */
export function createCa(dataDir: string, options: CreateCaOptions): void {
  const paths = caPaths(dataDir);
  const root = generateP256();
  const issuer = generateP256();
  const rootSpki = spkiOf(root.privateKey);
  const issuerSpki = spkiOf(issuer.privateKey);
  const rootName = encodeName(names('imprint Root CA', options.org));
  const notBefore = new Date(options.now.getTime() - 5 * 60_000);

  const rootDer = buildCertificate(
    {
      serial: randomSerial(randomBytes),
      issuer: rootName,
      subject: rootName,
      notBefore,
      notAfter: new Date(notBefore.getTime() + ROOT_VALIDITY_DAYS * DAY_MS),
      subjectPublicKeyInfo: rootSpki,
      extensions: rootExtensions(keyBitsOf(rootSpki)),
    },
    signingKeyFor(root.privateKey),
  );
  const issuerDer = buildCertificate(
    {
      serial: randomSerial(randomBytes),
      issuer: rootName,
      subject: encodeName(names('imprint Issuing CA', options.org)),
      notBefore,
      notAfter: new Date(notBefore.getTime() + ISSUER_VALIDITY_DAYS * DAY_MS),
      subjectPublicKeyInfo: issuerSpki,
      extensions: issuerExtensions(keyBitsOf(issuerSpki), keyBitsOf(rootSpki)),
    },
    signingKeyFor(root.privateKey),
  );
  writePrivateKey(paths.rootKey, root.privateKey, options.passphrase);
  writePrivateKey(paths.issuerKey, issuer.privateKey, options.passphrase);
  writeFileAtomic(paths.root, toPem(rootDer));
  writeFileAtomic(paths.issuer, toPem(issuerDer));
}

/** Files of an existing issuing CA whose root stays elsewhere (offline). */
export interface ImportCaOptions {
  readonly certificatePem: string;
  readonly keyPem: string;
  /** The chain above the issuing CA, ending with the self-signed root. */
  readonly chainPem: string;
  readonly keyPassphrase: string | undefined;
  readonly passphrase: string | undefined;
  readonly now: Date;
}

/** Imports an issuing CA after checking that key, certificate and chain belong together. */
export function importCa(dataDir: string, options: ImportCaOptions): void {
  const paths = caPaths(dataDir);
  const [issuerDer] = certificatesFromPem(options.certificatePem);
  const chain = certificatesFromPem(options.chainPem);
  if (!issuerDer) throw new Error('the issuing CA file holds no certificate');
  if (chain.length === 0) throw new Error('the chain file holds no certificate (it must end with the root)');
  const issuer = new X509Certificate(issuerDer);
  const key = createPrivateKey(
    options.keyPassphrase ? { key: options.keyPem, passphrase: options.keyPassphrase } : { key: options.keyPem },
  );
  if (!issuer.checkPrivateKey(key)) throw new Error('the key does not belong to the issuing CA certificate');
  if (!issuer.ca) throw new Error('the issuing certificate is not a CA (basicConstraints CA:true is missing)');
  signingKeyFor(key); // refuses key types we cannot sign with
  const certificates = [issuer, ...chain.map((der) => new X509Certificate(der))];
  for (let i = 0; i + 1 < certificates.length; i++) {
    const [child, parent] = [certificates[i]!, certificates[i + 1]!];
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new Error(`chain is broken: "${child.subject}" is not signed by "${parent.subject}"`);
    }
  }
  const root = certificates[certificates.length - 1]!;
  if (!root.checkIssued(root) || !root.verify(root.publicKey)) throw new Error('the chain must end with a self-signed root');
  for (const certificate of certificates) {
    if (new Date(certificate.validTo) <= options.now) throw new Error(`"${certificate.subject}" has expired`);
  }
  writePrivateKey(paths.issuerKey, key, options.passphrase);
  writeFileAtomic(paths.root, toPem(chain[chain.length - 1]!));
  // issuer.pem carries any intermediates between the issuing CA and the root; written last,
  // as its presence is what says a CA is here (caExists).
  writeFileAtomic(paths.issuer, [issuerDer, ...chain.slice(0, -1)].map((der) => toPem(der)).join(''));
}

/** The CA's certificates alone, without reading a key (what checks its published CRLs). */
export function loadCaCertificates(dataDir: string): Pick<CaMaterial, 'root' | 'issuer'> {
  const paths = caPaths(dataDir);
  const [issuerDer] = certificatesFromPem(readFileSync(paths.issuer, 'utf8'));
  const [rootDer] = certificatesFromPem(readFileSync(paths.root, 'utf8'));
  if (!issuerDer || !rootDer) throw new Error(`${paths.issuer} or ${paths.root} holds no certificate`);
  return { root: certificateParts(rootDer), issuer: certificateParts(issuerDer) };
}

/** Loads the CA; throws a clear error for a missing file or a wrong passphrase. */
export function loadCa(dataDir: string, passphrase: string | undefined): CaMaterial {
  const paths = caPaths(dataDir);
  const { root, issuer } = loadCaCertificates(dataDir);
  const issuerKey = readPrivateKey(paths.issuerKey, passphrase);
  if (!issuer.x509.checkPrivateKey(issuerKey)) throw new Error(`${paths.issuerKey} does not match ${paths.issuer}`);
  return {
    root,
    issuer,
    issuerKey,
    rootKey: existsSync(paths.rootKey) ? readPrivateKey(paths.rootKey, passphrase) : undefined,
  };
}

/** The PEM certificates between a device certificate and the root, issuing CA first. */
export function intermediatesPem(dataDir: string): string {
  return readFileSync(caPaths(dataDir).issuer, 'utf8');
}

/** Issues tls/server.pem|key for the given names (DNS names and IP addresses). */
export function issueServerCertificate(
  dataDir: string,
  ca: CaMaterial,
  hostnames: readonly string[],
  now: Date,
): ServerIdentity {
  const paths = caPaths(dataDir);
  const key = generateP256();
  const spki = spkiOf(key.privateKey);
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const notAfter = new Date(notBefore.getTime() + SERVER_VALIDITY_DAYS * DAY_MS);
  const der = buildCertificate(
    {
      serial: randomSerial(randomBytes),
      issuer: ca.issuer.subjectName,
      subject: encodeName([{ oid: OID.commonName, value: hostnames[0] ?? 'localhost' }]),
      notBefore,
      notAfter,
      subjectPublicKeyInfo: spki,
      extensions: serverExtensions(keyBitsOf(spki), ca.issuer.publicKeyBits, hostnames),
    },
    signingKeyFor(ca.issuerKey),
  );
  const keyPem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  writePrivateKey(paths.serverKey, key.privateKey);
  const certificateChainPem = toPem(der) + intermediatesPem(dataDir);
  writeFileAtomic(paths.serverCertificate, certificateChainPem);
  return { certificateChainPem, keyPem, notAfter, leaf: serverLeaf(der) };
}

/** Loads the server's TLS identity, or undefined when there is none yet. */
export function loadServerIdentity(dataDir: string): ServerIdentity | undefined {
  const paths = caPaths(dataDir);
  if (!existsSync(paths.serverCertificate) || !existsSync(paths.serverKey)) return undefined;
  const certificateChainPem = readFileSync(paths.serverCertificate, 'utf8');
  const [leaf] = certificatesFromPem(certificateChainPem);
  if (!leaf) return undefined;
  const described = serverLeaf(leaf);
  return { certificateChainPem, keyPem: readFileSync(paths.serverKey, 'utf8'), notAfter: described.notAfter, leaf: described };
}

/** The SCEP registration authority: an RSA certificate from the issuing CA, and its key. */
export interface ScepRaIdentity {
  /** DER of the RA certificate. */
  readonly certificate: Buffer;
  readonly key: KeyObject;
  readonly notAfter: Date;
  /** The certificate, as the store records it so that OCSP answers for it. */
  readonly leaf: ServerLeaf;
}

/** The subjectPublicKey BIT STRING contents of a SubjectPublicKeyInfo we made ourselves. */
const subjectKeyBits = (spki: Buffer): Buffer => contentOf(spki, childrenOf(spki, readElement(spki))[1]!).subarray(1);

/**
 * Issues ca/scep-ra.pem|key: RSA 2048 (SCEP clients can only encrypt to RSA), signed by
 * the issuing CA, which itself stays P-256. The RA holds no CA power: it decrypts
 * requests and signs CertReps; certificates are still signed by the issuing CA.
 */
export function issueScepRaCertificate(dataDir: string, ca: CaMaterial, now: Date): ScepRaIdentity {
  const paths = caPaths(dataDir);
  const key = generateRsa2048();
  const spki = spkiOf(key.privateKey);
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const notAfter = new Date(notBefore.getTime() + SCEP_RA_VALIDITY_DAYS * DAY_MS);
  const der = buildCertificate(
    {
      serial: randomSerial(randomBytes),
      issuer: ca.issuer.subjectName,
      subject: encodeName([{ oid: OID.commonName, value: 'imprint SCEP RA' }]),
      notBefore,
      notAfter,
      subjectPublicKeyInfo: spki,
      extensions: scepRaExtensions(subjectKeyBits(spki), ca.issuer.publicKeyBits),
    },
    signingKeyFor(ca.issuerKey),
  );
  writePrivateKey(paths.scepRaKey, key.privateKey);
  writeFileAtomic(paths.scepRa, toPem(der));
  return { certificate: der, key: key.privateKey, notAfter, leaf: serverLeaf(der) };
}

/** Loads the SCEP RA, or undefined when there is none yet (or it no longer matches its key). */
export function loadScepRa(dataDir: string): ScepRaIdentity | undefined {
  const paths = caPaths(dataDir);
  if (!existsSync(paths.scepRa) || !existsSync(paths.scepRaKey)) return undefined;
  const [der] = certificatesFromPem(readFileSync(paths.scepRa, 'utf8'));
  if (!der) return undefined;
  const key = readPrivateKey(paths.scepRaKey);
  const leaf = serverLeaf(der);
  if (!new X509Certificate(der).checkPrivateKey(key)) return undefined;
  return { certificate: der, key, notAfter: leaf.notAfter, leaf };
}
