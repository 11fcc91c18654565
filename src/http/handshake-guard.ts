/**
 * Bounds what an anonymous client can make the TLS handshake cost us, and makes a repeat cheap.
 *
 * The listener asks every client for a certificate and never requires one (enrollment comes
 * without). Node's OpenSSL verify callback always continues (errors are read after the
 * handshake), so OpenSSL builds a chain from whatever certificates the client sends and checks
 * every link's signature on the event loop: RSA-3072 links with a 3072-bit public exponent cost
 * ~4.7 ms each (OpenSSL 3 bounds the exponent only above 3072 bits), and OpenSSL's 100 KB cap
 * on the certificate message fits ~74 of them: ~417 ms of CPU per handshake (Node 20). Node
 * has no verify-depth or certificate-list cap (nodejs/node#39208), so:
 *
 * 1. Once armed, a client's bytes reach OpenSSL through this guard, and until its handshake
 *    completes at most HANDSHAKE_BYTE_BUDGET of them: past it the connection is cut before
 *    OpenSSL holds a whole certificate message to verify.
 * 2. A source whose guarded handshake has cost more than EXPENSIVE_HANDSHAKE_CPU_US before it
 *    completed (cut there), or completed at that cost with a certificate our CA did not issue,
 *    is refused at accept (before TLS reads a byte) for BACK_OFF_MS, and its other handshakes
 *    in progress are cut before TLS reads more of them. A cut that cost us nothing (over the
 *    byte budget before OpenSSL held a whole message) or a cheap foreign certificate is not
 *    enough: many devices may share one address (NAT, a load balancer that does not pass
 *    client addresses), and a refusal shuts them all out. An expired or revoked certificate
 *    of ours is never a reason: that device gets its 401 every time.
 *
 * Guarding costs a connection its native path (TLS reads through a JavaScript stream): ~250-300
 * us more CPU per full mTLS reconnect and ~150 us per resumed one on Node 20, 10-15%. So the
 * guard is armed only for ARMED_MS after a sign of attack, renewed by each new one: a handshake
 * that presented a certificate our CA did not issue, one that failed in TLS itself (a hostile
 * chain's CertificateVerify fails), one that was cut, or one whose client hung up (or timed
 * out) after the event loop stalled while it was connected (a chain with valid signatures
 * fails nothing: its sender holds the connection, then leaves). A client that merely hangs up
 * mid-handshake (a device losing its network, a load balancer's TCP check) is no sign: in a
 * fleet that happens all day. Unarmed, connections take Node's native path: the first
 * hostile handshake of a quiet period costs what it costs (at most ~417 ms), and arms the guard
 * for every later one.
 *
 * In a cluster no process sees every connection's TLS (the primary hands them out, or the
 * kernel spreads them over the workers' own listeners): each worker guards its own,
 * and tells the others through the rate limits' shared counters (window-counters.ts), so a
 * back-off or an arming reaches every worker within one message through the primary and a
 * source gets one costly handshake per period, not one per worker. It is no rate limit and
 * does not follow `--rate-limit off`: ordinary clients, the benchmarks' single loopback
 * source included, never trip it.
 */
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import type { Server, TLSSocket } from 'node:tls';
import { sourceKey } from './source-key.js';
import type { WindowCounters } from './window-counters.js';

/**
 * What a client may send before its handshake completes. Real clients stay well under half:
 * a ClientHello with post-quantum key shares is ~1.8 KB, a device or operator chain of an
 * RSA-4096 leaf and two RSA-4096 intermediates ~5 KB, plus CertificateVerify and Finished.
 * Within it a hostile chain fits ~11 costly links (60-70 ms measured on Node 20), once per
 * source per back-off.
 */
export const HANDSHAKE_BYTE_BUDGET = 16 * 1024;
/**
 * CPU a failed or foreign-certificate handshake may take before its source is backed off. A
 * full mTLS handshake costs ~1-2 ms (a foreign leaf with a costly key for CertificateVerify
 * ~5 ms more); a chain of costly links that fits the budget 5-70 ms.
 */
