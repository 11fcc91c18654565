/**
 * The CRLs served and written by imprint. A CRL is rebuilt when the revocation sequence
 * moves (any process's revocation) or when it is a day old, never per request, so it
 * always agrees with the store; and at most once per REBUILD_INTERVAL_MS per scope however
 * fast revocations come. Only one process of all those on the store signs a CRL; the store
 * keeps what reproduces it (its fields and signature), and every process puts the same
 * bytes together from the revoked certificates, encoding only those revoked since its last.
 */
import type { CertificateAuthority } from '../ca/authority.js';
import { signingKeyFor, type SigningKey } from '../ca/certificate-builder.js';
import type { CertificateParts } from '../ca/certificate-info.js';
import { crlDer, crlSignatureValid, crlTbs, crlVerifier, signCrlTbs, signedCrl, type CrlFields, type CrlVerifier, type SignedCrl } from '../ca/crl.js';
import { CrlEntryList } from '../ca/crl-entries.js';
import type { Clock } from '../clock.js';
import { ImprintError } from '../errors.js';
import type { CrlScope, PublishedCrl } from './model.js';
import { storeUnavailable } from '../store/failures.js';
import type { CrlStore, RevocationStore } from '../store/store.js';

const DAY_MS = 86_400_000;
/** nextUpdate: relying parties that load a CRL file must refresh it within a week. */
export const CRL_LIFETIME_MS = 7 * DAY_MS;
const REISSUE_AFTER_MS = DAY_MS;
/** thisUpdate is backdated like certificates, for relying parties with slow clocks. */
const BACKDATE_MS = 5 * 60_000;
/**
 * Real time between a scope's CRLs taken up by this process and its next build: under a
 * stream of revocations a rebuild covers all of the last interval's. A request that finds a
 * revocation newer than the CRL waits for that rebuild, so the CRL it gets includes it.
 */
const REBUILD_INTERVAL_MS = 1000;
/**
 * How long after the store last said the CRL held is current it may still be served while
 * the store cannot be read. Another instance, or the CLI, may revoke while this process is
 * cut off from the database; relying parties keep the CRL they have until they get a newer.
 */
export const HELD_WHILE_UNREACHABLE_MS = 5 * 60_000;
/** How long a claim to build lasts: a process that died while building is taken over after it. */
const CLAIM_MS = 30_000;
/** How often a process waiting for another's CRL looks, and how long it waits at most (real time). */
const WAIT_POLL_MS = 20;
const WAIT_MAX_MS = CLAIM_MS;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const NO_ENTRIES: readonly Buffer[] = [];
/** How far behind one another the clocks of instances building CRLs may be without costing a reread. */
const CLOCK_SKEW_MS = 3_600_000;

/** Young enough to serve; a clock that jumped back before it was built also asks for a new one. */
function fresh(crl: PublishedCrl, now: Date): boolean {
  const age = now.getTime() - crl.builtAt.getTime();
  return age >= 0 && age < REISSUE_AFTER_MS;
}

/** Told of every CRL served (for metrics), with the build time when this process built it; must not throw. */
export type CrlObserver = (scope: CrlScope, crlNumber: number, bytes: number, buildSeconds?: number) => void;

/** The current CRL, described for operators. */
export interface CrlStatus {
  readonly crlNumber: number;
  readonly builtAt: string;
  readonly nextUpdate: string;
  readonly bytes: number;
  /** Revoked certificates not yet expired: what the CRL lists (give or take one expiring since it was built). */
  readonly entries: number;
}

/**
 * A published CRL as this process holds it: served from memory until the store has a newer
 * one, and let go of as soon as a revocation it misses is known (before the next is built or
 * read: a CRL of a million entries is 36 MB).
 */
interface Held {
  readonly published: PublishedCrl;
  readonly crl: SignedCrl;
}

/** What a CRL request reads first. */
type CrlState = Awaited<ReturnType<CrlStore['crlState']>>;

