/**
 * The OCSP responder (RFC 6960): status straight from the store, so it agrees with the
 * CRL and with what the server enforces. Unreadable requests get malformedRequest.
 *
 * Requests without a nonce (RFC 5019 clients: browsers, TLS servers stapling, brokers)
 * accept a pre-produced response, so their answers are kept and reused until any
 * revocation moves the store's revocation sequence. Answers to a nonce are signed each
 * time, from statuses kept under the same sequence. The requests of one event-loop turn are
 * answered together at its end: one read of the sequence for all of them, made after every
 * one of them arrived, so a kept answer is never older than a revocation made (by whichever
 * process) before its request came in; and their signatures back to back.
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

/** A request waiting for the end of its turn. */
interface Asked {
  readonly der: Buffer;
  /** The request's bytes as a string: the kept answers' key. */
  readonly key: string;
  /** Read when asked, unless a kept answer was there for the same bytes. */
  readonly request: OcspRequest | undefined;
  readonly resolve: (der: Buffer) => void;
  readonly reject: (error: unknown) => void;
}

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
   * This turn's requests, answered together once its I/O callbacks have run. Besides the one
   * read of the sequence, their signatures then run back to back: in between the HTTP and TLS
   * work of each request, P-256's code and tables left the CPU caches and a signature cost
   * ~55 us of server CPU instead of ~25 (Node 20, bare server).
   */
  private asked: Asked[] = [];
  /** Told of every answer; none when absent. */
  observer: OcspAnswerObserver | undefined;

  constructor(
    private readonly store: InventoryStore & RevocationStore,
    private readonly ca: CertificateAuthority,
    private readonly clock: Clock,
  ) {}

  /** The DER OCSPResponse for a DER OCSPRequest, whatever the request holds. */
  respond(requestDer: Buffer): Promise<Buffer> {
    const key = requestDer.toString('latin1');
    // Only nonce-less requests that read well have kept answers: the same bytes need no reading again.
    let request: OcspRequest | undefined;
    if (!this.cache.has(key)) {
      try {
        request = parseOcspRequest(requestDer);
      } catch (error) {
        if (!(error instanceof MalformedOcspRequestError)) return Promise.reject(error);
        this.observer?.('malformed', 'none');
        return Promise.resolve(ocspErrorResponse(OcspResponseStatus.malformedRequest));
      }
    }
    return new Promise((resolve, reject) => {
      if (this.asked.push({ der: requestDer, key, request, resolve, reject }) === 1) setImmediate(() => void this.answerAsked());
    });
  }

  /** Answers the requests asked so far, all of which arrived before the sequence is read here. */
  private async answerAsked(): Promise<void> {
    const asked = this.asked;
    this.asked = [];
    // While the store cannot be read, a kept answer is still served as it was signed; but
    // nothing is signed anew from kept statuses: another process may have revoked meanwhile.
    let seq: number | undefined;
    let unconfirmed: unknown;
    try {
      seq = await this.currentSeq();
    } catch (error) {
      unconfirmed = error;
    }
    const now = this.clock.now();
    for (const each of asked) {
      try {
        this.answer(each, now, seq, unconfirmed);
      } catch (error) {
        each.reject(error);
      }
    }
  }

  /** Settles one request: at once when its answer is kept or its statuses are, else after reading them. */
  private answer(asked: Asked, now: Date, seq: number | undefined, unconfirmed: unknown): void {
    if (!asked.request?.nonce) {
      const cached = this.cache.get(asked.key);
      const age = cached && now.getTime() - cached.producedAt;
      if (cached && age! >= 0 && age! < REUSE_MS && (seq !== undefined || storeUnavailable(unconfirmed))) {
        this.observer?.(cached.status, 'cached');
        asked.resolve(cached.der);
        return;
      }
    }
    const request = asked.request ?? parseOcspRequest(asked.der);
    const statuses = request.certIds.map((certId): OcspStatus | undefined => {
      if (!this.ca.ocspResponder.issued(certId)) return UNKNOWN;
      if (seq === undefined) throw unconfirmed;
      return this.statuses.get(certId.serial);
    });
    if (statuses.includes(undefined)) void this.answerAfterReading(asked, request, statuses, seq!);
    else asked.resolve(this.sign(asked.key, request, statuses as OcspStatus[], now, seq!));
  }

  /** Reads the statuses not kept yet, then signs. */
  private async answerAfterReading(asked: Asked, request: OcspRequest, statuses: (OcspStatus | undefined)[], seq: number): Promise<void> {
    try {
      for (const [i, certId] of request.certIds.entries()) statuses[i] ??= await this.readStatus(certId.serial, seq);
      asked.resolve(this.sign(asked.key, request, statuses as OcspStatus[], this.clock.now(), seq));
    } catch (error) {
      asked.reject(error);
    }
  }

  /** A signed answer; a nonce-less one about known certificates is kept under `key` while `seq` is current. */
  private sign(key: string, request: OcspRequest, statuses: readonly OcspStatus[], now: Date, seq: number): Buffer {
    const answers: OcspSingleResponse[] = request.certIds.map((certId, i) => ({ certIdDer: certId.der, status: statuses[i]! }));
    const der = this.ca.ocspResponder.respond(answers, { producedAt: now, thisUpdate: now, nextUpdate: new Date(now.getTime() + OCSP_VALIDITY_MS) }, request.nonce);
    const status = summary(statuses);
    if (request.nonce) {
      this.observer?.(status, 'nonce');
      return der;
    }
    this.observer?.(status, 'fresh');
    // Unknown serials are not kept: anyone can ask about any serial, and they would crowd out real ones.
    if (statuses.some((each) => each.status === 'unknown') || seq !== this.cacheSeq) return der;
    const kept = ownCopy(der);
    this.keep(key, { der: kept, producedAt: now.getTime(), status });
    return kept;
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

  /**
   * One of our certificates' status from the store, kept while the sequence `seq` it was read
   * at is current: a certificate turns revoked only with a new sequence. Unknown serials are
   * not kept (a certificate may be recorded later, and anyone may ask about any serial).
   */
  private async readStatus(serial: string, seq: number): Promise<OcspStatus> {
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
