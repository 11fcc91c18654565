/**
 * Caps open TCP connections per source (an IPv4 address, an IPv6 /64): one client cannot
 * hold every socket the process can open. A connection over the cap is closed before its
 * TLS handshake costs us.
 */
import type { Server, Socket } from 'node:net';
import { sourceKey } from './source-key.js';

/** Installs the cap on a listening (or about to listen) server. */
export function limitConnectionsPerSource(server: Server, perSource: number): void {
  const open = new Map<string, number>();
  // One listener shared by every connection rather than a closure and a once-wrapper each:
  // a socket keeps the peer address it was read with, so it still names its source once closed.
  function release(this: Socket): void {
    const source = sourceKey(this.remoteAddress ?? '');
    const left = (open.get(source) ?? 1) - 1;
    if (left > 0) open.set(source, left);
    else open.delete(source);
  }
  server.on('connection', (socket: Socket) => {
    const source = sourceKey(socket.remoteAddress ?? '');
    const count = (open.get(source) ?? 0) + 1;
    if (count > perSource) {
      socket.destroy();
      return;
    }
    open.set(source, count);
    // 'close' comes once per socket.
    socket.on('close', release);
  });
}