/** Who signs a scope's CRL, and checks it. */
interface CrlSigner {
  readonly verifier: CrlVerifier;
  readonly key: SigningKey;
}

/**
 * The encoded entries of `scope`'s CRL of revocation `seq` built at `at`, kept in `list`: the
 * certificates revoked up to `seq` that had not expired at `at`. Only the revocations new
 * since the list's last are read; a CRL older than the list (its sequence, or a time before
 * an entry the list dropped) reads all. The store leaves out only what expired an hour
 * before `at`, so that a CRL built by an instance whose clock is a little behind needs no
 * reading all.
 */
async function entriesOf(store: RevocationStore, list: CrlEntryList, scope: CrlScope, seq: number, at: Date): Promise<readonly Buffer[]> {
  // The root revokes nothing imprint issues.
  if (scope === 'root') return NO_ENTRIES;
  if (list.seq > seq || !list.servesAt(at)) list.clear();
  if (list.seq < seq) {
    const expired = new Date(at.getTime() - CLOCK_SKEW_MS);
    await list.append(store.listRevoked(expired, list.seq, seq), seq, expired);
  }
  return list.encodedAt(at);
}

/**
 * `published` put together from the entries in `list` and its signature; undefined when the
 * signature does not verify over them (the list is then emptied, to be read again from the
 * start next time, in case what it kept is what differs).
 */
async function putTogether(store: RevocationStore, list: CrlEntryList, published: PublishedCrl, verifier: CrlVerifier): Promise<SignedCrl | undefined> {
  const tbs = crlTbs(verifier, published, verifier.algorithm, await entriesOf(store, list, published.scope, published.revocationSeq, published.builtAt));
  if (crlSignatureValid(tbs, verifier, published.signature)) return signedCrl(tbs, verifier.algorithm, published.signature);
  list.clear();
  return undefined;
}

/**
 * The current CRL of `scope` as published on the store, put together with its issuer's
 * certificate alone: a host with the database but not the CA key exports it. Undefined when
 * the one published misses a revocation, is a day old, or does not verify.
 */
export async function publishedCrlWithoutKey(
  store: RevocationStore & CrlStore,
  certificate: CertificateParts,
  scope: CrlScope,
  now: Date,
  /** The entries read last time: a caller that asks again (`crl --watch`) reads only new revocations. */
  entries = new CrlEntryList(),
): Promise<Buffer | undefined> {
  const seq = scope === 'issuer' ? await store.revocationSeq() : 0;
  const published = await store.publishedCrl(scope);
  if (!published || published.revocationSeq < seq || !fresh(published, now)) return undefined;
  const crl = await putTogether(store, entries, published, crlVerifier(certificate));
  return crl && crlDer(crl);
}

/** Builds, publishes, reproduces and holds the issuing CA's and the root's CRLs. */
export class CrlPublisher {
  private readonly held = new Map<CrlScope, Held>();
  /** When the store last said, per scope, that the CRL served was current (clock milliseconds). */
  private readonly confirmed = new Map<CrlScope, number>();
  /** performance.now() when this process last took up a CRL of the scope: builds keep REBUILD_INTERVAL_MS apart. */
  private readonly taken = new Map<CrlScope, number>();
  /** The look (and build, or wait for another process's) under way per scope: concurrent requests share it. */
  private readonly looking = new Map<CrlScope, Promise<Held>>();
  /** The issuing CA's CRL entries, encoded, as of the last CRL this process built or put together. */
  private readonly entries = new CrlEntryList();
  private readonly signers = new Map<CrlScope, CrlSigner>();
  /** Told of every CRL served; none when absent. */
  observer: CrlObserver | undefined;

  constructor(
    private readonly store: RevocationStore & CrlStore,
    private readonly ca: CertificateAuthority,
    private readonly clock: Clock,
  ) {}

  /** The issuing CA's current CRL. */
  async issuerCrl(): Promise<SignedCrl> {
    return (await this.served('issuer')).crl;
  }

