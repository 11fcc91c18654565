/**
 * One mapping from errors to HTTP: ImprintError by its code, framework and Node errors to
 * the matching contract code, anything unexpected to a 500 whose message stays in the log.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { OcspResponseStatus, ocspErrorResponse } from '../ca/ocsp.js';
import { ImprintError, type ErrorCode } from '../errors.js';
import { storeUnavailable } from '../store/failures.js';
import { REQUEST_ID_HEADER } from './observability.js';

/** The JSON error body every route answers with. */
export interface ErrorBody {
  readonly error: ErrorCode;
  readonly message: string;
}

const CODE_BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: 'bad_request',
  401: 'client_cert_required',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  431: 'headers_too_large',
  503: 'service_unavailable',
};

/** Turns any thrown value into the ImprintError that should reach the client. */
export function toClientError(error: unknown): ImprintError {
  if (error instanceof ImprintError) return error;
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) {
    return new ImprintError('bad_request', `invalid request: ${fastifyError.message ?? 'validation failed'}`);
  }
  const unavailable = storeUnavailable(error);
  if (unavailable) return unavailable;
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ImprintError('payload_too_large', 'request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ImprintError('unsupported_media_type', 'unsupported Content-Type; send application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ImprintError('bad_request', 'request body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ImprintError('bad_request', 'request body is not valid JSON');
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    const code = CODE_BY_STATUS[status] ?? 'bad_request';
    return new ImprintError(code, status === 400 ? 'malformed request' : (fastifyError.message ?? code));
  }
  return new ImprintError('internal_error', 'internal error');
}

/** Notes a refusal on its request for the operation's log line: the code and what it was about. */
export function recordRefusal(reply: FastifyReply, error: ImprintError): void {
  reply.request.errorCode = error.code;
  if (error.subject) reply.request.audit = { ...error.subject, ...reply.request.audit };
}

/** Writes an error reply with the contract's body and headers. */
export function sendError(reply: FastifyReply, error: ImprintError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  recordRefusal(reply, error);
  const body: ErrorBody = { error: error.code, message: error.message };
  return reply.code(error.status).type('application/json; charset=utf-8').send(body);
}

/**
 * Refuses a request that is not well-formed HTTP for us (see validation's request checks):
 * 400 bad_request, or on the OCSP paths an OCSP malformedRequest (RFC 6960 2.3), since
 * OCSP clients read only OCSP.
 */
export function refuseMalformedRequest(request: FastifyRequest, reply: FastifyReply, message: string): FastifyReply {
  if (request.url.startsWith('/ocsp')) {
    return reply.code(200).type('application/ocsp-response').send(ocspErrorResponse(OcspResponseStatus.malformedRequest));
  }
  return sendError(reply, new ImprintError('bad_request', message));
}

/**
 * Errors Fastify raises before routing (an undecodable URL); OCSP paths still get OCSP.
 * No hook runs for these, so the request id is echoed here.
 */
export function renderFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  reply.header(REQUEST_ID_HEADER, request.id);
  void refuseMalformedRequest(request, reply, error.code === 'FST_ERR_BAD_URL' ? 'the URL does not decode' : 'malformed request');
}

/** The error body of an answer written by hand (no Fastify reply exists). */
const rawBody = (error: ImprintError): string => JSON.stringify({ error: error.code, message: error.message } satisfies ErrorBody);

/** The response Node is writing on a socket, if any (Node keeps it there while it is in flight). */
type SocketWithResponse = Duplex & { _httpMessage?: (ServerResponse & { _headerSent?: boolean }) | null };

/** Sockets already being answered by answerOnSocket: Node may report one broken stream more than once. */
const answering = new WeakSet<Duplex>();

/**
 * Writes an error answer by hand on a socket that Node's HTTP server gave up on (no
 * request or reply object exists), then closes the connection. A pipelined request
 * before the broken one is answered first: its response is waited for, so the client
 * reads both answers in order instead of the error in place of the earlier answer.
 */
function answerOnSocket(socket: Duplex, error: ImprintError): void {
  if (answering.has(socket)) return;
  answering.add(socket);
  const write = (): void => {
    if (socket.destroyed) return;
    const inFlight = (socket as SocketWithResponse)._httpMessage;
    if (inFlight && !inFlight.writableFinished) {
      // The request it answers was read whole: the error is the next request's, so it
      // goes after. Otherwise the error belongs to that very request (a broken body):
      // answer it now unless its answer has started, which a second answer would corrupt.
      if (inFlight.req?.complete) {
        const next = (): void => {
          inFlight.off('finish', next).off('close', next);
          setImmediate(write);
        };
        inFlight.once('finish', next).once('close', next);
        return;
      }
      if (inFlight._headerSent) {
        socket.destroy();
        return;
      }
    }
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const body = rawBody(error);
    socket.end(
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\nConnection: close\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    // A client that does not read its answer does not keep the socket.
    setTimeout(() => socket.destroy(), 1000).unref();
  };
  write();
}

/**
 * Errors Node raises before a request exists (a slow or oversized header, unparsable HTTP
 * such as a bad request line, bad header bytes or the HTTP/2 preface on this HTTP/1.1
 * port): the contract's JSON, then the connection is closed.
 */
export function renderClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return answerOnSocket(socket, new ImprintError('request_timeout', 'the request was not received in time'));
    case 'HPE_HEADER_OVERFLOW':
      return answerOnSocket(socket, new ImprintError('headers_too_large', 'request headers are too large'));
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return answerOnSocket(socket, new ImprintError('payload_too_large', 'chunk extensions are too large'));
    default:
      return answerOnSocket(socket, new ImprintError('bad_request', 'malformed HTTP request'));
  }
}

/**
 * A CONNECT request (Node hands over the bare socket, and without a listener drops it
 * unanswered): this server is no proxy.
 */
export function refuseConnect(_request: IncomingMessage, socket: Duplex): void {
  answerOnSocket(socket, new ImprintError('method_not_allowed', 'CONNECT is not supported: this server is not a proxy'));
}

/**
 * An Expect header other than 100-continue (Node answers those itself, and without a
 * listener answers the rest 417 with an empty body). RFC 9110 10.1.1 lets a server refuse
 * an expectation it cannot meet; the catalogue has no 417 code, so this is bad_request.
 */
export function refuseExpectation(_request: IncomingMessage, response: ServerResponse): void {
  const error = new ImprintError('bad_request', 'unsupported Expect header: only 100-continue is supported');
  const body = rawBody(error);
  response.writeHead(error.status, {
    connection: 'close',
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

const CLIENT_WENT_AWAY = new ImprintError('bad_request', 'the client closed the connection before the request was received');

/** Installs the error and not-found handlers on an app. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(function renderError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
    // A client that hung up mid-request (Node's "aborted", ECONNRESET) is no store outage
    // and no server fault: nothing to alert on, and no answer reaches it.
    const clientError = request.raw.destroyed && !request.raw.complete ? CLIENT_WENT_AWAY : toClientError(error);
    if (clientError.status >= 500) request.log.error({ err: error }, 'request failed');
    return sendError(reply, clientError);
  });
  app.setNotFoundHandler(function renderNotFound(request: FastifyRequest, reply: FastifyReply) {
    return sendError(reply, new ImprintError('not_found', `no route for ${request.method} ${request.url.split('?')[0]}`));
  });
}
