/**
 * The CRLs served and written by imprint. A CRL is rebuilt when the revocation sequence
 * moves (any process's revocation) or when it is a day old, never per request, so it
 * always agrees with the store. Built CRLs are published in the store: every worker and
 * the CLI serve the same one, and only one of them builds it.
 */
import type { CertificateAuthority } from '../ca/authority.js';
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
/** How long a claim to build lasts: a process that died while building is taken over after it. */
const CLAIM_MS = 30_000;
/** How often a process waiting for another's CRL looks, and how long it waits at most (real time). */
const WAIT_POLL_MS = 20;
const WAIT_MAX_MS = CLAIM_MS;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Young enough to serve; a clock that jumped back before it was built also asks for a new one. */
function fresh(crl: PublishedCrl, now: Date): boolean {
  const age = now.getTime() - crl.builtAt.getTime();
  return age >= 0 && age < REISSUE_AFTER_MS;
}

/** A published CRL that includes revocation `seq` and is young enough to serve. */
function serves(crl: PublishedCrl | undefined, seq: number, now: Date): crl is PublishedCrl {
  return crl !== undefined && crl.revocationSeq >= seq && fresh(crl, now);
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

/** Builds, publishes and caches the issuing CA's and the root's CRLs. */
export class CrlPublisher {
  /** The published CRLs this process read last: a request costs two small reads, not the DER. */
  private readonly held = new Map<CrlScope, PublishedCrl>();
  /** The look (and build, or wait for another process's) under way per scope: concurrent requests share it. */
  private readonly looking = new Map<CrlScope, Promise<Buffer>>();
  /** Told of every CRL served; none when absent. */
  observer: CrlObserver | undefined;

  constructor(
    private readonly store: RevocationStore & CrlStore,
    private readonly ca: CertificateAuthority,
    private readonly clock: Clock,
  ) {}

  /** The issuing CA's current CRL (DER). */
  async issuerCrl(): Promise<Buffer> {
    return this.orHeld('issuer', async () =>
      this.current('issuer', await this.store.revocationSeq(), async (crlNumber, now) =>
        this.ca.issuerCrl({ crlNumber, ...this.validity(now), entries: await this.store.listRevoked(now) }),
      ),
    );
  }

  /** The root's CRL; not_found when the root key is not held here (an imported CA). */
  async rootCrl(): Promise<Buffer> {
    if (!this.ca.material.rootKey) {
      throw new ImprintError('not_found', 'the root key is not held by this server; get the root CRL from its owner');
    }
    // The root revokes nothing imprint issues: its CRL follows no revocation.
    return this.orHeld('root', () => this.current('root', 0, async (crlNumber, now) => this.ca.rootCrl({ crlNumber, ...this.validity(now) })!));
  }

  /**
   * `serve`, or while the database cannot be reached, the CRL this process served last as
   * long as it is valid (before its nextUpdate): nothing can be revoked while the database
   * is down, so it is still the whole truth.
   */
  private async orHeld(scope: CrlScope, serve: () => Promise<Buffer>): Promise<Buffer> {
    try {
      return await serve();
    } catch (error) {
      const held = this.held.get(scope);
      const valid = held && this.clock.now().getTime() < held.builtAt.getTime() + CRL_LIFETIME_MS;
      if (valid && storeUnavailable(error)) return held.der;
      throw error;
    }
  }

  /** The issuing CA's current CRL (built first if it is due) described: number, build time, size, entries. */
  async issuerStatus(): Promise<CrlStatus> {
    const der = await this.issuerCrl();
    const published = this.held.get('issuer')!;
    const now = this.clock.now();
    return {
      crlNumber: published.crlNumber,
      builtAt: published.builtAt.toISOString(),
      nextUpdate: new Date(published.builtAt.getTime() + CRL_LIFETIME_MS).toISOString(),
      bytes: der.length,
      entries: await this.store.countRevoked(now),
    };
  }

  /**
   * The published CRL of `scope` when it includes revocation `seq` and is fresh; else a new
   * one, built by whichever process claims it first while the others wait for it, so that
   * every process serves the same bytes and a rebuild runs once.
   */
  private async current(scope: CrlScope, seq: number, build: (crlNumber: number, now: Date) => Promise<Buffer>): Promise<Buffer> {
    // A burst of requests while a CRL is built here or elsewhere waits on one look, not one
    // each: each would hold a database connection polling. A request that read a newer
    // revocation sequence than the look it joined looks again after it.
    const under = this.looking.get(scope);
    if (under) return under.then(() => this.current(scope, seq, build));
    const look = this.lookOrBuild(scope, seq, build).finally(() => this.looking.delete(scope));
    this.looking.set(scope, look);
    return look;
  }

  private async lookOrBuild(scope: CrlScope, seq: number, build: (crlNumber: number, now: Date) => Promise<Buffer>): Promise<Buffer> {
    let published = await this.latest(scope);
    let buildSeconds: number | undefined;
    const waitUntil = performance.now() + WAIT_MAX_MS;
    while (!serves(published, seq, this.clock.now())) {
      const now = this.clock.now();
      // Past the wait (a claim that outlives its holder, a clock that stands still), build regardless.
      if ((await this.store.claimCrlBuild(scope, now, new Date(now.getTime() + CLAIM_MS))) || performance.now() > waitUntil) {
        const started = performance.now();
        try {
          const crlNumber = await this.store.nextCrlNumber();
          const der = await build(crlNumber, now);
          buildSeconds = (performance.now() - started) / 1000;
          published = await this.store.publishCrl({ scope, revocationSeq: seq, crlNumber, builtAt: now, der });
        } catch (error) {
          await this.store.releaseCrlBuild(scope);
          throw error;
        }
        break;
      }
      await sleep(WAIT_POLL_MS);
      published = await this.latest(scope);
    }
    this.held.set(scope, published!);
    this.observer?.(scope, published!.crlNumber, published!.der.length, buildSeconds);
    return published!.der;
  }

  /** The published CRL of `scope`: the one held when its number is still current (a small read), else read. */
  private async latest(scope: CrlScope): Promise<PublishedCrl | undefined> {
    const number = await this.store.publishedCrlNumber(scope);
    const held = this.held.get(scope);
    return held && held.crlNumber === number ? held : this.store.publishedCrl(scope);
  }

  private validity(now: Date) {
    return { thisUpdate: new Date(now.getTime() - BACKDATE_MS), nextUpdate: new Date(now.getTime() + CRL_LIFETIME_MS) };
  }
}