export const EXPENSIVE_HANDSHAKE_CPU_US = 10_000;
/** How long a source is refused at accept. */
export const BACK_OFF_MS = 60_000;
/** How long the guard stays armed after the last sign of attack. */
export const ARMED_MS = 60_000;
/**
 * An event-loop stall that makes a hang-up a sign of attack: the loop blocked this long while
 * the client was connected. A costly chain takes 5-8 ms a link; the garbage collector's young
 * pauses stay under ~25 ms here.
 */
const STALL_MS = 40;
/** Errors of a client that went away mid-handshake, or never spoke (Node's codes). */
const HANG_UPS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ERR_TLS_HANDSHAKE_TIMEOUT']);
/** Sources remembered at most; expired ones are dropped first, then the oldest. */
const MAX_SOURCES = 100_000;

/** The shared counters' keys: the guard is armed; a source is backed off. */
const ARMED_KEY = 'handshake-guard:armed';
const backOffKey = (address: string): string => `handshake-guard:${sourceKey(address)}`;

/** Why a source was backed off. */
export type BackOffReason = 'foreign_certificate' | 'expensive_handshake';

/** Sources refused at accept until a time; this process's own. */
export class SourceBackOff {
  private readonly until = new Map<string, number>();

  constructor(readonly periodMs = BACK_OFF_MS) {}

  /** True while `address`'s source is backed off. */
  refuses(address: string, now = performance.now()): boolean {
    if (this.until.size === 0) return false;
    const key = sourceKey(address);
    const until = this.until.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.until.delete(key);
    return false;
  }

  /** Refuses `address`'s source for the period from now. */
  backOff(address: string, now = performance.now()): void {
    const key = sourceKey(address);
    this.until.delete(key); // re-inserted last: the map's order is expiry order
    if (this.until.size >= MAX_SOURCES) this.prune(now);
    this.until.set(key, now + this.periodMs);
  }

  private prune(now: number): void {
    for (const [key, until] of this.until) {
      if (until > now && this.until.size < MAX_SOURCES) return;
      this.until.delete(key);
    }
  }
}

/** How the guard is set up for one listener. */
export interface HandshakeGuardOptions {
  /** The CA certificates (PEM) client certificates are verified against. */
  readonly trustedCaPem: readonly string[];
  readonly backOff?: SourceBackOff | undefined;
  /** Told each time a source is backed off. */
  readonly onBackOff?: ((address: string, reason: BackOffReason) => void) | undefined;
  /** Told when the guard arms after a quiet period. */
  readonly onArmed?: (() => void) | undefined;
  readonly byteBudget?: number | undefined;
  /** How long a sign of attack arms the guard (ARMED_MS). */
  readonly armedMs?: number | undefined;
  /** Counters the processes serving this listener share: back-offs and arming reach them all. */
  readonly shared?: WindowCounters | undefined;
}

/**
 * One connection's bytes on their way to TLS: counted, and their processing timed, until the
 * handshake completes; then passed straight through.
 */
class GuardedConnection extends Duplex {
  /** Set by the guard once the handshake completed (synchronously, inside feed()). */
  secured = false;
  /** Handshake bytes fed so far. */
  private fed = 0;
  /** CPU the handshake's bytes took to process, in microseconds. */
  cpuUs = 0;
  /** Its source was backed off already. */
  refused = false;
  /** The handshake presented a certificate our CA did not issue. */
  foreign = false;

  constructor(
    readonly raw: Socket,
    private readonly guard: HandshakeGuard,
  ) {
    super({ allowHalfOpen: raw.allowHalfOpen });
    raw.pause();
    raw.on('data', (chunk: Buffer) => (this.secured ? this.pass(chunk) : this.handshake(chunk)));
    raw.on('end', () => this.push(null));
    raw.on('error', (error) => this.destroy(error));
    raw.on('close', () => this.destroy());
  }

  private pass(chunk: Buffer): void {
    if (!this.push(chunk)) this.raw.pause();
  }

  /**
   * Feeds `chunk` to TLS while the handshake lasts, as it came (OpenSSL sees the same reads as
   * over a plain socket), and only up to the budget: a chunk that crosses it is fed up to it,
   * and the rest passes only if the handshake completed in what was fed (a TLS 1.3 client's
   * request may follow its Finished in one read).
   */
  private handshake(chunk: Buffer): void {
    // Its source was backed off while this one waited: none of its bytes reach TLS again.
    if (!this.refused && this.guard.refuses(this.raw)) return void this.raw.destroy();
    const room = this.guard.byteBudget - this.fed;
    if (room <= 0) return this.cut();
    const fits = chunk.length <= room;
    this.fed += Math.min(chunk.length, room);
    this.feed(fits ? chunk : chunk.subarray(0, room));
    if (fits || this.destroyed) return;
    if (this.secured) this.pass(chunk.subarray(room));
    else this.cut();
  }

