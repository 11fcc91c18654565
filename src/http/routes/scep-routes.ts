/**
 * SCEP (RFC 8894) at /scep, on the HTTPS listener and on the plain-HTTP status listener:
 * SCEP protects its own messages (signed, and encrypted to the RA), and many SCEP clients
 * only speak http://. A thin protocol skin: the operation is a query parameter (RFC 8894
 * 4.1), PKIOperation hands the message to the SCEP service, which enrolls or renews
 * through the same enrollment service as /v1/enroll and /v1/renew.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '../json-schema.js';
import { ScepMessageError } from '../../ca/scep-message.js';
import { ImprintError } from '../../errors.js';
import type { AppServices } from '../../instance.js';
import { enrollRouteLimits, rateLimited, registerRateLimits, TOKEN_FAILURES } from '../enroll-limits.js';
import { FailureBudget } from '../failure-budget.js';
import { BODY_LIMITS, type Limits } from '../limits.js';
import { errorResponses } from '../schemas.js';
import type { WindowCounters } from '../window-counters.js';

/** The SCEP path. */
export const SCEP_PATH = '/scep';

/**
 * GetCACaps (RFC 8894 3.5.2): one capability per line. We read SHA-1 and DES too (what
 * Debian's scepclient sends whatever we say), but announce only what we would choose.
 */
const CA_CAPS = ['POSTPKIOperation', 'SHA-256', 'AES', 'SCEPStandard', 'Renewal'].join('\n') + '\n';

/** The SCEP body type (RFC 8894 4.3), and the generic one some clients send instead. */
const PKI_MESSAGE_TYPES = ['application/x-pki-message', 'application/octet-stream'];

/** A pkiMessage is at most the request body cap, also base64 in a GET query. */
const MAX_MESSAGE_BYTES = BODY_LIMITS.csr;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

const QuerySchema = Type.Object({
  operation: Type.String({ minLength: 1, maxLength: 64 }),
  message: Type.Optional(Type.String({ maxLength: Math.ceil((MAX_MESSAGE_BYTES * 4) / 3) + 4 })),
});

const isPkiOperation = (request: FastifyRequest): boolean => (request.query as { operation?: string } | undefined)?.operation === 'PKIOperation';

/**
 * The DER of a PKIOperation: the POST body (RFC 8894 4.3), or the base64 `message`
 * parameter of a GET (4.2.1.3), whose '+' a form decoder may have turned into spaces.
 */
function pkiMessage(request: FastifyRequest): Buffer {
  if (request.method === 'POST') {
    if (!Buffer.isBuffer(request.body)) {
      throw new ImprintError('unsupported_media_type', `send the message as ${PKI_MESSAGE_TYPES[0]}`);
    }
    return request.body;
  }
  const text = ((request.query as { message?: string }).message ?? '').replace(/ /g, '+').replace(/\s+/g, '');
  if (!text || !BASE64.test(text) || text.length % 4 !== 0) throw new ImprintError('bad_request', 'message must be a base64 pkiMessage');
  return Buffer.from(text, 'base64');
}

