#!/usr/bin/env node
/**
 * The device simulator. Single mode boots one device from a state directory; fleet mode
 * enrolls and reconnects many and prints throughput and latency percentiles.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ImprintClient, ServerRefusedError } from './client.js';
import { bootDevice } from './device.js';
import { parseTokenCsv, runFleet, type FleetReport } from './fleet.js';
import { parseProtocol } from './protocols.js';

const USAGE = `usage:
  simulate --url URL --ca root.pem --token imp_... --device-id ID --state DIR [--protocol json|est|scep]
  simulate --url URL --ca root.pem --state DIR [--protocol json|est|scep]    (reconnect / renew)
  simulate --url URL --ca root.pem --fleet N --tokens batch.csv [--protocol json|est|scep] [--concurrency 16] [--id-prefix sim] [--max-seconds 300] [--json]

  --protocol: how devices enroll and renew: imprint's JSON API (default), EST (RFC 7030)
  or SCEP (RFC 8894, with an RSA key); reconnects are always GET /v1/device over mTLS.`;

function progressBar(phase: string, done: number, total: number): void {
  if (!process.stderr.isTTY) {
    if (done === total || done % Math.max(1, Math.ceil(total / 10)) === 0) process.stderr.write(`${phase}: ${done}/${total}\n`);
    return;
  }
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`\r${phase.padEnd(9)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`);
  if (done === total) process.stderr.write('\n');
}

function formatReport(report: FleetReport): string {
  const line = (name: string, phase: FleetReport['enroll']) =>
    `${name.padEnd(10)} ${String(phase.ok).padStart(6)} ok ${String(phase.failed).padStart(5)} failed  ` +
    `${phase.perSecond.toFixed(1).padStart(8)}/s  p50 ${phase.latencyMs.p50} ms  p90 ${phase.latencyMs.p90} ms  p99 ${phase.latencyMs.p99} ms` +
    (phase.failed ? `  errors ${JSON.stringify(phase.errors)}` : '');
  return [
    `fleet of ${report.devices} devices over ${report.protocol}, concurrency ${report.concurrency}`,
    line('enroll', report.enroll),
    line('reconnect', report.reconnect),
  ].join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      ca: { type: 'string' },
      token: { type: 'string' },
      'device-id': { type: 'string' },
      state: { type: 'string' },
      fleet: { type: 'string' },
      tokens: { type: 'string' },
      concurrency: { type: 'string' },
      'id-prefix': { type: 'string' },
      'max-seconds': { type: 'string' },
      json: { type: 'boolean' },
      protocol: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help || !values.url || !values.ca) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const caPem = readFileSync(values.ca, 'utf8');
  const protocol = parseProtocol(values.protocol);

  if (values.fleet !== undefined) {
    if (!values.tokens) throw new Error('--fleet needs --tokens batch.csv');
    const report = await runFleet({
      url: values.url,
      caPem,
      tokens: parseTokenCsv(readFileSync(values.tokens, 'utf8')),
      devices: Number(values.fleet),
      concurrency: Number(values.concurrency ?? 16),
      idPrefix: values['id-prefix'] ?? `sim-${Date.now().toString(36)}`,
      deadline: new Date(Date.now() + Number(values['max-seconds'] ?? 300) * 1000),
      onProgress: progressBar,
      protocol,
    });
    process.stdout.write(`${values.json ? JSON.stringify(report, null, 2) : formatReport(report)}\n`);
    return report.enroll.failed + report.reconnect.failed === 0 ? 0 : 1;
  }

  if (!values.state) throw new Error('--state DIR is required');
  const deviceId = values['device-id'];
  if (!deviceId) throw new Error('--device-id is required');
  const report = await bootDevice(new ImprintClient(values.url, caPem), { stateDir: values.state, deviceId, token: values.token, protocol });
  process.stdout.write(
    `${report.action}: the server says this is ${report.device.deviceId} (${report.device.status}, serial ${report.device.serial}, valid until ${report.device.notAfter})\n`,
  );
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ServerRefusedError) {
      process.stderr.write(`refused: ${error.code} (${error.message})\n`);
      process.stdout.write(`${error.code}\n`);
    } else {
      process.stderr.write(`simulate: ${(error as Error).message}\n`);
    }
    process.exitCode = 1;
  },
);
