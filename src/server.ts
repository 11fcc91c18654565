/**
 * `imprint serve`: opens (initialising on first run) a data directory and serves the API
 * on one HTTPS listener until SIGINT/SIGTERM.
 */
import type { FastifyInstance } from 'fastify';
import type { Server } from 'node:https';
import {
  caExists,
  caPaths,
  issueServerCertificate,
  loadServerIdentity,
  SERVER_RENEW_BEFORE_DAYS,
  type ServerIdentity,
} from './ca/ca-directory.js';
import { RevocationWatcher } from './enrollment/revocation-watcher.js';
import { buildApp } from './http/app.js';
import { ClientConnections } from './http/client-connections.js';
import type { Limits } from './http/limits.js';
import type { WindowCounters } from './http/window-counters.js';
import { initInstance, openInstance, serverNames, type InitOptions, type Instance } from './instance.js';

/** Options of `imprint serve`. */
export interface ServeOptions {
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly passphrase?: string | undefined;
  /** Used only when the data directory is empty and gets initialised. */
  readonly init?: InitOptions | undefined;
  readonly logger?: boolean | undefined;
  /** Rate limits, connection cap and timeouts; the defaults when absent. */
  readonly limits?: Limits | undefined;
  /** Where rate limits count; this process's own when absent. */
  readonly counters?: WindowCounters | undefined;
}

/** A running server. */
export interface RunningServer {
  readonly app: FastifyInstance;
  readonly instance: Instance;
  readonly url: string;
  readonly initialised: boolean;
  close(): Promise<void>;
}

/** The server's TLS identity, issued anew when missing or within 30 days of expiry. */
function serverIdentity(instance: Instance): ServerIdentity {
  const now = instance.clock.now();
  const current = loadServerIdentity(instance.dataDir);
  if (current && current.notAfter.getTime() - now.getTime() > SERVER_RENEW_BEFORE_DAYS * 86_400_000) return current;
  return issueServerCertificate(instance.dataDir, instance.signing().ca.material, serverNames(instance.settings), now);
}

/** Starts serving; resolves once the listener is up. */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const initialised = !caExists(options.dataDir);
  if (initialised) {
    await initInstance(options.dataDir, { port: options.port, ...options.init, passphrase: options.passphrase });
  }
  const instance = await openInstance(options.dataDir, { passphrase: options.passphrase, backgroundCheckpoints: true });
  let watcher: RevocationWatcher | undefined;
  try {
    const services = { ...instance.signing(), tokens: instance.tokens, fleet: instance.fleet, audit: instance.audit };
    const identity = serverIdentity(instance);
    const app = await buildApp({
      services,
      tls: { ...identity, clientCaPem: services.ca.chainPem },
      logger: options.logger ? { level: 'info' } : false,
      limits: options.limits,
      counters: options.counters,
    });
    const connections = new ClientConnections(app.server as Server);
    watcher = new RevocationWatcher(
      instance.store,
      (serials) => {
        const closed = connections.closeAll(serials);
        if (closed) app.log.info({ closed, revoked: serials.length }, 'closed connections of revoked certificates');
      },
      (error) => app.log.error({ err: error }, 'revocation watch failed'),
    );
    await watcher.start();
    await app.listen({ host: options.host, port: options.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    return {
      app,
      instance,
      url: `https://${host}:${port}`,
      initialised,
      async close() {
        watcher?.stop();
        await app.close();
        await instance.close();
      },
    };
  } catch (error) {
    watcher?.stop();
    await instance.close();
    throw error;
  }
}

/** The start-up banner: where the trust anchor is and how to enroll a first device. */
export function banner(server: { readonly url: string; readonly dataDir: string; readonly initialised: boolean }, cli: string): string {
  const root = caPaths(server.dataDir).root;
  const data = server.dataDir;
  return [
    `imprint ${server.initialised ? 'initialised a new CA and ' : ''}is serving on ${server.url}`,
    `  data directory: ${data}`,
    `  root CA (flash onto devices): ${root}`,
    '',
    'Mint a token:',
    `  ${cli} tokens create --data ${data} --count 1 --ttl 1d`,
    'Enroll a simulated device with it:',
    `  npm run simulate -- --url ${server.url} --ca ${root} --token <imp_...> --device-id sensor-001 --state /tmp/sensor-001`,
  ].join('\n');
}
