/**
 * PostgreSQL restarted, and killed with SIGKILL, while a fleet enrolls through a running
 * instance that is never restarted. Devices retry what failed (503 or a cut connection) with
 * the same token and CSR. After each cycle: every certificate a device received is in the
 * database, on its device, byte for byte, and verifies; no token is consumed without its
 * certificate; a device that got an answer and retries gets the same certificate; nothing
 * but 503 and the answers of the contract ever comes back; the audit chain verifies.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import { imprint } from '../helpers/cli.js';
import { call } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import { query, startPostgres, type PostgresServer } from '../helpers/postgres.js';

const CYCLES = 4;
const DEVICES_PER_CYCLE = 24;
/** The outage lands uniformly within this window after the wave starts sending. */
const OUTAGE_WINDOW_MS = 80;
/** Bounds each device's retries: the database is back within a few seconds. */
const MAX_ATTEMPTS = 150;

interface FleetDevice {
  readonly id: string;
  readonly token: string;
  readonly csr: string;
  certificate?: string;
}

let postgres: PostgresServer;
let server: ServerProcess;
let issuer: X509Certificate;
const dataDir = join(tempDir(), 'data');
const fleet: FleetDevice[] = [];
const tally = { unavailable: 0, cutOff: 0, sameBack: 0 };

beforeAll(async () => {
  postgres = await startPostgres();
  const init = await imprint(['init', '--data', dataDir, '--database', postgres.url]);
  expect(init.code, init.stderr).toBe(0);
  issuer = new X509Certificate(readFileSync(join(dataDir, 'ca/issuer.pem')));
  const minted = await imprint(['tokens', 'create', '--data', dataDir, '--database', postgres.url, '--count', String(CYCLES * DEVICES_PER_CYCLE), '--format', 'json']);
  expect(minted.code, minted.stderr).toBe(0);
  for (const [i, { token }] of (JSON.parse(minted.stdout).tokens as { token: string }[]).entries()) {
    const id = `pg-restart-${String(i).padStart(3, '0')}`;
    fleet.push({ id, token, csr: buildCsr(await generateDeviceKey(), id) });
  }
  server = await spawnServer(dataDir, ['--database', postgres.url, '--rate-limit', 'off', '--workers', '2']);
}, 120_000);

afterAll(async () => {
  await server?.killGroup('SIGKILL');
  await postgres?.stop();
});

/** Enrolls until an answer other than 503 arrives, as a device would; returns its status. */
async function enrollUntilAnswered(device: FleetDevice): Promise<number> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    let response;
    try {
      response = await call(`${server.url}/v1/enroll`, { ca: server.rootPem, json: { csr: device.csr }, headers: { authorization: `Bearer ${device.token}` } });
    } catch {
      tally.cutOff++; // the server never goes away: only a reset could do this
      continue;
    }
    if (response.status === 503) {
      tally.unavailable++;
      expect(response.body.error).toBe('service_unavailable');
      expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    expect([200, 201], JSON.stringify(response.body)).toContain(response.status);
    if (device.certificate) {
      expect(response.status).toBe(200);
      expect(response.body.certificate).toBe(device.certificate);
      tally.sameBack++;
    }
    device.certificate = response.body.certificate;
    return response.status;
  }
  throw new Error(`${device.id}: no answer but 503 after ${MAX_ATTEMPTS} attempts`);
}

async function checkInvariants(): Promise<void> {
  const orphans = await query(
    postgres.url,
    `SELECT t.id FROM tokens t LEFT JOIN certificates c ON c.serial = t.serial LEFT JOIN devices d ON d.id = c.device_id
     WHERE t.used_at IS NOT NULL AND (c.serial IS NULL OR d.id IS NULL)`,
  );
  expect(orphans).toEqual([]);
  const rows = await query<{ serial: string; der: Buffer; device_id: string }>(postgres.url, "SELECT serial, der, device_id FROM certificates WHERE kind = 'device'");
  const stored = new Map(rows.map((row) => [row.serial, row]));
  for (const device of fleet) {
    if (!device.certificate) continue;
    const certificate = new X509Certificate(device.certificate);
    const row = stored.get(certificate.serialNumber.toLowerCase());
    expect(row, `${device.id}'s certificate is in the database`).toBeDefined();
    expect(row!.device_id).toBe(device.id);
    expect(Buffer.compare(row!.der, certificate.raw)).toBe(0);
    expect(certificate.verify(issuer.publicKey)).toBe(true);
  }
}

it(`loses nothing over ${CYCLES} PostgreSQL outages under load (fast restarts and SIGKILL), the instance never restarted`, { timeout: 240_000 }, async () => {
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const wave = fleet.slice(cycle * DEVICES_PER_CYCLE, (cycle + 1) * DEVICES_PER_CYCLE);
    const sending = Promise.all(wave.map(enrollUntilAnswered));
    await new Promise((resolve) => setTimeout(resolve, Math.random() * OUTAGE_WINDOW_MS));
    if (cycle % 2) await postgres.kill(); // as a crash or a power cut would
    await postgres.restart();
    await sending;
    // Every device retries once more: the same certificate back, never token_used.
    await Promise.all(wave.map(enrollUntilAnswered));
    await checkInvariants();
  }
  expect(server.child.exitCode).toBeNull();
  expect(fleet.every((device) => device.certificate)).toBe(true);
  expect(await query(postgres.url, "SELECT count(*)::int AS n FROM devices")).toEqual([{ n: fleet.length }]);
  const verified = await imprint(['audit', 'verify', '--data', dataDir, '--database', postgres.url]);
  expect(verified.code, verified.stderr).toBe(0);
  console.log(
    `PostgreSQL outages: ${CYCLES} (half SIGKILL), ${fleet.length} devices; ${tally.unavailable} answers 503 and retried, ` +
      `${tally.cutOff} connections cut, ${tally.sameBack} retries after an answer got the same certificate; 0 lost`,
  );
});