/** The SCEP endpoint; a plugin of its own so that its body parsers stay its own. */
export const scepRoutes: FastifyPluginAsyncTypebox<{ services: AppServices; limits: Limits; counters: WindowCounters }> = async (
  app,
  { services, limits, counters },
) => {
  for (const type of PKI_MESSAGE_TYPES) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: MAX_MESSAGE_BYTES }, (_request, body, done) => done(null, body));
  }
  // The plain-HTTP status listener has no rate-limit plugin of its own: SCEP brings it,
  // counting in the same counters, so both listeners share one enroll budget per source.
  if (!app.hasDecorator('rateLimit')) await registerRateLimits(app, counters);

  // The enroll guards of /v1/enroll, applied to PKIOperation only: GetCACaps and GetCACert
  // are public reads a client makes before each enrollment.
  const guards = enrollRouteLimits(limits, counters);
  const budget = limits.failedTokensPerMinute === null ? undefined : new FailureBudget(limits.failedTokensPerMinute, counters);
  // Reading a message costs milliseconds of CPU (pkijs, RSA) before it can be refused, and
  // anyone may send the same refused message again and again: refusals a sender can make
  // at will (an unreadable message, a signer that is not the CSR's key, a CSR or signer we
  // do not take) spend a budget of their own per source, at the refused-token rate. A
  // renewal signed by a certificate we issued is refused for that device's own state
  // (revoked, superseded, renewed too often): it spends nothing of its address's budgets,
  // which a factory line behind one NAT shares.
  const refusedMessages = limits.failedTokensPerMinute === null ? undefined : new FailureBudget(limits.failedTokensPerMinute, counters, 'scep-refused');
  const refuseOverBudget = guards.onRequest as ((request: FastifyRequest, reply: FastifyReply) => Promise<void>) | undefined;
  const rateLimitConfig = (guards.config as { rateLimit?: object } | undefined)?.rateLimit;
  const options = {
    config: {
      // The log line and metrics of a PKIOperation (see scepOperation) name the protocol.
      protocol: 'scep',
      ...(rateLimitConfig ? { rateLimit: { ...rateLimitConfig, allowList: (request: FastifyRequest) => !isPkiOperation(request) } } : {}),
    },
    ...(refuseOverBudget && refusedMessages
      ? {
          onRequest: async function scepFailureBudget(request: FastifyRequest, reply: FastifyReply) {
            if (!isPkiOperation(request)) return;
            await refuseOverBudget(request, reply);
            const wait = await refusedMessages.admit(request.ip, reply.raw);
            if (wait > 0) throw rateLimited('refused SCEP messages', wait);
          },
        }
      : {}),
    bodyLimit: MAX_MESSAGE_BYTES,
    schema: {
      querystring: QuerySchema,
      response: {
        // For the OpenAPI document: the body depends on the operation (RFC 8894 4.2, 4.3, 4.5).
        200: {
          type: 'string',
          format: 'binary',
          description:
            'GetCACaps: text/plain capabilities; GetCACert: application/x-x509-ca-ra-cert (degenerate PKCS#7: RA, issuing CA, root); ' +
            'PKIOperation: application/x-pki-message (a CertRep, SUCCESS or FAILURE with failInfo)',
        },
        ...errorResponses(400, 413, 415, 429),
      },
    },
  };

  // A PKIOperation is an enrollment for the log line and metrics until its message says it
  // renews; GetCACaps and GetCACert write no line. A plugin-level hook, so that it runs
  // before the route's rate limit and failure budget, whose refusals are enrollments too.
  app.addHook('onRequest', async function scepOperation(request: FastifyRequest) {
    if (isPkiOperation(request)) request.auditOperation = 'enroll';
  });

  async function scep(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { operation } = request.query as { operation: string };
    switch (operation) {
      case 'GetCACaps':
        reply.code(200).type('text/plain; charset=utf-8').send(CA_CAPS);
        return;
      case 'GetCACert':
        // RFC 8894 4.2.1.2: with an RA, a degenerate PKCS#7 of the RA and CA certificates.
        reply.code(200).type('application/x-x509-ca-ra-cert').send(services.scep.caCertificates());
        return;
      case 'PKIOperation': {
        const message = pkiMessage(request);
        let answer;
        try {
          answer = await services.scep.pkiOperation(message, request.ip);
        } catch (error) {
          if (!(error instanceof ScepMessageError)) throw error;
          await refusedMessages?.recordFailure(request.ip);
          throw new ImprintError('bad_request', `not a SCEP pkiMessage: ${error.message}`);
        }
        // RFC 8894 answers refusals 200 too: the log line and metrics learn them from the service.
        request.auditOperation = answer.operation ?? 'enroll';
        request.audit = { ...answer.subject };
        request.errorCode = answer.refusal;
        if (answer.refusal !== undefined && TOKEN_FAILURES.has(answer.refusal)) await budget?.recordFailure(request.ip);
        else if (answer.refusal !== undefined && !answer.signedByOurs) await refusedMessages?.recordFailure(request.ip);
        // RFC 8894 3.3.2: a refusal is a CertRep with pkiStatus FAILURE, answered 200.
        reply.code(200).type('application/x-pki-message').send(answer.certRep);
        return;
      }
      default:
        throw new ImprintError('bad_request', `unknown SCEP operation ${JSON.stringify(operation.slice(0, 64))}`);
    }
  }

  app.get(SCEP_PATH, options, scep);
  app.post(SCEP_PATH, options, scep);
};