  /**
   * Bytes to OpenSSL, synchronously: their CPU is the handshake's. Node 20 can tell only the
   * whole process's CPU, other threads' too (V8's concurrent GC), which could make a cheap
   * handshake look costly; this thread's own CPU is never more than the time that passed.
   */
  private feed(bytes: Buffer): void {
    const before = process.cpuUsage();
    const started = performance.now();
    this.guard.feeding = this;
    try {
      this.push(bytes);
    } finally {
      this.guard.feeding = undefined;
      const spent = process.cpuUsage(before);
      this.cpuUs += Math.min(spent.user + spent.system, (performance.now() - started) * 1000);
    }
    if (this.cpuUs < EXPENSIVE_HANDSHAKE_CPU_US) return;
    // Decided once the whole handshake's CPU is counted: the record that completes it may hold the chain too.
    if (this.foreign) this.guard.refuse(this, 'foreign_certificate');
    // Real handshakes cost 1-2 ms in all: this one is not done, and will not be.
    else if (!this.secured) {
      this.guard.refuse(this, 'expensive_handshake');
      this.raw.destroy();
    }
  }

  /** Over the budget: the connection goes, cheaply; its source is refused only if it cost much (feed). */
  private cut(): void {
    this.guard.arm();
    this.raw.destroy();
  }

  override _read(): void {
    this.raw.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.raw.write(chunk, done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: (error?: Error | null) => void): void {
    this.raw.cork();
    for (let i = 0; i < chunks.length - 1; i++) this.raw.write(chunks[i]!.chunk);
    this.raw.write(chunks[chunks.length - 1]!.chunk, done);
    this.raw.uncork();
  }

  override _final(done: (error?: Error | null) => void): void {
    this.raw.end(done);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.raw.destroy();
    done(error);
  }
}

/** The guard of one TLS listener. */
class HandshakeGuard {
  feeding: GuardedConnection | undefined;
  readonly byteBudget: number;
  private readonly backOff: SourceBackOff;
  private readonly trusted: readonly X509Certificate[];
  private readonly shared: WindowCounters | undefined;

  constructor(private readonly options: HandshakeGuardOptions) {
    this.shared = options.shared;
    this.byteBudget = options.byteBudget ?? HANDSHAKE_BYTE_BUDGET;
    this.backOff = options.backOff ?? new SourceBackOff();
    this.trusted = options.trustedCaPem.map((pem) => new X509Certificate(pem));
  }

  /** Until when new connections are guarded (performance.now() time). */
  private armedUntil = -Infinity;

  refuses(raw: Socket): boolean {
    const address = raw.remoteAddress;
    if (address === undefined) return false;
    return this.backOff.refuses(address) || (this.shared !== undefined && this.shared.peek(backOffKey(address)) > 0);
  }

  get armed(): boolean {
    return performance.now() < this.armedUntil || (this.shared !== undefined && this.shared.peek(ARMED_KEY) > 0);
  }

  /** A sign of attack: guards every connection accepted for the next ARMED_MS, in every process that shares the counters. */
  arm(): void {
    if (!this.armed) this.options.onArmed?.();
    const period = this.options.armedMs ?? ARMED_MS;
    this.armedUntil = performance.now() + period;
    // Told once per shared period: under attack every handshake is a sign.
    if (this.shared !== undefined && this.shared.peek(ARMED_KEY) === 0) void this.shared.add(ARMED_KEY, 1, period, 1);
  }

  refuse(connection: GuardedConnection, reason: BackOffReason): void {
    const address = connection.raw.remoteAddress;
    this.arm();
    if (connection.refused || address === undefined) return;
    connection.refused = true;
    this.backOff.backOff(address);
    void this.shared?.add(backOffKey(address), 1, this.backOff.periodMs, 1);
    this.options.onBackOff?.(address, reason);
  }