  /** The root's CRL; not_found when the root key is not held here (an imported CA). */
  async rootCrl(): Promise<SignedCrl> {
    if (!this.ca.material.rootKey) {
      throw new ImprintError('not_found', 'the root key is not held by this server; get the root CRL from its owner');
    }
    return (await this.served('root')).crl;
  }

  /**
   * The scope's current CRL; while the database cannot be reached, the CRL this process
   * served last, for HELD_WHILE_UNREACHABLE_MS after the store last said it was current (and
   * before its nextUpdate): a database restart does not take CRLs away, and a process cut off
   * from a database others still write serves no CRL long after it may have been overtaken.
   * Not one known to miss a revocation: that one is no longer held.
   */
  private async served(scope: CrlScope): Promise<Held> {
    try {
      const current = await this.current(scope, await this.store.crlState(scope));
      this.confirmed.set(scope, this.clock.now().getTime());
      return current;
    } catch (error) {
      const held = this.held.get(scope);
      const now = this.clock.now().getTime();
      const recent = now - (this.confirmed.get(scope) ?? Number.NEGATIVE_INFINITY) < HELD_WHILE_UNREACHABLE_MS;
      if (held && recent && now < held.published.nextUpdate.getTime() && storeUnavailable(error)) return held;
      throw error;
    }
  }

  /** The issuing CA's current CRL (built first if it is due) described: number, build time, size, entries. */
  async issuerStatus(): Promise<CrlStatus> {
    const { published, crl } = await this.served('issuer');
    const now = this.clock.now();
    return {
      crlNumber: published.crlNumber,
      builtAt: published.builtAt.toISOString(),
      nextUpdate: published.nextUpdate.toISOString(),
      bytes: crl.length,
      entries: await this.store.countRevoked(now),
    };
  }

  /**
   * The published CRL of `scope` when it includes revocation `seq` and is fresh; else a new
   * one, built by whichever process claims it first while the others wait for it, so that
   * every process serves the same bytes and a rebuild runs once.
   */
  private async current(scope: CrlScope, state: CrlState): Promise<Held> {
    // A burst of requests while a CRL is built here or elsewhere waits on one look, not one
    // each: each would hold a database connection polling. A request that read a newer
    // revocation sequence than the look it joined looks again after it.
    const under = this.looking.get(scope);
    if (under) return under.then(() => this.current(scope, state));
    const look = this.lookOrBuild(scope, state).finally(() => this.looking.delete(scope));
    this.looking.set(scope, look);
    return look;
  }

  private async lookOrBuild(scope: CrlScope, state: CrlState): Promise<Held> {
    // The root revokes nothing imprint issues: its CRL follows no revocation.
    const seq = scope === 'issuer' ? state.revocationSeq : 0;
    let held = await this.latest(scope, state.publishedNumber, seq);
    let buildSeconds: number | undefined;
    const waitUntil = performance.now() + WAIT_MAX_MS;
    while (!held || held.published.revocationSeq < seq || !fresh(held.published, this.clock.now())) {
      if (held && held.published.revocationSeq < seq) held = this.letGo(held);
      const due = (this.taken.get(scope) ?? -Infinity) + REBUILD_INTERVAL_MS - performance.now();
      if (due > 0) {
        // Too soon after the last CRL: the rebuild covers every revocation until it (another process may make it).
        await sleep(due);
      } else {
        const now = this.clock.now();
        // Past the wait (a claim that outlives its holder, a clock that stands still), build regardless.
        if ((await this.store.claimCrlBuild(scope, now, new Date(now.getTime() + CLAIM_MS))) || performance.now() > waitUntil) {
          const started = performance.now();
          held = await this.build(scope, seq, now);
          buildSeconds = (performance.now() - started) / 1000;
          break;
        }
        await sleep(WAIT_POLL_MS);
      }
      held = await this.latest(scope, (await this.store.crlState(scope)).publishedNumber, seq);
    }
    this.observer?.(scope, held.published.crlNumber, held.crl.length, buildSeconds);
    return held;
  }

