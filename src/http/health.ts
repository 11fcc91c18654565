/**
 * Health for orchestrators, on every listener: /livez (the process answers), /readyz (it
 * can do its job: the store answers a query, the CA key is loaded, the listener is up, and
 * it is not shutting down), and /healthz, kept for existing probes (same as /livez).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from './json-schema.js';
import { VERSION } from '../version.js';

/** What readiness asks of the rest of the server. */
export interface ReadinessProbes {
  /** Resolves when the store answers a query. */
  store?: (() => Promise<unknown>) | undefined;
  /** True when the issuing CA key is loaded (the server can sign). */
  caKeyLoaded?: (() => boolean) | undefined;
}

/** A store that does not answer within this long is not ready. */
const STORE_PROBE_TIMEOUT_MS = 2_000;

const LiveSchema = Type.Object({ status: Type.Literal('ok') });
const ReadySchema = Type.Object({
  status: Type.Literal('ready'),
  version: Type.String(),
  checks: Type.Object({ store: Type.String(), ca: Type.String(), listener: Type.String() }),
});
const NotReadySchema = Type.Object({ status: Type.Literal('not_ready'), reason: Type.String() });

/** Runs `probe` with a time limit; resolves with the failure's sentence, or undefined when it answered. */
async function storeProblem(probe: () => Promise<unknown>): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${STORE_PROBE_TIMEOUT_MS} ms`)), STORE_PROBE_TIMEOUT_MS);
      }),
    ]);
    return undefined;
  } catch (error) {
    return `store: ${(error as Error)?.message ?? String(error)}`;
  } finally {
    clearTimeout(timer);
  }
}

/** Adds /livez, /healthz and /readyz to an app. */
export function installHealth(app: FastifyInstance, probes: ReadinessProbes): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  const live = { schema: { tags: ['health'], response: { 200: LiveSchema } } };
  app.get('/livez', live, async () => ({ status: 'ok' as const }));
  app.get('/healthz', live, async () => ({ status: 'ok' as const }));

  app.get(
    '/readyz',
    { schema: { tags: ['health'], response: { 200: ReadySchema, 503: NotReadySchema } } },
    async function readiness(_request, reply: FastifyReply) {
      const notReady = (reason: string) => reply.code(503).header('cache-control', 'no-store').send({ status: 'not_ready', reason });
      if (closing) return notReady('shutting down');
      if (!app.server.listening) return notReady('listener: not listening');
      if (probes.caKeyLoaded && !probes.caKeyLoaded()) return notReady('ca: the issuing CA key is not loaded');
      const store = probes.store && (await storeProblem(probes.store));
      if (store) return notReady(store);
      return reply.header('cache-control', 'no-store').send({
        status: 'ready',
        version: VERSION,
        checks: { store: probes.store ? 'ok' : 'not checked', ca: probes.caKeyLoaded ? 'ok' : 'not checked', listener: 'ok' },
      });
    },
  );
}
