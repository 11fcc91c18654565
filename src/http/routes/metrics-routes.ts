/**
 * GET /metrics in the Prometheus text format: for operators (an admin client certificate)
 * on HTTPS, for anyone who can reach the plain-HTTP status listener.
 */
import type { FastifyPluginAsync } from 'fastify';
import { ImprintError } from '../../errors.js';
import type { SigningServices } from '../../instance.js';
import { ADMIN_ONLY, requireOperator } from '../authenticate.js';
import { metrics } from '../metrics.js';
import { errorResponses } from '../schemas.js';

export const metricsRoute: FastifyPluginAsync<{ services: SigningServices; operatorsOnly: boolean }> = async (app, { services, operatorsOnly }) => {
  if (operatorsOnly) app.decorateRequest('operator', undefined);
  app.get(
    '/metrics',
    {
      ...(operatorsOnly ? { onRequest: requireOperator(services, ADMIN_ONLY), config: { audit: 'metrics' as const } } : {}),
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        produces: ['text/plain'],
        response: { 200: { description: 'Prometheus text format', type: 'string' }, ...(operatorsOnly ? errorResponses(401, 403) : {}) },
      },
    },
    async (_request, reply) => {
      let text: string;
      try {
        text = await metrics().exposition();
      } catch (error) {
        // A worker that did not answer the gathering (one starting or dying): try again.
        throw new ImprintError('service_unavailable', (error as Error).message, { retryAfterSeconds: 1, cause: error });
      }
      return reply.type(metrics().contentType).header('cache-control', 'no-store').send(text);
    },
  );
};
