/**
 * The revokedCertificates of a CRL kept encoded between builds, so that a rebuild encodes
 * only the revocations made since the last one: the entries are one buffer in revocation
 * order, and a CRL's list is that buffer, less the entries that expired.
 */
import { MAX_CRL_ENTRY_BYTES, writeCrlEntry, type CrlEntry } from './crl.js';

/** A revoked certificate as listed: its entry, and when it leaves the CRL (its notAfter, ms since the epoch). */
export interface ListedEntry extends CrlEntry {
  readonly notAfter: number;
}

/** Room for this many more bytes at least when the buffer grows: growth is by doubling. */
const MIN_CAPACITY = 64 * 1024;

/** The encoded entries of every revocation up to `seq` that had not expired when last looked at. */
export class CrlEntryList {
  private bytes!: Buffer;
  private used!: number;
  /** Per entry, in order: where it ends in `bytes`, and its notAfter (ms). */
  private ends!: number[];
  private notAfters!: number[];
  private earliestExpiry!: number;
  /** The revocation sequence the entries include up to. */
  private seqValue!: number;
  /**
   * Every entry that expires after this time (ms) is here; some expiring by then were left
   * out or dropped, so a CRL of an earlier time cannot be made from these.
   */
  private completeAfter!: number;

  constructor() {
    this.clear();
  }

  /** Empties the list: no revocation, to be read again from the start. */
  clear(): void {
    this.bytes = Buffer.allocUnsafe(MIN_CAPACITY);
    this.used = 0;
    this.ends = [];
    this.notAfters = [];
    this.earliestExpiry = Infinity;
    this.seqValue = 0;
    this.completeAfter = -Infinity;
  }

  get seq(): number {
    return this.seqValue;
  }

  get count(): number {
    return this.ends.length;
  }

  /** Whether a CRL built at `at` can be made from these entries (no entry it lists was left out). */
  servesAt(at: Date): boolean {
    return at.getTime() >= this.completeAfter;
  }

  /**
   * Adds the revocations after `seq` up to `upTo`, in revocation order, listed without those
   * expired by `at` (entries expired by the time of a CRL are dropped here, not by the caller),
   * a page at a time as they are read. If reading them fails, the list is emptied: it never
   * holds part of a range. One append at a time, and no other use of the list until it ends.
   */
  async append(pages: AsyncIterable<readonly ListedEntry[]> | Iterable<readonly ListedEntry[]>, upTo: number, at: Date): Promise<void> {
    try {
      for await (const page of pages) this.add(page);
    } catch (error) {
      this.clear();
      throw error;
    }
    this.seqValue = upTo;
    this.completeAfter = Math.max(this.completeAfter, at.getTime());
  }

  private add(entries: readonly ListedEntry[]): void {
    for (const entry of entries) {
      this.reserve(MAX_CRL_ENTRY_BYTES);
      this.used = writeCrlEntry(this.bytes, this.used, entry);
      this.ends.push(this.used);
      this.notAfters.push(entry.notAfter);
      if (entry.notAfter < this.earliestExpiry) this.earliestExpiry = entry.notAfter;
    }
  }

  /** The entries of a CRL built at `at`, concatenated: those not expired by then. Valid until the next change. */
  encodedAt(at: Date): Buffer {
    if (this.earliestExpiry <= at.getTime()) this.dropExpired(at.getTime());
    return this.bytes.subarray(0, this.used);
  }

  /** Keeps the entries that expire after `at`, copying each run of them once. */
  private dropExpired(at: number): void {
    const bytes = Buffer.allocUnsafe(Math.max(MIN_CAPACITY, this.used));
    const ends: number[] = [];
    const notAfters: number[] = [];
    let used = 0;
    let earliest = Infinity;
    let runStart = -1;
    let start = 0;
    const copyRun = (end: number) => {
      if (runStart >= 0) used += this.bytes.copy(bytes, used, runStart, end);
      runStart = -1;
    };
    for (let i = 0; i < this.ends.length; i++) {
      const end = this.ends[i]!;
      const notAfter = this.notAfters[i]!;
      if (notAfter > at) {
        if (runStart < 0) runStart = start;
        ends.push(used + (end - runStart));
        notAfters.push(notAfter);
        if (notAfter < earliest) earliest = notAfter;
      } else {
        copyRun(start);
        if (notAfter > this.completeAfter) this.completeAfter = notAfter;
      }
      start = end;
    }
    copyRun(this.used);
    this.bytes = bytes;
    this.used = used;
    this.ends = ends;
    this.notAfters = notAfters;
    this.earliestExpiry = earliest;
  }

  private reserve(length: number): void {
    if (this.used + length <= this.bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.used + length + MIN_CAPACITY));
    this.bytes.copy(grown, 0, 0, this.used);
    this.bytes = grown;
  }
}
