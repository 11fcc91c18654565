/**
 * Builds the Fastify app without starting it: the process entry listens, tests inject or
 * listen on port 0.
 */
import helmet from '@fastify/helmet';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { SecureContextOptions } from 'node:tls';
import type { AppServices } from '../instance.js';
import { installErrorHandling, renderFrameworkError } from './error-handler.js';
import { installValidation } from './validation.js';
import { adminRoutes } from './routes/admin-routes.js';
import { deviceRoutes } from './routes/device-routes.js';
import { publicRoutes } from './routes/public-routes.js';
import { revocationRoutes } from './routes/revocation-routes.js';

/** Request bodies are small JSON documents (DESIGN: at most 64 KiB). */
export const BODY_LIMIT_BYTES = 64 * 1024;

/** What the app is built from. */
export interface AppOptions {
  readonly services: AppServices;
  /** TLS material; without it the app serves plain HTTP (inject-only tests). */
  readonly tls?: { readonly certificateChainPem: string; readonly keyPem: string; readonly clientCaPem: readonly string[] } | undefined;
  readonly logger?: FastifyServerOptions['logger'];
}

/** TLS options: ask for a client certificate, verify it against our CA, never require it. */
function httpsOptions(tls: NonNullable<AppOptions['tls']>): SecureContextOptions & Record<string, unknown> {
  return {
    key: tls.keyPem,
    cert: tls.certificateChainPem,
    ca: [...tls.clientCaPem],
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  };
}

/** Builds the imprint HTTP API. */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: BODY_LIMIT_BYTES,
    // Per-request access lines cost more than the enrollment they describe; every
    // enrollment attempt is in the audit log, and failures are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    // OCSP GET requests carry the base64 request in the path.
    routerOptions: { maxParamLength: 2048 },
    // A URL that does not decode never reaches routing: answer it in the contract's shape too.
    frameworkErrors: renderFrameworkError,
    ...(options.tls ? { https: httpsOptions(options.tls) } : {}),
  }).withTypeProvider<TypeBoxTypeProvider>();

  installErrorHandling(app);
  installValidation(app);
  // Every body we take is JSON; a text/plain body is 415, not a schema error.
  app.removeContentTypeParser('text/plain');
  await app.register(helmet, { contentSecurityPolicy: false });
  await app.register(publicRoutes, { services: options.services });
  await app.register(deviceRoutes, { services: options.services });
  await app.register(adminRoutes, { services: options.services });
  await app.register(revocationRoutes, { services: options.services });
  return app as unknown as FastifyInstance;
}
