/**
 * One mapping from errors to HTTP: ImprintError by its code, framework and Node errors to
 * the matching contract code, anything unexpected to a 500 whose message stays in the log.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { OcspResponseStatus, ocspErrorResponse } from '../ca/ocsp.js';
import { ImprintError, type ErrorCode } from '../errors.js';
import { storeUnavailable } from '../store/failures.js';

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

/** Writes an error reply with the contract's body and headers. */
export function sendError(reply: FastifyReply, error: ImprintError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  const body: ErrorBody = { error: error.code, message: error.message };
  return reply.code(error.status).type('application/json; charset=utf-8').send(body);
}

/** Errors Fastify raises before routing (an undecodable URL); OCSP paths still get OCSP. */
export function renderFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (request.url.startsWith('/ocsp')) {
    void reply.code(200).type('application/ocsp-response').send(ocspErrorResponse(OcspResponseStatus.malformedRequest));
    return;
  }
  void sendError(reply, new ImprintError('bad_request', error.code === 'FST_ERR_BAD_URL' ? 'the URL does not decode' : 'malformed request'));
}

/**
 * Errors Node raises before a request exists (a slow or oversized header, unparsable HTTP):
 * the contract's JSON, then the connection is closed.
 */
export function renderClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const clientError =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new ImprintError('request_timeout', 'the request was not received in time')
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? new ImprintError('headers_too_large', 'request headers are too large')
        : new ImprintError('bad_request', 'malformed HTTP request');
  const body = JSON.stringify({ error: clientError.code, message: clientError.message } satisfies ErrorBody);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(
    `HTTP/1.1 ${clientError.status} ${STATUS_CODES[clientError.status]}\r\nConnection: close\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // A client that does not read its answer does not keep the socket.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** Installs the error and not-found handlers on an app. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(function renderError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
    const clientError = toClientError(error);
    if (clientError.status >= 500) request.log.error({ err: error }, 'request failed');
    return sendError(reply, clientError);
  });
  app.setNotFoundHandler(function renderNotFound(request: FastifyRequest, reply: FastifyReply) {
    return sendError(reply, new ImprintError('not_found', `no route for ${request.method} ${request.url.split('?')[0]}`));
  });
}
