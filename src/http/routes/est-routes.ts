/**
 * EST, Enrollment over Secure Transport (RFC 7030 with the RFC 8951 clarifications), under
 * /.well-known/est/ and /.well-known/est/<label>/. A thin protocol skin: simpleenroll and
 * simplereenroll call the same enrollment service as /v1/enroll and /v1/renew, so the
 * one-time, retry, key and identity rules are the same; only the encodings and the status
 * codes are EST's.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '../json-schema.js';
import { base64Lines, certsOnlyCms, csrAttributes } from '../../ca/cms.js';
import { certificatesFromPem } from '../../ca/pem.js';
import { ImprintError, type ErrorCode } from '../../errors.js';
import type { AppServices } from '../../instance.js';
import { deviceOf, requireDevice } from '../authenticate.js';
import { renewRateKey } from './device-routes.js';
import { enrollRouteLimits } from '../enroll-limits.js';
import { recordRefusal, toClientError, type ErrorBody } from '../error-handler.js';
import { BODY_LIMITS, type Limits } from '../limits.js';
import { errorResponses } from '../schemas.js';
import type { WindowCounters } from '../window-counters.js';
import { bearerToken } from './public-routes.js';

/** The EST path prefix (RFC 7030 3.2.2). */
export const EST_PREFIX = '/.well-known/est';

/** The challenge a 401 carries (RFC 7030 3.2.3: the token is the HTTP Basic password). */
const BASIC_CHALLENGE = 'Basic realm="imprint"';

/** Refusals that mean "no or bad credentials": RFC 7030 3.2.3 answers them 401 with a challenge. */
const CREDENTIAL_FAILURES: ReadonlySet<ErrorCode> = new Set(['token_missing', 'token_invalid', 'token_expired', 'token_revoked', 'token_used']);

/**
 * Policy refusals of an authenticated request: RFC 7030 4.2.3 allows any 4xx, and 403
 * says "we know who you are, and the answer is no" (imprint's JSON API uses 409 for some).
 */
const POLICY_REFUSALS: ReadonlySet<ErrorCode> = new Set(['csr_subject_mismatch', 'device_exists', 'device_revoked', 'key_reused', 'forbidden']);

/** An EST label: the token label pattern (printable ASCII, 1-64) as a path segment. */
const LABEL_PATTERN = /^[\x21-\x7e][\x20-\x7e]{0,63}$/;

const LabelParamsSchema = Type.Object({ label: Type.String({ minLength: 1, maxLength: 64 }) });

/**
 * The bootstrap token of an EST request: the HTTP Basic password (RFC 7617; the user name
 * is not checked, since many clients insist on one: the token alone authorizes), or a
 * Bearer token as on /v1/enroll.
 */
export function estToken(header: string | undefined): string | undefined {
  const basic = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header ?? '');
  if (!basic) return bearerToken(header);
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1) || undefined;
}

/**
 * The CSR text of an `application/pkcs10` body: base64 DER, whose line breaks (and any
 * other whitespace) RFC 8951 3.1 tells the server to tolerate. PEM passes as is: the CSR
 * reader accepts both.
 */
function csrText(body: unknown): string {
  if (!Buffer.isBuffer(body)) throw new ImprintError('unsupported_media_type', 'send the CSR as application/pkcs10 (base64 DER)');
  const text = body.toString('latin1');
  return text.trimStart().startsWith('-----') ? text : text.replace(/\s+/g, '');
}

/**
 * Sends DER base64 encoded, as EST bodies are (RFC 7030 4.1.3, 4.2.3, 4.5.2; RFC 8951 3.2).
 * No response schema describes it, so the typed reply is widened here.
 */
function sendBase64(reply: FastifyReply, contentType: string, der: Buffer): FastifyReply {
  return (reply as FastifyReply).code(200).header('content-transfer-encoding', 'base64').type(contentType).send(base64Lines(der));
}

/**
 * Renders an EST refusal: imprint's JSON error body with the status RFC 7030 expects (401
 * with a Basic challenge for credentials, 400 for a bad CSR, 403 for policy).
 */
