/** A listen() that failed, said as one sentence: serve's one line on stderr. */

/** What a failed listen() means, in the words of `ss` and `netstat` users. */
const LISTEN_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'no such address on this machine',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'host name lookup failed',
};

/**
 * The error naming the address and why it cannot be listened on. Node says
 * "listen EADDRINUSE: address already in use 127.0.0.1:8443" in one process and
 * "bind EADDRINUSE 127.0.0.1:8443" in a cluster worker whose primary binds for it.
 * `flag`: the option that chose the port, for any listener but the HTTPS one.
 */
export function listenFailure(error: unknown, host: string, port: number, flag = ''): Error {
  const code = (error as NodeJS.ErrnoException).code;
  const reason = (code === undefined ? undefined : LISTEN_ERRORS[code]) ?? (error as Error).message;
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return new Error(`cannot listen on ${address}${flag ? ` (${flag})` : ''}: ${reason}`, { cause: error });
}
