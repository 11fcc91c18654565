/**
 * Revocations recorded by any instance, heard at once: every transaction that takes a
 * revocation sequence number also sends NOTIFY on REVOCATION_CHANNEL (delivered at its
 * commit, never for one rolled back), and each store LISTENs on a session of its own.
 * Notifications are lost while that session is not listening, so each time it starts
 * listening (the first time, and on reconnecting) it tells its listeners once anyway; the
 * watchers' polling remains the guarantee.
 */
import type pg from 'pg';
import { RevocationSignal } from '../revocation-signal.js';
import { connectClient } from './connection.js';

/** The channel revocations are announced on. */
export const REVOCATION_CHANNEL = 'imprint_revocations';
/** Waits between attempts to listen again after the session failed (the database restarting). */
const RETRY_MS = [250, 500, 1000, 2000, 5000];

/** One LISTEN session per store, opened on the first subscription. */
export class RevocationNotifications {
  private readonly signal = new RevocationSignal();
  private client: pg.Client | undefined;
  private started = false;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(private readonly url: string) {}

  subscribe(listener: () => void): () => void {
    const unsubscribe = this.signal.subscribe(listener);
    if (!this.started) {
      this.started = true;
      void this.listen(0);
    }
    return unsubscribe;
  }

  /** A revocation this process committed: its subscribers hear of it now, not when the NOTIFY comes back. */
  committedHere(): void {
    this.signal.notify();
  }

  private async listen(attempt: number): Promise<void> {
    if (this.closed) return;
    let client: pg.Client | undefined;
    try {
      client = await connectClient(this.url);
      if (this.closed) return void (await client.end());
      client.on('notification', () => this.signal.notify());
      // Replaces connectClient's silent handler: a failed session is listened to again.
      client.removeAllListeners('error');
      client.on('error', () => this.reconnect(client!, 0));
      client.on('end', () => this.reconnect(client!, 0));
      await client.query(`LISTEN ${REVOCATION_CHANNEL}`);
      this.client = client;
      // Whatever was announced while no session listened (before the first LISTEN, or while
      // reconnecting) is found by one look now.
      this.signal.notify();
    } catch {
      client?.removeAllListeners('end');
      await client?.end().catch(() => undefined);
      this.schedule(attempt + 1);
    }
  }

  private reconnect(failed: pg.Client, attempt: number): void {
    if (this.client !== failed) return;
    this.client = undefined;
    failed.removeAllListeners('end');
    void failed.end().catch(() => undefined);
    this.schedule(attempt + 1);
  }

  private schedule(attempt: number): void {
    if (this.closed) return;
    this.retry = setTimeout(() => void this.listen(attempt), RETRY_MS[Math.min(attempt, RETRY_MS.length) - 1]);
    this.retry.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    client?.removeAllListeners('end');
    await client?.end().catch(() => undefined);
  }
}
