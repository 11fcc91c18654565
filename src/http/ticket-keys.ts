/**
 * TLS session ticket keys: the secret that encrypts and authenticates the session state a
 * server hands a client so that its next connection resumes without a full handshake
 * (RFC 8446 4.6.1 for TLS 1.3, RFC 5077 for 1.2). The state inside a ticket includes the
 * client certificate it was made with, so whoever holds the key can mint a ticket that
 * resumes as any certificate: the key is as secret as a signing key. It comes from the
 * CSPRNG, lives only in memory (a cluster primary hands it to its workers over the IPC
 * channel), is never logged or written to disk, and is replaced every TICKET_KEY_ROTATION_MS.
 *
 * Resumption never skips authentication: the certificate a resumed connection carries is
 * looked up and its revocation checked on every request, exactly as after a full handshake
 * (ClientAuthenticator), and the revocation watcher closes resumed connections too
 * (ClientConnections). The ticket lifetime therefore only decides how often a device pays
 * for a full handshake, never how long a revoked certificate is honoured.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:tls';

/** Node's ticket key: a 16-byte key name, a 16-byte HMAC key and a 16-byte AES key (tls.Server#setTicketKeys). */
export const TICKET_KEY_BYTES = 48;

/**
 * How long one key issues and accepts tickets. Node accepts a single key at a time, so a
 * rotation also retires the tickets issued under the previous key: each device that
 * resumes within TICKET_LIFETIME_S after a rotation pays one full handshake, twice a day.
 */
export const TICKET_KEY_ROTATION_MS = 12 * 3_600_000;

/**
 * How long a ticket may resume, in seconds (the server's sessionTimeout, sent to the
 * client as the ticket lifetime hint). OpenSSL's default, named here: long enough for a
 * device that reconnects every few minutes to resume nearly always, short enough that a
 * stolen ticket is soon worthless.
 */
export const TICKET_LIFETIME_S = 2 * 3600;

/** The session ticket key a server issues and accepts tickets with, and who to tell when it changes. */
export class TicketKeys {
  private key: Buffer;
  private readonly listeners = new Set<(key: Buffer) => void>();

  constructor(key: Buffer) {
    this.key = checked(key);
  }

  /** A fresh key from the CSPRNG. */
  static random(): TicketKeys {
    return new TicketKeys(randomBytes(TICKET_KEY_BYTES));
  }

  /** The key tickets are issued and accepted with now. */
  current(): Buffer {
    return this.key;
  }

  /** Makes `key` the current one and tells every follower. */
  replace(key: Buffer): void {
    this.key = checked(key);
    for (const listener of this.listeners) listener(this.key);
  }

  /** Calls `listener` with each new key; returns the unsubscription. */
  onChange(listener: (key: Buffer) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Replaces the key with a fresh random one every `periodMs`; returns the stop. */
  rotateEvery(periodMs: number): () => void {
    const timer = setInterval(() => this.replace(randomBytes(TICKET_KEY_BYTES)), periodMs);
    // The rotation never keeps a process alive that has nothing else to do.
    timer.unref();
    return () => clearInterval(timer);
  }
}

function checked(key: Buffer): Buffer {
  if (key.length !== TICKET_KEY_BYTES) throw new Error(`a session ticket key is ${TICKET_KEY_BYTES} bytes, not ${key.length}`);
  return key;
}

/**
 * Keeps a TLS server on the current key: now, whenever it changes, and once more when the
 * server starts listening. In a cluster worker, listen() sets the ticket keys the primary
 * kept from the first worker that listened (Node's own way of letting workers resume each
 * other's sessions); after a rotation that key is retired, so a worker started later (one
 * replacing a dead worker) takes the current key again. 'listening' is emitted before the
 * worker reads any client's ClientHello, so no ticket is issued or read with the stale key.
 * Returns the unsubscription.
 */
export function followTicketKeys(server: Server, keys: TicketKeys): () => void {
  const apply = () => server.setTicketKeys(keys.current());
  apply();
  server.on('listening', apply);
  const unfollow = keys.onChange(apply);
  return () => {
    unfollow();
    server.off('listening', apply);
  };
}
