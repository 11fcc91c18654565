/**
 * The OCSP responder (RFC 6960): status straight from the store, so it agrees with the
 * CRL and with what the server enforces. Unreadable requests get malformedRequest.
 *
 * Requests without a nonce (RFC 5019 clients: browsers, TLS servers stapling, brokers)
 * accept a pre-produced response, so their answers are kept and reused until any
 * revocation moves the store's revocation sequence, which is read on every request: a
 * cached answer is never older than the last revocation, made by whichever process.
 * Answers to a nonce are signed each time, from statuses kept under the same sequence.
 * While the database cannot be reached, kept answers are still served as they were signed,
 * up to REUSE_MS after signing; nothing is signed anew, since another process or instance
 * may have revoked meanwhile.
 */
import {
  MalformedOcspRequestError,
  OcspResponseStatus,
  ocspErrorResponse,
  parseOcspRequest,
  type OcspRequest,
  type OcspSingleResponse,
  type OcspStatus,
} from '../ca/ocsp.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { Clock } from '../clock.js';
import { storeUnavailable } from '../store/failures.js';
import type { InventoryStore, RevocationStore } from '../store/store.js';
import { TurnBatch } from './turn-batch.js';

/** How long a relying party may cache an answer (nextUpdate - thisUpdate). */
const OCSP_VALIDITY_MS = 60 * 60_000;
/** Requests can only be so large: a CertID is ~80 bytes and we answer at most 16. */
export const MAX_OCSP_REQUEST_BYTES = 4096;
/** A reused answer is re-signed after this long, so its thisUpdate stays recent. */
const REUSE_MS = 5 * 60_000;
/**
 * Bounds the reuse cache by what it holds, each request's bytes (its key) and its answer;
 * the oldest answers make room. A one-certificate request and answer take ~1 KB: room for
 * ~10,000. A count alone would let anyone who knows one good serial (the server's own TLS
 * certificate's, say) pad requests to the 4 KB limit and make every kept answer cost five.
 */
const MAX_CACHED_BYTES = 10 * 1024 * 1024;
/** Bounds the kept statuses (a serial and a small object each, ~200 bytes): the oldest make room. */
const MAX_CACHED_STATUSES = 10_000;

interface CachedAnswer {
  readonly der: Buffer;
  readonly producedAt: number;
  readonly status: OcspAnswerSummary;
}

/** One answer's status for counting: revoked if any asked certificate is, else unknown if any is, else good. */
export type OcspAnswerSummary = 'good' | 'revoked' | 'unknown' | 'malformed';
/** How an answer was made: signed for a nonce, reused, signed and kept, or an error response. */
export type OcspAnswerKind = 'nonce' | 'cached' | 'fresh' | 'none';
/** Told of every answer (for metrics); must not throw. */
export type OcspAnswerObserver = (status: OcspAnswerSummary, kind: OcspAnswerKind) => void;

/**
 * The bytes in an allocation of their own. An answer is built with Buffer.allocUnsafe, so it
 * may be a slice of Node's shared 8 KB pool, and a kept slice would hold the whole block.
 */
