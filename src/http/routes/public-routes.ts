/** Routes anyone may call: the CA chain, enrollment with a bootstrap token (health is in health.ts). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '../json-schema.js';
import type { SigningServices } from '../../instance.js';
import { enrollRouteLimits } from '../enroll-limits.js';
import { BODY_LIMITS, type Limits } from '../limits.js';
import type { WindowCounters } from '../window-counters.js';
import { CsrBodySchema, EnrollmentResultSchema, errorResponses } from '../schemas.js';

/** The bearer token of an Authorization header, or undefined when there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

export const publicRoutes: FastifyPluginAsyncTypebox<{ services: SigningServices; limits: Limits; counters: WindowCounters }> = async (app, { services, limits, counters }) => {
  app.get(
    '/v1/ca',
    {
      schema: {
        summary: 'The CA chain: issuing CA then root, PEM',
        produces: ['application/pem-certificate-chain'],
        response: { 200: Type.String({ description: 'PEM certificates, issuing CA first' }) },
      },
    },
    async (_request, reply) =>
    reply.type('application/pem-certificate-chain').send(services.ca.chainPem.join('')),
  );

  const guards = enrollRouteLimits(limits, counters);
  app.post(
    '/v1/enroll',
    {
      ...guards,
      config: { ...guards.config, audit: 'enroll' },
      bodyLimit: BODY_LIMITS.csr,
      schema: {
        body: CsrBodySchema,
        response: { 200: EnrollmentResultSchema, 201: EnrollmentResultSchema, ...errorResponses(400, 401, 403, 409, 413, 415, 429) },
      },
    },
    async (request, reply) => {
      const outcome = await services.enrollment.enroll({
        token: bearerToken(request.headers.authorization),
        csr: request.body.csr,
        source: request.ip,
      });
      request.audit = { deviceId: outcome.result.deviceId, serial: outcome.result.serial, tokenId: outcome.tokenId };
      return reply.code(outcome.created ? 201 : 200).send(outcome.result);
    },
  );
};