  /**
   * A handshake completed. A guarded connection's TLS socket gets the client's address (a TLS
   * socket over a stream has none of its own). A certificate our CA did not issue arms the
   * guard, and marks a guarded connection for feed() to judge by its cost.
   */
  secured(socket: TLSSocket): void {
    const connection = this.feeding;
    if (connection) {
      connection.secured = true;
      const { remoteAddress, remotePort, remoteFamily, localAddress, localPort } = connection.raw;
      Object.defineProperties(socket, {
        remoteAddress: { value: remoteAddress },
        remotePort: { value: remotePort },
        remoteFamily: { value: remoteFamily },
        localAddress: { value: localAddress },
        localPort: { value: localPort },
      });
    }
    if (socket.authorized || !this.foreign(socket)) return;
    this.arm();
    if (connection) connection.foreign = true;
  }

  /** True when the client presented a certificate that none of our CA certificates issued (expired or not). */
  private foreign(socket: TLSSocket): boolean {
    const peer = socket.getPeerX509Certificate();
    if (!peer) return false;
    return !this.trusted.some((ca) => peer.checkIssued(ca) && peer.verify(ca.publicKey));
  }
}

/**
 * When a connection handed to TLS on Node's native path was accepted (performance.now()), kept
 * on its socket: a property costs an accept less than a WeakMap entry (an ephemeron table
 * insertion, which the garbage collector processes again).
 */
const ACCEPTED_AT = Symbol('acceptedAt');
type AcceptedSocket = Socket & { [ACCEPTED_AT]?: number };

/**
 * Puts the guard between a TLS server's listener and its TLS layer. Call before any other
 * 'connection' listener is added: the TLS server's own is then the only one, and is handed
 * each accepted connection, refused at once while its source is backed off, through the
 * guard while armed (Node's documented way of giving a TLS server a stream that is not a
 * plain socket), as it is otherwise.
 */
export function guardHandshakes(server: Server, options: HandshakeGuardOptions): void {
  const listeners = server.listeners('connection');
  if (listeners.length !== 1) throw new Error('guardHandshakes must be installed before any other connection listener');
  const startTls = listeners[0] as (this: Server, stream: Duplex | Socket) => void;
  server.removeListener('connection', startTls);
  const guard = new HandshakeGuard(options);
  server.on('connection', function guardedConnection(raw: AcceptedSocket) {
    if (guard.refuses(raw)) {
      raw.destroy();
      return;
    }
    if (guard.armed) return startTls.call(server, new GuardedConnection(raw, guard));
    raw[ACCEPTED_AT] = performance.now();
    startTls.call(server, raw);
  });
  // First: every other listener (the HTTP layer's, connection tracking) reads the address set here.
  server.prependListener('secureConnection', (socket: TLSSocket) => guard.secured(socket));
  // A handshake that failed in TLS (a hostile chain's CertificateVerify fails; a client that
  // distrusts us sends an alert too, which only arms the guard), or whose client hung up after
  // the loop stalled while it was connected.
  const stalls = new StallWatch();
  server.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket & { _parent?: AcceptedSocket | null }) => {
    // A guarded connection's TLS socket has no _parent (TLS reads a wrapper of the stream): its
    // cost is judged as it is fed, so only a stall going on right now counts for its hang-up.
    if (!HANG_UPS.has(error.code ?? '') || stalls.since(socket._parent?.[ACCEPTED_AT] ?? Infinity)) guard.arm();
  });
  server.once('close', () => stalls.stop());
}

/**
 * Notices when the event loop stalled, from a timer's lateness: a few microseconds 50 times a
 * second. A handshake's cost is not visible on Node's native TLS path, but a costly one blocks
 * the loop.
 */
class StallWatch {
  private last = performance.now();
  private stalledAt = -Infinity;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly periodMs = 20) {
    this.timer = setInterval(() => {
      const now = performance.now();
      if (now - this.last - this.periodMs >= STALL_MS) this.stalledAt = now;
      this.last = now;
    }, periodMs).unref();
  }

  /** The loop is stalled now (this runs late), or stalled at `time` (performance.now()) or later; Infinity: now only. */
  since(time: number): boolean {
    return performance.now() - this.last - this.periodMs >= STALL_MS || this.stalledAt >= time;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
