/** A bare HTTPS client for tests: raw status, headers and parsed JSON body, optional client certificate. */
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { readBody } from '../../simulator/read-body.js';

/** What came back. */
export interface Response {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: any;
  readonly raw: Buffer;
}

/** Options of one request. */
export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly json?: unknown;
  readonly body?: string | Buffer;
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
  /** The loopback address to connect from (127.0.0.0/8: a second "source" for rate limits). */
  readonly localAddress?: string;
}

/** A server that stops answering fails the test with this, instead of hanging it. */
const IDLE_TIMEOUT_MS = 30_000;

/** Sends one request on a new connection. */
export async function call(url: string, options: RequestOptions): Promise<Response> {
  const payload = options.json !== undefined ? Buffer.from(JSON.stringify(options.json)) : options.body;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? (payload === undefined ? 'GET' : 'POST'),
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        agent: false,
        timeout: IDLE_TIMEOUT_MS,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        headers: { ...(options.json !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
      },
      resolve,
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within ${IDLE_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
  const raw = await readBody(res);
  let body: unknown = raw.toString('utf8');
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    // not JSON: keep the text
  }
  return { status: res.statusCode ?? 0, headers: res.headers, body, raw };
}