function ownCopy(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

const GOOD: OcspStatus = { status: 'good' };
const UNKNOWN: OcspStatus = { status: 'unknown' };

const summary = (statuses: readonly OcspStatus[]): OcspAnswerSummary =>
  statuses.some((each) => each.status === 'revoked') ? 'revoked' : statuses.some((each) => each.status === 'unknown') ? 'unknown' : 'good';

/** Answers OCSP requests for the issuing CA. */
export class OcspService {
  private readonly cache = new Map<string, CachedAnswer>();
  /** What the cache holds, as MAX_CACHED_BYTES counts it. */
  private cachedBytes = 0;
  /** The revocation sequence the cached answers and statuses were read at. */
  private cacheSeq = -1;
  /** Known certificates' statuses by serial, read at cacheSeq: a nonce answer needs no read for them. */
  private readonly statuses = new Map<string, OcspStatus>();
  /**
   * Answers are signed with the others of their event-loop turn, back to back (see TurnBatch):
   * in between the HTTP and TLS work of each request, P-256's code and tables left the CPU
   * caches and a signature cost ~55 us of server CPU instead of ~25 (Node 20, bare server).
   */
  private readonly signing = new TurnBatch();
  /** Told of every answer; none when absent. */
  observer: OcspAnswerObserver | undefined;

  constructor(
    private readonly store: InventoryStore & RevocationStore,
    private readonly ca: CertificateAuthority,
    private readonly clock: Clock,
  ) {}

  /** The DER OCSPResponse for a DER OCSPRequest, whatever the request holds. */
  async respond(requestDer: Buffer): Promise<Buffer> {
    const key = requestDer.toString('latin1');
    // Only nonce-less requests that read well have kept answers: the same bytes need no reading again.
    let request: OcspRequest | undefined;
    if (!this.cache.has(key)) {
      try {
        request = parseOcspRequest(requestDer);
      } catch (error) {
        if (error instanceof MalformedOcspRequestError) {
          this.observer?.('malformed', 'none');
          return ocspErrorResponse(OcspResponseStatus.malformedRequest);
        }
        throw error;
      }
      if (request.nonce) {
        const answer = await this.answer(request, undefined);
        this.observer?.(answer.status, 'nonce');
        return answer.der;
      }
    }

    // While the store cannot be read, a kept answer is still served as it was signed; but
    // nothing is signed anew from kept statuses: another process may have revoked meanwhile.
    let seq: number | undefined;
    let unconfirmed: unknown;
    try {
      seq = await this.currentSeq();
    } catch (error) {
      if (!storeUnavailable(error)) throw error;
      unconfirmed = error;
    }
    const cached = this.cache.get(key);
    const age = cached && this.clock.now().getTime() - cached.producedAt;
    if (cached && age! >= 0 && age! < REUSE_MS) {
      this.observer?.(cached.status, 'cached');
      return cached.der;
    }
    if (seq === undefined) throw unconfirmed;

    const { der, producedAt, known, status } = await this.answer(request ?? parseOcspRequest(requestDer), seq);
    this.observer?.(status, 'fresh');
    // Unknown serials are not kept: anyone can ask about any serial, and they would crowd out real ones.
    if (known && seq === this.cacheSeq) {
      const kept = ownCopy(der);
      this.keep(key, { der: kept, producedAt: producedAt.getTime(), status });
      return kept;
    }
    return der;
  }

  /** Keeps an answer under its request's bytes, making room by dropping the oldest. */
  private keep(key: string, answer: CachedAnswer): void {
    this.drop(key);
    const size = key.length + answer.der.length;
    while (this.cache.size > 0 && this.cachedBytes + size > MAX_CACHED_BYTES) this.drop(this.cache.keys().next().value!);
    this.cache.set(key, answer);
    this.cachedBytes += size;
  }

  private drop(key: string): void {
    const answer = this.cache.get(key);
    if (!answer) return;
    this.cache.delete(key);
    this.cachedBytes -= key.length + answer.der.length;
  }

  /**
   * The store's revocation sequence, read before any status so that nothing is ever filed
   * under a later sequence than its data; a new one drops everything kept.
   */
  private async currentSeq(): Promise<number> {
    const seq = await this.store.revocationSeq();
    if (seq !== this.cacheSeq) {
      this.cache.clear();
      this.cachedBytes = 0;
      this.statuses.clear();
      this.cacheSeq = seq;
    }
    return seq;
  }

  /** `seq` when the caller read it; else read here, and only if some certificate is ours to look up. */
  private async answer(request: OcspRequest, seq: number | undefined): Promise<{ der: Buffer; producedAt: Date; known: boolean; status: OcspAnswerSummary }> {
    const answers: OcspSingleResponse[] = [];
    for (const certId of request.certIds) {
      let status: OcspStatus = UNKNOWN;
      if (this.ca.ocspResponder.issued(certId)) {
        seq ??= await this.currentSeq();
        status = await this.status(certId.serial, seq);
      }
      answers.push({ certIdDer: certId.der, status });
    }
    const now = this.clock.now();
    const der = await this.signing.run(() =>
      this.ca.ocspResponder.respond(answers, { producedAt: now, thisUpdate: now, nextUpdate: new Date(now.getTime() + OCSP_VALIDITY_MS) }, request.nonce),
    );
    const statuses = answers.map((answer) => answer.status);
    return { der, producedAt: now, known: statuses.every((each) => each.status !== 'unknown'), status: summary(statuses) };
  }

  /**
   * One of our certificates' status, kept while the sequence `seq` it was read at is current:
   * a certificate turns revoked only with a new sequence. Unknown serials are not kept (a
   * certificate may be recorded later, and anyone may ask about any serial).
   */
  private async status(serial: string, seq: number): Promise<OcspStatus> {
    const kept = this.statuses.get(serial);
    if (kept) return kept;
    const certificate = await this.store.certificateStatus(serial);
    if (!certificate) return UNKNOWN;
    const status: OcspStatus =
      certificate.status === 'revoked' ? { status: 'revoked', revokedAt: certificate.revokedAt!, reason: certificate.revocationReason ?? 'unspecified' } : GOOD;
    if (seq === this.cacheSeq) {
      if (this.statuses.size >= MAX_CACHED_STATUSES) this.statuses.delete(this.statuses.keys().next().value!);
      this.statuses.set(serial, status);
    }
    return status;
  }
}
