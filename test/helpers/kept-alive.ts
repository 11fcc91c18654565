/** A device holding one kept-alive mTLS connection open, to see a revocation close it. */
import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { readBody } from '../../simulator/read-body.js';

/** The connection: `get` sends GET /v1/device on it (or on a new one once it is closed). */
export function keptAlive(url: string, identity: { ca: string; cert: string; key: string }) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ...identity });
  let socket: TLSSocket | undefined;
  const get = () =>
    new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request(`${url}/v1/device`, { agent }, (res) => {
        socket = res.socket as TLSSocket;
        readBody(res).then((raw) => resolve({ status: res.statusCode!, body: JSON.parse(raw.toString()) }), reject);
      });
      req.on('error', reject);
      req.end();
    });
  /** Resolves true once the server closed the connection, false if it is still open after `ms`. */
  const closedWithin = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (!socket || socket.destroyed) return resolve(true);
      const timer = setTimeout(() => resolve(false), ms);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  return { agent, get, closedWithin };
}
