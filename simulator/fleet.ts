/**
 * Fleet mode: many devices enroll at once, then reconnect over mutual TLS. It is also the
 * load generator for the benchmarks, so keys and CSRs are made before the clock starts
 * and the work is bounded by the token count and a deadline.
 */
import { Agent } from 'node:https';
import { ImprintClient, type ClientIdentity } from './client.js';
import { phaseReport, runBounded, type PhaseReport } from './load.js';
import { enrollmentProtocol, type Protocol } from './protocols.js';

/** One row of a `tokens create --format csv` batch. */
export interface FleetToken {
  readonly token: string;
  readonly deviceId: string | null;
}

/** Parses `id,token,deviceId,expiresAt` CSV as written by `imprint tokens create --format csv`. */
export function parseTokenCsv(text: string): FleetToken[] {
  const [header, ...rows] = text.split(/\r?\n/).filter((line) => line.trim());
  const columns = (header ?? '').split(',');
  const tokenColumn = columns.indexOf('token');
  const deviceColumn = columns.indexOf('deviceId');
  if (tokenColumn < 0) throw new Error('token file needs a header with a "token" column');
  return rows.map((row) => {
    const cells = row.split(',');
    return { token: cells[tokenColumn]!, deviceId: (deviceColumn >= 0 && cells[deviceColumn]) || null };
  });
}

/** What a fleet run measured. */
export interface FleetReport {
  readonly protocol: Protocol;
  readonly devices: number;
  readonly concurrency: number;
  readonly enroll: PhaseReport;
  readonly reconnect: PhaseReport;
}

/** Options of a fleet run. */
export interface FleetOptions {
  readonly url: string;
  readonly caPem: string;
  readonly tokens: readonly FleetToken[];
  readonly devices: number;
  readonly concurrency: number;
  readonly idPrefix: string;
  readonly deadline: Date;
  /** How the devices enroll: json (default), est or scep. */
  readonly protocol?: Protocol | undefined;
  readonly onProgress?: ((phase: string, done: number, total: number) => void) | undefined;
}

/** Enrolls then reconnects a fleet; never throws for refused devices, it counts them. */
export async function runFleet(options: FleetOptions): Promise<FleetReport> {
  const count = Math.min(options.devices, options.tokens.length);
  if (count < options.devices) throw new Error(`only ${options.tokens.length} tokens for ${options.devices} devices`);

  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency, ca: options.caPem });
  const client = new ImprintClient(options.url, options.caPem, agent);
  const protocol = enrollmentProtocol(options.protocol ?? 'json', client, options.caPem);
  const identities: (ClientIdentity | undefined)[] = [];
  try {
    // Keys and requests first: the device's own cost is not the server's.
    const prepared = await Promise.all(
      options.tokens.slice(0, count).map(async (token, index) => {
        const deviceId = token.deviceId ?? `${options.idPrefix}-${String(index + 1).padStart(6, '0')}`;
        const key = await protocol.newKey();
        return { key, send: await protocol.prepareEnroll(token.token, key, deviceId) };
      }),
    );

    const enroll = await runBounded(
      count,
      options.concurrency,
      options.deadline,
      async (index) => {
        const device = prepared[index]!;
        const started = performance.now();
        const enrolled = await device.send();
        const ms = performance.now() - started;
        identities[index] = { certificatePem: enrolled.certificate, keyPem: device.key.privateKeyPem };
        return { ms };
      },
      (done) => options.onProgress?.('enroll', done, count),
    );

    const enrolled = identities.flatMap((identity) => (identity ? [identity] : []));
    const reconnect = await runBounded(
      enrolled.length,
      options.concurrency,
      options.deadline,
      async (index) => {
        const mtls = client.mtlsAgent(enrolled[index]!);
        const started = performance.now();
        try {
          await client.device(enrolled[index]!, mtls);
        } finally {
          mtls.destroy();
        }
        return { ms: performance.now() - started };
      },
      (done) => options.onProgress?.('reconnect', done, enrolled.length),
    );

    return {
      protocol: protocol.protocol,
      devices: count,
      concurrency: options.concurrency,
      enroll: phaseReport(enroll.results, enroll.seconds),
      reconnect: phaseReport(reconnect.results, reconnect.seconds),
    };
  } finally {
    agent.destroy();
  }
}
