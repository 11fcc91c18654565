/**
 * Writes an operator identity to disk: NAME.pem (certificate, then the issuing CA),
 * NAME.key (0600) and NAME.p12 (0600) for browsers and tools that import PKCS#12.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
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
export function writeOperatorFiles({ pem, key, p12 }: OperatorFiles, issued: IssuedOperator, out: Output, given: string | undefined): string[] {
  writeFileAtomic(key, issued.keyPem, 0o600);
  writeFileAtomic(pem, issued.certificatePem + issued.chainPem[0]!);

  // PKCS#12 through the openssl binary: Node has no PKCS#12 writer, and the file is
  // written once per operator, off any hot path.
  const passphrase = given || randomBytes(12).toString('base64url');
  const result = spawnSync(
    'openssl',
    // To stdout: the file itself is written 0600 from the start, like the key.
    ['pkcs12', '-export', '-inkey', key, '-in', pem, '-name', issued.name, '-passout', 'env:IMPRINT_P12_PASSPHRASE'],
    { env: { ...process.env, IMPRINT_P12_PASSPHRASE: passphrase }, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1024 * 1024 },
  );
  if (result.error || result.status !== 0) {
    out.stderr(`warning: ${p12} not written (openssl pkcs12 failed: ${result.error?.message ?? result.stderr.toString().trim().split('\n')[0]})`);
    return [pem, key];
  }
  writeFileAtomic(p12, result.stdout, 0o600);
  if (!given) out.stderr(`PKCS#12 passphrase for ${p12} (shown once): ${passphrase}`);
  return [pem, key, p12];
}
