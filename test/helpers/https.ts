/** A bare HTTPS client for tests: raw status, headers and parsed JSON body, optional client certificate. */
import { request } from 'node:https';

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

/** Sends one request on a new connection. */
export function call(url: string, options: RequestOptions): Promise<Response> {
  const payload = options.json !== undefined ? Buffer.from(JSON.stringify(options.json)) : options.body;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? (payload === undefined ? 'GET' : 'POST'),
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        agent: false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        headers: { ...(options.json !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          let body: unknown = raw.toString('utf8');
          try {
            body = JSON.parse(raw.toString('utf8'));
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, raw });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
