/** The real openssl binary as an independent CSR maker and certificate verifier. */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** Key kinds the tests ask openssl for. */
export type KeyKind = 'p256' | 'p384' | 'secp256k1' | 'rsa1024' | 'rsa2048';

const KEY_ARGS: Record<KeyKind, string[]> = {
  p256: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  p384: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  secp256k1: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'],
  rsa1024: ['-newkey', 'rsa:1024'],
  rsa2048: ['-newkey', 'rsa:2048'],
};

/** Runs openssl and returns stdout; throws with stderr on failure. */
export function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs openssl where a non-zero exit is an expected answer; returns the exit code and all output. */
export function opensslExit(args: string[]): { code: number | null; output: string } {
  const result = spawnSync('openssl', args, { encoding: 'utf8' });
  return { code: result.status, output: result.stdout + result.stderr };
}

/** opensslExit without blocking the event loop, for openssl talking to a server in this process. */
export async function opensslExitAsync(args: string[]): Promise<{ code: number | null; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('openssl', args, { encoding: 'utf8', timeout: 20_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : null, output: (failed.stdout ?? '') + (failed.stderr ?? '') };
  }
}

/**
 * Runs openssl without blocking the event loop: needed whenever openssl talks to a server
 * listening in this same process (`openssl ocsp -url`).
 */
export async function opensslAsync(args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('openssl', args, { encoding: 'utf8', timeout: 20_000 });
  return stdout;
}

/** A temporary directory removed by the returned cleanup. */
export function tempDir(prefix = 'imprint-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A key and CSR made by `openssl req`. */
export interface OpensslCsr {
  readonly csrPem: string;
  readonly keyPem: string;
  readonly keyPath: string;
}

/** Makes a key and a CSR with the given subject (e.g. "/CN=sensor-001"). */
export function opensslCsr(kind: KeyKind, subject: string, dir = tempDir(), extra: string[] = []): OpensslCsr {
  const keyPath = join(dir, `key-${Math.random().toString(36).slice(2)}.pem`);
  const csrPem = openssl(['req', '-new', ...KEY_ARGS[kind], '-nodes', '-keyout', keyPath, '-subj', subject, ...extra]);
  return { csrPem, keyPem: readFileSync(keyPath, 'utf8'), keyPath };
}

/** A CSR for an existing key file. */
export function opensslCsrForKey(keyPath: string, subject: string): string {
  return openssl(['req', '-new', '-key', keyPath, '-subj', subject]);
}

/** `openssl verify` of a leaf against root + untrusted intermediates; returns stdout, throws on failure. */
export function opensslVerify(leafPem: string, rootPath: string, intermediatesPath: string, extra: string[] = []): string {
  const dir = tempDir();
  try {
    const leaf = join(dir, 'leaf.pem');
    writeFileSync(leaf, leafPem);
    return openssl(['verify', '-CAfile', rootPath, '-untrusted', intermediatesPath, ...extra, leaf]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `openssl x509 -text` of a PEM certificate. */
export const opensslText = (pem: string): string => openssl(['x509', '-noout', '-text'], pem);
