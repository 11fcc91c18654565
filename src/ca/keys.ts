/**
 * Key files: generated with Node's crypto, written as PKCS#8 PEM with mode 0600 (PKCS#8
 * encrypted with AES-256-CBC when a passphrase is given), read back as KeyObjects that
 * their owners cache.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../files.js';

/** A fresh P-256 key pair: the curve imprint uses for every key it makes (see DESIGN). */
export function generateP256(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

/**
 * A fresh RSA 2048 key pair, made only for the SCEP RA: SCEP clients transport their
 * content key with RSA (RFC 8894 3.5.2), so the RA cannot be P-256 like everything else.
 */
export function generateRsa2048(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
}

/** Writes a private key 0600, encrypted when a passphrase is given. */
export function writePrivateKey(path: string, key: KeyObject, passphrase?: string): void {
  const pem = passphrase
    ? key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
    : key.export({ type: 'pkcs8', format: 'pem' });
  writeFileAtomic(path, pem, 0o600);
}

/** Reads a private key PEM; a wrong or missing passphrase for an encrypted key is a clear error. */
export function readPrivateKey(path: string, passphrase?: string): KeyObject {
  const pem = readFileSync(path);
  const encrypted = pem.includes('ENCRYPTED');
  if (encrypted && !passphrase) {
    throw new Error(`${path} is encrypted: set IMPRINT_CA_PASSPHRASE`);
  }
  try {
    return createPrivateKey(encrypted ? { key: pem, passphrase: passphrase! } : { key: pem });
  } catch (error) {
    throw new Error(`cannot read private key ${path}${encrypted ? ' (wrong passphrase?)' : ''}`, { cause: error });
  }
}
