/**
 * Writes an operator identity to disk: NAME.pem (certificate, then the issuing CA),
 * NAME.key (0600) and NAME.p12 (0600) for browsers and tools that import PKCS#12.
 */
import { createPrivateKey, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { certificatesFromPem } from '../ca/pem.js';
import { buildPkcs12 } from '../ca/pkcs12.js';
import type { IssuedOperator } from '../enrollment/operator-service.js';
import { writeFileAtomic } from '../files.js';
import type { Output } from './command.js';

/** Where an operator's files go. */
export interface OperatorFiles {
  readonly pem: string;
  readonly key: string;
  readonly p12: string;
}

/**
 * Claims the file names before anything is issued, so that an operator is never recorded
 * without its key on disk; creates the directory (0700) when missing.
 */
export function operatorFiles(dir: string, name: string): OperatorFiles {
  const files = { pem: join(dir, `${name}.pem`), key: join(dir, `${name}.key`), p12: join(dir, `${name}.p12`) };
  for (const file of Object.values(files)) {
    if (existsSync(file)) throw new Error(`${file} already exists; choose another --out`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return files;
}

/**
 * Writes the files; returns the paths written. The PKCS#12 passphrase is `given`
 * (IMPRINT_P12_PASSPHRASE, or its _FILE), else generated and shown once.
 */
export async function writeOperatorFiles({ pem, key, p12 }: OperatorFiles, issued: IssuedOperator, out: Output, given: string | undefined): Promise<string[]> {
  writeFileAtomic(key, issued.keyPem, 0o600);
  writeFileAtomic(pem, issued.certificatePem + issued.chainPem[0]!);
  const passphrase = given || randomBytes(12).toString('base64url');
  const pkcs12 = await buildPkcs12({
    privateKey: createPrivateKey(issued.keyPem),
    certificatesDer: certificatesFromPem(issued.certificatePem + issued.chainPem.join('')),
    friendlyName: issued.name,
    passphrase,
  });
  writeFileAtomic(p12, pkcs12, 0o600);
  if (!given) out.stderr(`PKCS#12 passphrase for ${p12} (shown once): ${passphrase}`);
  return [pem, key, p12];
}
