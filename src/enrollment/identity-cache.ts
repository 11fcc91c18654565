/**
 * Device identities already read from the store, by certificate serial, so that a device
 * reconnecting again and again costs no store reads. Everything that can end a device's
 * access moves the revocation sequence (a device or certificate revoked, a replaced
 * certificate retired, a device re-provisioned), so an entry is honoured only while the
 * sequence stands where it stood before the entry was read:
 *
 *   - a revocation recorded by this process clears the cache at once (the store's signal,
 *     before the revoking request is answered);
 *   - one recorded elsewhere (the CLI, another server) clears it at the watcher's next look,
 *     well inside the contract's second;
 *   - and when the watcher has not confirmed the sequence within CONFIRMED_FOR_MS (a store
 *     that stopped answering, no watcher at all), nothing is served from the cache.
 *
 * The caller still checks the certificate's validity period on every use; a device in the
 * middle of a renewal (a replaced certificate waiting to be retired) is never kept, since
 * its first use of the new certificate must reach the store.
 */
import type { CertificateRecord, DeviceRecord } from './model.js';
import type { RevocationStore } from '../store/store.js';

/** How long a confirmation of the sequence lets the cache answer: half the contract's second. */
export const CONFIRMED_FOR_MS = 500;
/** Devices kept at most (a few MB): the oldest entry makes room. */
export const IDENTITY_CACHE_ENTRIES = 4096;

/** A device certificate and its device, as the store last said. */
export interface CachedDevice {
  readonly certificate: CertificateRecord;
  readonly device: DeviceRecord;
}

/** Who tells the cache that the revocation sequence was looked at (the revocation watcher). */
export interface SequenceSource {
  /** Calls `listener` with the sequence after each look at the store; returns the unsubscription. */
  onLook(listener: (seq: number) => void): () => void;
}

/**
 * The cache; off (every lookup misses) until it follows a sequence source. It keeps entries
 * as given (the authenticator's whole identity), so a hit hands back the same object.
 */
export class DeviceIdentityCache<T extends CachedDevice = CachedDevice> {
  private readonly entries = new Map<string, T>();
  /** Moves on every clearing: a read that began before it is not kept. */
  private generation = 0;
  private seq: number | undefined;
  /** performance.now() of the last confirmation; -Infinity before any. */
  private confirmedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly limit = IDENTITY_CACHE_ENTRIES) {}

  /** Follows `source` for confirmations and `store` for this process's own revocations; returns the unfollow. */
  follow(source: SequenceSource, store: Pick<RevocationStore, 'onRevocation'>): () => void {
    const unlook = source.onLook((seq) => this.confirm(seq));
    const unsignal = store.onRevocation(() => this.clear());
    return () => {
      unlook();
      unsignal();
      this.confirmedAt = Number.NEGATIVE_INFINITY;
      this.clear();
    };
  }

  /** The entry for `serial` whose DER is `der`, when the sequence was confirmed lately. */
  get(serial: string, der: Buffer): T | undefined {
    if (performance.now() - this.confirmedAt > CONFIRMED_FOR_MS) return undefined;
    const entry = this.entries.get(serial);
    return entry && entry.certificate.der.equals(der) ? entry : undefined;
  }

  /** A ticket for a read about to start: `set` keeps its result only if nothing was cleared since. */
  ticket(): number {
    return this.generation;
  }

  /** Keeps what a read begun at `ticket` found, unless the device is in the middle of a renewal. */
  set(ticket: number, entry: T): void {
    if (ticket !== this.generation || this.seq === undefined) return;
    if (entry.device.retiringSerial !== null || entry.device.status !== 'active' || entry.certificate.status !== 'active') return;
    if (this.entries.size >= this.limit) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(entry.certificate.serial, entry);
  }

  private confirm(seq: number): void {
    if (seq !== this.seq) {
      this.clear();
      this.seq = seq;
    }
    this.confirmedAt = performance.now();
  }

  private clear(): void {
    this.generation++;
    this.entries.clear();
  }
}
