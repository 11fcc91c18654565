/**
 * Status for relying parties: CRLs (RFC 5280) and the OCSP responder (RFC 6960). The
 * OCSP routes speak OCSP even when refusing: an unreadable request gets malformedRequest.
 */
import { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { crlDer, type SignedCrl } from '../../ca/crl.js';
import { OcspResponseStatus, ocspErrorResponse } from '../../ca/ocsp.js';
import { MAX_OCSP_REQUEST_BYTES } from '../../enrollment/ocsp-service.js';
import type { AppServices } from '../../instance.js';
import { decodeOcspPath, OCSP_CACHE_CONTROL, OCSP_RESPONSE_TYPE, OCSP_ROUTES, ocspFailure } from '../ocsp-http.js';

/** A binary body, for the OpenAPI document. */
const binary = (description: string) => ({ type: 'string', format: 'binary', description }) as const;
const OCSP_SCHEMA = { tags: ['revocation'], response: { 200: binary('application/ocsp-response: DER OCSPResponse (RFC 6960), malformedRequest for a request it cannot read') } };

const sendOcsp = (reply: FastifyReply, der: Buffer) => reply.type(OCSP_RESPONSE_TYPE).header('cache-control', OCSP_CACHE_CONTROL).send(der);

/** OCSP endpoints, in their own context so their parsing and errors stay OCSP. */
const ocspRoutes: FastifyPluginAsync<{ services: AppServices }> = async (app, { services }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_OCSP_REQUEST_BYTES }, (_request, body, done) => done(null, body));
  app.setErrorHandler(function ocspError(error, request, reply) {
    const failure = ocspFailure(error);
    if (failure.ours) request.log.error({ err: error }, 'OCSP request failed');
    return sendOcsp(reply, failure.der);
  });

  app.post(OCSP_ROUTES.post, { schema: { ...OCSP_SCHEMA, summary: 'OCSP over POST (application/ocsp-request)' } }, async (request, reply) => {
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    return sendOcsp(reply, await services.ocsp.respond(body));
  });

  app.get(OCSP_ROUTES.get, { schema: { ...OCSP_SCHEMA, summary: 'OCSP over GET: the URL-encoded base64 DER request in the path (RFC 6960 A.1)' } }, async (request, reply) => {
    const der = decodeOcspPath((request.params as { '*': string })['*']);
    return sendOcsp(reply, der ? await services.ocsp.respond(der) : ocspErrorResponse(OcspResponseStatus.malformedRequest));
  });
};

/**
 * A CRL is written in pieces of this size as the socket drains. Written whole, TLS encrypts
 * all of it at once into a buffer of its own: a 36 MB CRL cost ~70 ms of CPU and 36 MB more
 * per answer in flight; in 1 MB pieces ~25 ms and 1 MB (64 KB pieces: ~35 ms).
 */
const CRL_PIECE_BYTES = 1024 * 1024;

function* piecesOf(crl: SignedCrl): Generator<Buffer> {
  for (const part of crl.parts) {
    for (let at = 0; at < part.length; at += CRL_PIECE_BYTES) yield part.subarray(at, at + CRL_PIECE_BYTES);
  }
}

/** Answers with `crl`, the CRL held: in one buffer when small, else its parts a piece at a time (never copied). */
function sendCrl(reply: FastifyReply, crl: SignedCrl): FastifyReply {
  reply.type('application/pkix-crl');
  if (crl.length <= CRL_PIECE_BYTES) return reply.send(crlDer(crl));
  return reply.header('content-length', crl.length).send(Readable.from(piecesOf(crl)));
}

export const revocationRoutes: FastifyPluginAsync<{ services: AppServices }> = async (app, { services }) => {
  const crl = (summary: string) => ({ schema: { tags: ['revocation'], summary, response: { 200: binary('application/pkix-crl: DER CRL') } } });
  app.get('/crl', crl("The issuing CA's CRL"), async (_request, reply) => sendCrl(reply, await services.crls.issuerCrl()));
  app.get('/crl/root', crl("The root's CRL (not_found when the root key is not held here)"), async (_request, reply) => sendCrl(reply, await services.crls.rootCrl()));
  await app.register(ocspRoutes, { services });
};
