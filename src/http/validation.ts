/**
 * Request validation. A JSON body is validated as sent: no type coercion (a number is not
 * a CSR) and no silently dropped fields. Query strings and path parameters arrive as text,
 * so there numbers and booleans are coerced from their string form. Before any of that,
 * every request on every listener passes the same checks of what HTTP itself must refuse.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { refuseMalformedRequest } from './error-handler.js';

/** Installs the two-validator compiler on an app. */
export function installValidation(app: FastifyInstance): void {
  const bodies = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false });
  const text = new Ajv({ coerceTypes: 'array', removeAdditional: false, useDefaults: true, allErrors: false });
  app.setValidatorCompiler(function compileValidator({ schema, httpPart }): ValidateFunction {
    return (httpPart === 'body' ? bodies : text).compile(schema);
  });
}

/** C0 controls and DEL: never part of a name, label, search or cursor; a NUL would cut a string short in C code below us. */
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * RFC 9112 3.2's Host: uri-host [ ":" port ] (RFC 3986 3.2.2), possibly empty. Node's
 * parser has already refused control characters; this refuses the rest of what no host is.
 */
const HOST_HEADER = /^(?:\[[0-9A-Za-z:._~!$&'()*+,;=-]+\]|[0-9A-Za-z._~!$&'()*+,;=%-]*)(?::[0-9]*)?$/;

/** What is wrong with a request's Host header, if anything. */
function hostProblem(request: FastifyRequest): string | undefined {
  const raw = request.raw;
  let hosts = 0;
  for (let i = 0; i < raw.rawHeaders.length; i += 2) if (raw.rawHeaders[i]!.toLowerCase() === 'host') hosts++;
  // RFC 9112 3.2: an HTTP/1.1 request without Host, or any request with more than one
  // or with an invalid one, MUST be answered 400. Node would answer a missing one with an
  // empty 400 of its own (requireHostHeader), so the listeners leave that check to us.
  if (hosts === 0) return raw.httpVersionMajor === 1 && raw.httpVersionMinor === 0 ? undefined : 'the request has no Host header';
  if (hosts > 1) return 'the request has more than one Host header';
  return HOST_HEADER.test(raw.headers.host ?? '') ? undefined : 'the Host header is not a host name';
}

/** The first query parameter (name or value) holding a control character, if any. */
function controlInQuery(query: unknown): string | undefined {
  if (query === null || typeof query !== 'object') return undefined;
  for (const [name, value] of Object.entries(query as Record<string, unknown>)) {
    const values = Array.isArray(value) ? value : [value];
    if (CONTROL_CHARACTER.test(name) || values.some((each) => typeof each === 'string' && CONTROL_CHARACTER.test(each))) {
      return CONTROL_CHARACTER.test(name) ? 'a query parameter name' : `query parameter "${name.slice(0, 64)}"`;
    }
  }
  return undefined;
}

/**
 * Installs the checks every request passes on every listener, once for all routes: a
 * Host header as HTTP/1.1 requires, and no control character in any query parameter
 * (decoded), so none reaches a route, a pattern or the store.
 */
export function installRequestChecks(app: FastifyInstance): void {
  app.addHook('preValidation', async function refuseMalformedRequests(request: FastifyRequest, reply: FastifyReply) {
    const host = hostProblem(request);
    if (host) {
      reply.header('connection', 'close');
      return refuseMalformedRequest(request, reply, host);
    }
    const control = controlInQuery(request.query);
    if (control) return refuseMalformedRequest(request, reply, `${control} holds a control character`);
    return undefined;
  });
}
