/**
 * Devices reconnecting under load, with one Node client for imprint and nginx alike. Each
 * request is GET /v1/device with the device's certificate (in TLS 1.3 the server checks a
 * client certificate only once the client sends data, so a connection without a request
 * would measure half a handshake). Three ways to connect:
 *
 *   new      every request a new connection and a full handshake, no session offered;
 *   resumed  every request a new connection resuming the device's last session (a TLS 1.3
 *            ticket, got once before the clock starts and replaced by each newer one, as a
 *            device keeps its last ticket); how many really resumed is counted;
 *   kept     kept-alive connections, one per device.
 */
import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { ClientIdentity } from '../simulator/client.js';
import { phaseReport, runBounded, type PhaseReport } from '../simulator/load.js';
import { readBody } from '../simulator/read-body.js';

export type MtlsMode = 'new' | 'resumed' | 'kept';

/** A load's figures and how many of its connections resumed a session. */
export interface MtlsReport extends PhaseReport {
  readonly resumed: number;
}

/** GET /v1/device through `agent`; resolves with whether its connection resumed a session. */
function getDevice(url: string, agent: Agent): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/device`, { agent, timeout: 30_000 }, (res) => {
      const reused = (res.socket as TLSSocket).isSessionReused();
      readBody(res).then(() => (res.statusCode === 200 ? resolve(reused) : reject(new Error(`GET /v1/device answered ${res.statusCode}`))), reject);
    });
    req.on('timeout', () => req.destroy(new Error('GET /v1/device: no answer within 30 s')));
    req.on('error', reject);
    req.end();
  });
}

/** Agents per device: the session cache and keep-alive decide the mode. */
function agentFor(identity: ClientIdentity, caPem: string, mode: MtlsMode): Agent {
  return new Agent({ keepAlive: mode === 'kept', ca: caPem, cert: identity.certificatePem, key: identity.keyPem, maxCachedSessions: mode === 'resumed' ? 1 : 0 });
}

/** Up to `count` requests at `concurrency` for at most `seconds`, spread over the devices. */
export async function mtlsLoad(options: {
  readonly url: string;
  readonly caPem: string;
  readonly identities: readonly ClientIdentity[];
  readonly mode: MtlsMode;
  readonly count: number;
  readonly concurrency: number;
  readonly seconds: number;
}): Promise<MtlsReport> {
  const agents = options.identities.map((identity) => agentFor(identity, options.caPem, options.mode));
  try {
    // The devices' earlier sessions: one full handshake each, not measured.
    if (options.mode === 'resumed') await Promise.all(agents.map((agent) => getDevice(options.url, agent)));
    let resumed = 0;
    const deadline = new Date(Date.now() + options.seconds * 1000);
    const { results, seconds } = await runBounded(
      options.count,
      options.concurrency,
      deadline,
      async (index) => {
        const started = performance.now();
        if (await getDevice(options.url, agents[index % agents.length]!)) resumed++;
        return { ms: performance.now() - started };
      },
      () => undefined,
    );
    return { ...phaseReport(results, seconds), resumed };
  } finally {
    for (const agent of agents) agent.destroy();
  }
}
