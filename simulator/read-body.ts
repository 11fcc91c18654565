/** Reading a whole HTTP answer. */
import type { IncomingMessage } from 'node:http';

/**
 * The body of `res` once all of it has arrived. When the connection closes first (a server
 * killed in the middle of an answer) 'end' never comes, and Node emits 'error' on a response
 * only if someone listens for it: a reader waiting for 'end' alone would wait forever.
 */
export function readBody(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
  });
}
