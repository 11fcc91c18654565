/**
 * The benchmark's enrollment requests, made before any clock starts: tokens minted in the
 * store the server will read, and a P-256 key and CSR for each device (the devices' own work).
 */
import { openInstance } from '../src/instance.js';
import { buildCsr, generateDeviceKey } from '../simulator/csr.js';
import type { PoolEntry } from './bench-tools.js';

/** A data directory and, when its store is PostgreSQL, the database's URL. */
export interface BenchStore {
  readonly dataDir: string;
  readonly databaseUrl?: string | undefined;
}

/** Mints `count` unbound tokens through the token service. */
export async function mintTokens(store: BenchStore, count: number): Promise<string[]> {
  const instance = await openInstance(store.dataDir, { databaseUrl: store.databaseUrl });
  try {
    const tokens: string[] = [];
    while (tokens.length < count) {
      const minted = await instance.tokens.mint({ count: Math.min(10_000, count - tokens.length), ttlSeconds: 86_400 }, { actor: 'cli:bench', role: 'admin' });
      tokens.push(...minted.tokens.map((t) => t.token));
    }
    return tokens;
  } finally {
    await instance.close();
  }
}

/** `count` CSRs, each from a fresh P-256 key, for devices `${prefix}-0000000` onwards. */
export async function makeCsrs(count: number, prefix: string): Promise<string[]> {
  const csrs: string[] = [];
  for (let i = 0; i < count; i += 1000) {
    const keys = await Promise.all(Array.from({ length: Math.min(1000, count - i) }, () => generateDeviceKey()));
    csrs.push(...keys.map((key, j) => buildCsr(key, `${prefix}-${String(i + j).padStart(7, '0')}`)));
  }
  return csrs;
}

/** wrk's requests: each token with its CSR, as POST /v1/enroll sends them. */
export const enrollRequests = (tokens: readonly string[], csrs: readonly string[]): PoolEntry[] =>
  tokens.map((token, i) => ({ authorization: `Bearer ${token}`, body: JSON.stringify({ csr: csrs[i] }) }));
