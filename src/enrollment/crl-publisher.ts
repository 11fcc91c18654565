/**
 * The CRLs served and written by imprint. A CRL is rebuilt when the revocation sequence
 * moves (any process's revocation) or when it is a day old, never per request, so it
 * always agrees with the store.
 */
import type { CertificateAuthority } from '../ca/authority.js';
import type { Clock } from '../clock.js';
import { ImprintError } from '../errors.js';
import type { Store } from '../store/store.js';

const DAY_MS = 86_400_000;
/** nextUpdate: relying parties that load a CRL file must refresh it within a week. */
export const CRL_LIFETIME_MS = 7 * DAY_MS;
const REISSUE_AFTER_MS = DAY_MS;
/** thisUpdate is backdated like certificates, for relying parties with slow clocks. */
const BACKDATE_MS = 5 * 60_000;

interface Cached {
  readonly seq: number;
  readonly der: Buffer;
  readonly builtAt: number;
}

/** Young enough to serve; a clock that jumped back before it was built also asks for a new one. */
function fresh(cached: Cached, now: Date): boolean {
  const age = now.getTime() - cached.builtAt;
  return age >= 0 && age < REISSUE_AFTER_MS;
}

/** Builds and caches the issuing CA's and the root's CRLs. */
export class CrlPublisher {
  private issuer: Cached | undefined;
  private root: Cached | undefined;

  constructor(
    private readonly store: Store,
    private readonly ca: CertificateAuthority,
    private readonly clock: Clock,
  ) {}

  /** The issuing CA's current CRL (DER). */
  async issuerCrl(): Promise<Buffer> {
    const seq = await this.store.revocationSeq();
    const now = this.clock.now();
    if (this.issuer && this.issuer.seq === seq && fresh(this.issuer, now)) return this.issuer.der;
    const entries = await this.store.listRevoked(now);
    const der = this.ca.issuerCrl({ crlNumber: await this.store.nextCrlNumber(), ...this.validity(now), entries });
    this.issuer = { seq, der, builtAt: now.getTime() };
    return der;
  }

  /** The root's CRL; not_found when the root key is not held here (an imported CA). */
  async rootCrl(): Promise<Buffer> {
    const now = this.clock.now();
    if (this.root && fresh(this.root, now)) return this.root.der;
    if (!this.ca.material.rootKey) {
      throw new ImprintError('not_found', 'the root key is not held by this server; get the root CRL from its owner');
    }
    const der = this.ca.rootCrl({ crlNumber: await this.store.nextCrlNumber(), ...this.validity(now) })!;
    this.root = { seq: 0, der, builtAt: now.getTime() };
    return der;
  }

  private validity(now: Date) {
    return { thisUpdate: new Date(now.getTime() - BACKDATE_MS), nextUpdate: new Date(now.getTime() + CRL_LIFETIME_MS) };
  }
}
