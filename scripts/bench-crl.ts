/**
 * The CRL under a mass revocation, through the HTTP API only (so any publisher can be
 * measured): how long after a revocation the first CRL that lists it is answered (built
 * when first asked for, or in the background: either way the time a relying party waits),
 * and how fast and at what server CPU the published one is served again and again.
 */
import { request } from 'node:https';
import { childrenOf, readElement } from '../src/asn1/der-reader.js';
import { readBody } from '../simulator/read-body.js';
import { runBounded } from '../simulator/load.js';

/** The number of entries in a DER CRL (RFC 5280 5.1: TBSCertList's revokedCertificates). */
export function crlEntries(der: Buffer): number {
  const tbs = readElement(der, readElement(der).contentStart);
  const fields = childrenOf(der, tbs);
  // [version] signature issuer thisUpdate [nextUpdate] [revokedCertificates] [extensions]
  let at = fields[0]?.tag === 0x02 ? 4 : 3;
  if (fields[at]?.tag === 0x17 || fields[at]?.tag === 0x18) at++;
  const revoked = fields[at];
  if (revoked?.tag !== 0x30) return 0;
  let count = 0;
  for (let offset = revoked.contentStart; offset < revoked.end; offset = readElement(der, offset).end) count++;
  return count;
}

/** GET /crl on a new connection; the body and how long the whole answer took. */
function getCrl(url: string, caPem: string): Promise<{ ms: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(`${url}/crl`, { ca: caPem, agent: false }, (res) => {
      readBody(res).then((body) => (res.statusCode === 200 ? resolve({ ms: performance.now() - started, body }) : reject(new Error(`GET /crl answered ${res.statusCode}`))), reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** When the first CRL with at least `entries` entries was answered. */
export interface CrlBuilt {
  /** From the revocation's commit to the end of that answer. */
  readonly ms: number;
  /** GETs it took (more than one when a publisher builds in the background and served the old CRL meanwhile). */
  readonly requests: number;
  readonly entries: number;
  readonly bytes: number;
}

/** GETs /crl until it lists `entries` (or `timeoutMs` passed), timed from `since` (a performance.now()). */
export async function firstCrlWith(url: string, caPem: string, entries: number, since: number, timeoutMs = 120_000): Promise<CrlBuilt> {
  for (let requests = 1; ; requests++) {
    const { body } = await getCrl(url, caPem);
    const listed = crlEntries(body);
    if (listed >= entries) return { ms: Math.round(performance.now() - since), requests, entries: listed, bytes: body.length };
    if (performance.now() - since > timeoutMs) throw new Error(`the CRL still lists ${listed} entries ${timeoutMs} ms after revoking ${entries}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The published CRL fetched again and again: answers per second and their latency. */
export interface CrlServed {
  readonly ok: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly maxMs: number;
  readonly megabytesPerSecond: number;
}

/** Up to `count` GETs /crl at `concurrency` for at most `seconds`, each checked to be `bytes` long. */
export async function serveCrl(url: string, caPem: string, options: { count: number; concurrency: number; seconds: number; bytes: number }): Promise<CrlServed> {
  const { results, seconds } = await runBounded(options.count, options.concurrency, new Date(Date.now() + options.seconds * 1000), async () => {
    const { ms, body } = await getCrl(url, caPem);
    if (body.length !== options.bytes) throw new Error(`GET /crl answered ${body.length} bytes, not the published ${options.bytes}`);
    return ms;
  }, () => undefined);
  const failures = results.filter((result) => result instanceof Error);
  if (failures.length) throw failures[0]!;
  const latencies = (results as number[]).sort((a, b) => a - b);
  return {
    ok: latencies.length,
    perSecond: Math.round((latencies.length / seconds) * 10) / 10,
    p50Ms: Math.round(latencies[Math.floor(latencies.length / 2)] ?? NaN),
    maxMs: Math.round(latencies.at(-1) ?? NaN),
    megabytesPerSecond: Math.round(((latencies.length * options.bytes) / seconds / 1e6) * 10) / 10,
  };
}
