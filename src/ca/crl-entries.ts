/**
 * The revokedCertificates of a CRL kept encoded between builds, so that a rebuild encodes
 * only the revocations made since the last one: the entries are one buffer in revocation
 * order, and a CRL's list is that buffer, less the entries that expired. A CRL is held and
 * served as parts that are these blocks themselves, so its entries are held once.
 */
import { MAX_CRL_ENTRY_BYTES, writeCrlEntry, type CrlEntry } from './crl.js';

/** A revoked certificate as listed: its entry, and when it leaves the CRL (its notAfter, ms since the epoch). */
export interface ListedEntry extends CrlEntry {
  readonly notAfter: number;
}

/**
 * Entries are written into blocks of their own: a block never moves once made, so the list
 * grows without copying what it holds or holding twice its size, and a CRL is signed and
 * written out block by block. Blocks grow with the list, from a small CRL's few KB to this.
 * Bytes once written in a block never change (expiry writes the entries it keeps into a new
 * block), so the parts given for a CRL stay as they were while it is served, whatever the
 * list does next.
 */
const MAX_BLOCK_BYTES = 4 * 1024 * 1024;
const MIN_BLOCK_BYTES = 16 * 1024;
/** Per-entry arrays start this long and double. */
const MIN_ENTRIES = 1024;

/** The encoded entries of every revocation up to `seq` that had not expired when last looked at. */
export class CrlEntryList {
  /** The blocks in order, and how many bytes of each hold entries (no entry spans two). */
  private blocks!: Buffer[];
  private blockUsed!: number[];
  /** The bytes of all entries. */
  private bytes!: number;
  private entryCount!: number;
  /** Per entry, in order: its length (an entry is under 128 bytes), and its notAfter (ms). */
  private lengths!: Uint8Array;
  private notAfters!: Float64Array;
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
    this.blocks = [];
    this.blockUsed = [];
    this.bytes = 0;
    this.entryCount = 0;
    this.lengths = new Uint8Array(MIN_ENTRIES);
    this.notAfters = new Float64Array(MIN_ENTRIES);
    this.earliestExpiry = Infinity;
    this.seqValue = 0;
    this.completeAfter = -Infinity;
  }

  get seq(): number {
    return this.seqValue;
  }

  get count(): number {
    return this.entryCount;
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
    this.reserveEntries(entries.length);
    let last = this.blocks.length - 1;
    let block = this.blocks[last];
    let used = this.blockUsed[last] ?? 0;
    for (const entry of entries) {
      if (!block || used + MAX_CRL_ENTRY_BYTES > block.length) {
        if (block) this.blockUsed[last] = used;
        block = Buffer.allocUnsafeSlow(Math.min(MAX_BLOCK_BYTES, Math.max(MIN_BLOCK_BYTES, this.bytes)));
        used = 0;
        last = this.blocks.push(block) - 1;
        this.blockUsed.push(0);
      }
      const end = writeCrlEntry(block, used, entry);
      this.lengths[this.entryCount] = end - used;
      this.notAfters[this.entryCount++] = entry.notAfter;
      this.bytes += end - used;
      used = end;
      if (entry.notAfter < this.earliestExpiry) this.earliestExpiry = entry.notAfter;
    }
    if (block) this.blockUsed[last] = used;
  }

  /** The entries of a CRL built at `at`, in order, in parts: those not expired by then. */
  encodedAt(at: Date): Buffer[] {
    if (this.earliestExpiry <= at.getTime()) this.dropExpired(at.getTime());
    return this.blocks.map((block, i) => block.subarray(0, this.blockUsed[i]));
  }

  /**
   * Keeps the entries that expire after `at`: a block that loses any has those it keeps
   * copied into a new block of their size (never moved within it: a CRL may hold it), so
   * expired entries hold no memory once no CRL does.
   */
  private dropExpired(at: number): void {
    let kept = 0;
    let earliest = Infinity;
    let entry = 0;
    const blocks: Buffer[] = [];
    const blockUsed: number[] = [];
    this.blocks.forEach((block, b) => {
      /** Where the runs of kept entries start and end, in pairs. */
      const runs: number[] = [];
      let runStart = 0;
      let keptBytes = 0;
      for (let offset = 0; offset < this.blockUsed[b]!; entry++) {
        const end = offset + this.lengths[entry]!;
        const notAfter = this.notAfters[entry]!;
        if (notAfter > at) {
          this.lengths[kept] = this.lengths[entry]!;
          this.notAfters[kept++] = notAfter;
          if (notAfter < earliest) earliest = notAfter;
          keptBytes += end - offset;
        } else {
          if (offset > runStart) runs.push(runStart, offset);
          runStart = end;
          if (notAfter > this.completeAfter) this.completeAfter = notAfter;
        }
        offset = end;
      }
      if (keptBytes === 0) return;
      if (keptBytes === this.blockUsed[b]) {
        blocks.push(block);
      } else {
        if (this.blockUsed[b]! > runStart) runs.push(runStart, this.blockUsed[b]!);
        const copy = Buffer.allocUnsafeSlow(keptBytes);
        let used = 0;
        for (let r = 0; r < runs.length; r += 2) used += block.copy(copy, used, runs[r]!, runs[r + 1]!);
        blocks.push(copy);
      }
      blockUsed.push(keptBytes);
    });
    this.blocks = blocks;
    this.blockUsed = blockUsed;
    this.bytes = blockUsed.reduce((sum, used) => sum + used, 0);
    this.entryCount = kept;
    this.earliestExpiry = earliest;
  }

  /** Room in the per-entry arrays for `more` entries. */
  private reserveEntries(more: number): void {
    const needed = this.entryCount + more;
    if (needed <= this.lengths.length) return;
    const capacity = Math.max(needed, this.lengths.length * 2);
    const lengths = new Uint8Array(capacity);
    lengths.set(this.lengths.subarray(0, this.entryCount));
    const notAfters = new Float64Array(capacity);
    notAfters.set(this.notAfters.subarray(0, this.entryCount));
    this.lengths = lengths;
    this.notAfters = notAfters;
  }
}