function renderEstError(this: unknown, error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  let clientError = toClientError(error);
  if (clientError.code === 'unsupported_media_type') {
    clientError = new ImprintError('unsupported_media_type', 'unsupported Content-Type; send application/pkcs10 (base64 DER)');
  }
  if (clientError.code === 'token_missing') {
    clientError = new ImprintError('token_missing', 'send the bootstrap token as the HTTP Basic password or as Authorization: Bearer');
  }
  let status = clientError.status;
  if (CREDENTIAL_FAILURES.has(clientError.code)) {
    status = 401;
    reply.header('www-authenticate', BASIC_CHALLENGE);
  } else if (POLICY_REFUSALS.has(clientError.code)) {
    status = 403;
  }
  if (status >= 500) request.log.error({ err: error }, 'request failed');
  if (clientError.retryAfterSeconds !== undefined) reply.header('retry-after', String(clientError.retryAfterSeconds));
  recordRefusal(reply, clientError);
  const body: ErrorBody = { error: clientError.code, message: clientError.message };
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/** The EST endpoints; registered as their own plugin so their error rendering stays theirs. */
export const estRoutes: FastifyPluginAsyncTypebox<{ services: AppServices; limits: Limits; counters: WindowCounters }> = async (
  app,
  { services, limits, counters },
) => {
  // RFC 7030 4.2.1: the CSR is application/pkcs10. Read as bytes with the same cap as
  // /v1/enroll, enforced by Fastify before our code sees the body.
  app.addContentTypeParser('application/pkcs10', { parseAs: 'buffer', bodyLimit: BODY_LIMITS.csr }, (_request, body, done) => done(null, body));
  app.setErrorHandler(renderEstError);

  /**
   * RFC 7030 3.2.2's optional label, here a token batch label (a factory line). Only its
   * form is checked here, so the public routes do not tell which batches exist; an
   * enrollment must come with a token of that very batch (the enrollment service checks).
   */
  async function checkedLabel(request: FastifyRequest): Promise<string | undefined> {
    const label = (request.params as { label?: string }).label;
    if (label === undefined) return undefined;
    if (LABEL_PATTERN.test(label)) return label;
    throw new ImprintError('not_found', 'no such EST label');
  }

  let caCerts: Buffer | undefined;
  const csrAttrs = csrAttributes();
  const enrollLimits = enrollRouteLimits(limits, counters);
  const renewLimits = limits.renewPerMinute === null ? {} : { config: { rateLimit: { max: limits.renewPerMinute, timeWindow: 60_000, keyGenerator: renewRateKey } } };
  /** The bodies EST answers with, for the OpenAPI document (RFC 7030 4.1.3, 4.2.3, 4.5.2). */
  const base64Body = (description: string) => ({ 200: { type: 'string', contentEncoding: 'base64', description } as const });

  for (const [prefix, params] of [
    [EST_PREFIX, undefined],
    [`${EST_PREFIX}/:label`, LabelParamsSchema],
  ] as const) {
    const paramsSchema = params ? { params } : {};

    // RFC 7030 4.1: the CA certificates a client should trust, issuing CA then root.
    app.get(`${prefix}/cacerts`, { schema: { ...paramsSchema, response: { ...base64Body('application/pkcs7-mime: certs-only CMS, issuing CA and root'), ...errorResponses(404) } } }, async (request, reply) => {
      await checkedLabel(request);
      caCerts ??= certsOnlyCms([services.ca.material.issuer.der, services.ca.material.root.der]);
      return sendBase64(reply, 'application/pkcs7-mime', caCerts);
    });

    // RFC 7030 4.5: what a CSR should look like.
    app.get(`${prefix}/csrattrs`, { schema: { ...paramsSchema, response: { ...base64Body('application/csrattrs'), ...errorResponses(404) } } }, async (request, reply) => {
      await checkedLabel(request);
      return sendBase64(reply, 'application/csrattrs', csrAttrs);
    });

    // RFC 7030 4.2.1: enrollment with the bootstrap token; answered 200 with the certificate
    // alone (4.2.3), also when a retry gets the certificate already issued.
    app.post(
      `${prefix}/simpleenroll`,
      {
        ...enrollLimits,
        config: { ...enrollLimits.config, audit: 'enroll', protocol: 'est' },
        bodyLimit: BODY_LIMITS.csr,
        schema: { ...paramsSchema, response: { ...base64Body('application/pkcs7-mime: certs-only CMS, the device certificate'), ...errorResponses(400, 401, 403, 404, 413, 415) } },
      },
      async (request, reply) => {
        const label = await checkedLabel(request);
        const outcome = await services.enrollment.enroll({
          token: estToken(request.headers.authorization),
          csr: csrText(request.body),
          source: request.ip,
          via: { protocol: 'est', label },
        });
        request.audit = { deviceId: outcome.result.deviceId, serial: outcome.result.serial, tokenId: outcome.tokenId };
        return sendBase64(reply, 'application/pkcs7-mime; smime-type=certs-only', certsOnlyCms(certificatesFromPem(outcome.result.certificate)));
      },
    );

    // RFC 7030 4.2.2: re-enrollment authenticated by the current certificate over TLS.
    // The CSR's subject must be the certificate's: the renewal service checks the CN.
    app.post(
      `${prefix}/simplereenroll`,
      {
        ...renewLimits,
        config: { ...renewLimits.config, audit: 'renew', protocol: 'est' },
        bodyLimit: BODY_LIMITS.csr,
        onRequest: requireDevice(services, { renewing: true }),
        schema: { ...paramsSchema, response: { ...base64Body('application/pkcs7-mime: certs-only CMS, the new certificate'), ...errorResponses(400, 401, 403, 404, 413, 415) } },
      },
      async (request, reply) => {
        await checkedLabel(request);
        const identity = deviceOf(request);
        request.audit = { deviceId: identity.deviceId };
        const result = await services.enrollment.renew(identity, { csr: csrText(request.body), source: request.ip });
        request.audit.serial = result.serial;
        return sendBase64(reply, 'application/pkcs7-mime; smime-type=certs-only', certsOnlyCms(certificatesFromPem(result.certificate)));
      },
    );
  }
};
