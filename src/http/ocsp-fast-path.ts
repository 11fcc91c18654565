/**
 * OCSP answered before Fastify's routing. A relying party's request is one small binary
 * body in and one out, at thousands a second; Fastify's request and reply objects, hooks
 * and logger children cost several times what a kept answer does. So the listeners take
 * the plain OCSP requests here (POST /ocsp with a bounded application/ocsp-request body,
 * GET /ocsp/<base64>) and give the OCSP service the same bytes the routes would.
 *
 * Everything else, and anything unusual about these (a Host header that needs the full
 * check, a query string, a chunked or oversized body, another media type, escapes in the
 * path beyond base64's own), goes to Fastify untouched, where the OCSP routes and the
 * checks every request passes still answer it. What the server does for every connection
 * (the per-source cap, TLS, header, request and keep-alive timeouts) is the Node server's
 * and applies here too; what Fastify adds per request that matters for OCSP is kept: the
 * X-Request-Id echo, the request-duration metric under the route's name, and the log
 * line of a failure. The OCSP answer counters are the service's own.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_OCSP_REQUEST_BYTES, type OcspService } from '../enrollment/ocsp-service.js';
import { plainHost, type FastPath } from './fast-path.js';
import { metrics, type AnsweredObserver } from './metrics.js';
import { decodeOcspPath, OCSP_CACHE_CONTROL, OCSP_RESPONSE_TYPE, OCSP_ROUTES, ocspFailure } from './ocsp-http.js';
import { REQUEST_ID_HEADER, requestIdOf } from './observability.js';

/** What the fast path answers with and reports to. */
export interface OcspFastPathOptions {
  readonly ocsp: OcspService;
  readonly log: FastifyBaseLogger;
  /** False once the server is closing: Fastify then answers, and closes each connection. */
  readonly open: () => boolean;
  /** Headers every answer of this listener carries besides OCSP's own (the HTTPS listener's security headers). */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

/**
 * GET /ocsp/ and base64, with only base64's own characters escaped: decoding that once or
 * twice (the router decodes the path, then decodeOcspPath) gives the same bytes.
 */
const PLAIN_GET = /^\/ocsp\/((?:[A-Za-z0-9+/=]|%2[BbFf]|%3[Dd])+)$/;

const PLAIN_LENGTH = /^[0-9]{1,4}$/;

/**
 * GET paths read lately, and their DER. Relying parties ask about the same certificates
 * again and again, and reading a path (the pattern above, decodeURIComponent, a strict
 * base64 check, Buffer.from) cost ~1 us, a few percent of a kept answer. Only paths that
 * read well are kept, and only what reading gives: the answer is still the service's. The
 * oldest make room (a path is at most ~5.5 KB: ~3 MB at worst).
 */
const readPaths = new Map<string, Buffer>();
const MAX_READ_PATHS = 512;

/** The DER of a plain GET's path, or undefined when the path is not one this path takes. */
function readGetPath(url: string): Buffer | undefined {
  const kept = readPaths.get(url);
  if (kept !== undefined) return kept;
  const path = PLAIN_GET.exec(url)?.[1];
  const read = path === undefined ? undefined : decodeOcspPath(path);
  if (read === undefined) return undefined;
  // In an allocation of its own: a kept slice of Node's shared 8 KB pool would hold the whole block.
  const der = Buffer.allocUnsafeSlow(read.length);
  read.copy(der);
  if (readPaths.size >= MAX_READ_PATHS) readPaths.delete(readPaths.keys().next().value!);
  readPaths.set(url, der);
  return der;
}

/**
 * Whether this path takes the request: a GET's DER OCSPRequest, the length of a POST's body
 * (still to come), undefined to hand it to Fastify.
 */
function plainRequest(request: IncomingMessage): Buffer | number | undefined {
  const headers = request.headers;
  if (headers['transfer-encoding'] !== undefined || !plainHost(request)) return undefined;
  if (request.method === 'POST' && request.url === OCSP_ROUTES.post) {
    const length = headers['content-length'];
    if (headers['content-type'] !== 'application/ocsp-request' || length === undefined || !PLAIN_LENGTH.test(length)) return undefined;
    const bytes = Number(length);
    return bytes <= MAX_OCSP_REQUEST_BYTES ? bytes : undefined;
  }
  if (request.method === 'GET' && headers['content-length'] === undefined) {
    return readGetPath(request.url!);
  }
  return undefined;
}

/** The fast path for one listener. */
export function ocspFastPath(options: OcspFastPathOptions): FastPath {
  const { ocsp, log, open } = options;
  // writeHead's flat list of names and values, built once: each answer adds only its request id and length.
  const fixedHeaders = ['content-type', OCSP_RESPONSE_TYPE, 'cache-control', OCSP_CACHE_CONTROL, ...Object.entries(options.headers ?? {}).flat(), REQUEST_ID_HEADER];
  const observePost = metrics().answeredObserver(OCSP_ROUTES.post, 'POST');
  const observeGet = metrics().answeredObserver(OCSP_ROUTES.get, 'GET');

  /** Answers one request taken by this path, once the service has. */
  function answer(request: IncomingMessage, response: ServerResponse, observe: AnsweredObserver, started: number, requestDer: Buffer): void {
    ocsp.respond(requestDer).then(
      (der) => write(response, observe, started, requestIdOf(request), der),
      (error: unknown) => {
        const requestId = requestIdOf(request);
        const failure = ocspFailure(error);
        if (failure.ours) log.error({ err: error, requestId }, 'OCSP request failed');
        write(response, observe, started, requestId, failure.der);
      },
    );
  }

  function write(response: ServerResponse, observe: AnsweredObserver, started: number, requestId: string, der: Buffer): void {
    // A connection given up on meanwhile (closed, or ended by a request timeout's answer)
    // takes nothing more. An answer waiting behind a pipelined one has no socket yet: Node
    // holds it until the earlier answers are out.
    if (response.destroyed || (response.socket !== null && !response.socket.writable)) return;
    try {
      response.writeHead(200, [...fixedHeaders, requestId, 'content-length', String(der.length)]);
      response.end(der);
    } catch (error) {
      // Not even an error answer could be written: the connection goes, the process stays.
      log.error({ err: error, requestId }, 'OCSP answer not written');
      response.destroy();
      return;
    }
    observe(200, (performance.now() - started) / 1000);
  }

  /**
   * Reads a POST's body. One that came with the headers is in the request by now: Node's
   * parser pushes it there before it runs the ticks queued while the request was handed
   * out. Read in one piece, it costs none of the stream events that 'data' and 'end'
   * listeners do (~9% of a kept answer's instructions). One still on its way is collected
   * as it comes.
   */
  function readBody(request: IncomingMessage, response: ServerResponse, started: number, length: number): void {
    const body = length > 0 && request.readableLength === length ? (request.read() as Buffer | null) : null;
    if (body !== null) {
      answer(request, response, observePost, started, body);
      return;
    }
    // The length is bounded above and Node's parser holds the body to it.
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => answer(request, response, observePost, started, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    // A client gone mid-body: Node closes the connection; nothing is left to answer.
    request.on('error', () => undefined);
  }

  return function answerOcsp(request, response) {
    const taken = open() ? plainRequest(request) : undefined;
    if (taken === undefined) return false;
    const started = performance.now();
    if (typeof taken === 'number') {
      process.nextTick(readBody, request, response, started, taken);
      return true;
    }
    // A GET taken here has no body. Read from (nothing yet), the request counts as consumed,
    // so Node does not dump it once answered: that was a resume and three ticks of stream
    // events, ~12% of a kept answer's instructions.
    request.read();
    answer(request, response, observeGet, started, taken);
    return true;
  };
}