  /** Stops holding `held`, which misses a revocation: no request is answered with it again. */
  private letGo(held: Held): undefined {
    if (this.held.get(held.published.scope) === held) this.held.delete(held.published.scope);
    return undefined;
  }

  private letGoOlderThan(published: PublishedCrl): void {
    const held = this.held.get(published.scope);
    if (held && held.published.revocationSeq < published.revocationSeq) this.letGo(held);
  }

  /**
   * The CRL published for `scope` as number `number`: the one held when it is that one or
   * newer, else read and put together, unless it misses revocation `seq`.
   */
  private async latest(scope: CrlScope, number: number | undefined, seq: number): Promise<Held | undefined> {
    const held = this.held.get(scope);
    // Numbers never go back: a CRL held since the number was read is at least as new.
    if (held && number !== undefined && held.published.crlNumber >= number) return held;
    return this.readLatest(scope, seq);
  }

  /**
   * The CRL published for `scope`, read and put together; the one held is let go first when
   * it lists fewer revocations. One that misses revocation `seq` is not put together: it
   * would not be served, the next one is built or waited for instead.
   */
  private async readLatest(scope: CrlScope, seq: number): Promise<Held | undefined> {
    const published = await this.store.publishedCrl(scope);
    if (published) this.letGoOlderThan(published);
    if (!published || published.revocationSeq < seq) return undefined;
    const crl = await this.reproduce(published);
    return crl ? this.hold(published, crl) : undefined;
  }

  /** Signs and publishes the next CRL of `scope`; the claim to build it is ended either way. */
  private async build(scope: CrlScope, seq: number, now: Date): Promise<Held> {
    let published: PublishedCrl;
    let crl: SignedCrl;
    try {
      const signer = this.signer(scope);
      const fields: CrlFields = {
        crlNumber: await this.store.nextCrlNumber(),
        thisUpdate: new Date(now.getTime() - BACKDATE_MS),
        nextUpdate: new Date(now.getTime() + CRL_LIFETIME_MS),
      };
      const tbs = crlTbs(signer.verifier, fields, signer.verifier.algorithm, await entriesOf(this.store, this.entries, scope, seq, now));
      const signature = signCrlTbs(tbs, signer.key);
      crl = signedCrl(tbs, signer.verifier.algorithm, signature);
      published = await this.store.publishCrl({ scope, revocationSeq: seq, builtAt: now, ...fields, signature });
      if (published.crlNumber !== fields.crlNumber || !published.signature.equals(signature)) {
        // Ours did not land: a newer one was there already (published by a process that
        // waited past our claim). The signature tells it from another CRL of the same number.
        const theirs = await this.reproduce(published);
        if (!theirs) throw new Error(`the published CRL ${published.crlNumber} does not verify against the revoked certificates`);
        crl = theirs;
      }
    } catch (error) {
      await this.store.releaseCrlBuild(scope);
      throw error;
    }
    return this.hold(published, crl);
  }

  private hold(published: PublishedCrl, crl: SignedCrl): Held {
    const held = { published, crl };
    this.held.set(published.scope, held);
    this.taken.set(published.scope, performance.now());
    return held;
  }

  /**
   * A published CRL, put together from the revoked certificates and its signature;
   * undefined when the signature does not verify over them (a new CRL is then built).
   */
  private reproduce(published: PublishedCrl): Promise<SignedCrl | undefined> {
    return putTogether(this.store, this.entries, published, this.signer(published.scope).verifier);
  }

  private signer(scope: CrlScope): CrlSigner {
    let signer = this.signers.get(scope);
    if (!signer) {
      const { material } = this.ca;
      const [certificate, key] = scope === 'issuer' ? [material.issuer, material.issuerKey] : [material.root, material.rootKey!];
      signer = { verifier: crlVerifier(certificate), key: signingKeyFor(key) };
      this.signers.set(scope, signer);
    }
    return signer;
  }
}
