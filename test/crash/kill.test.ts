/**
 * Crash safety: a fleet enrolls concurrently while `imprint serve` is killed with SIGKILL at
 * a random moment; the server restarts on the same data directory and the fleet retries.
 * After every cycle: every certificate a device received is in the store and verifies, no
 * token is consumed without its device and certificate, a retry gets the same certificate
 * or a fresh enrollment (never token_used), and on SQLite the file's integrity check passes.
 * On PostgreSQL only imprint is killed: its transactions cut off mid-way must roll back.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { imprint } from '../helpers/cli.js';
import { query, testStore } from '../helpers/database.js';
import { call, type Response } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import type { ServerProcess } from '../../scripts/server-process.js';
import { spawnTestServer } from '../helpers/server.js';

const CYCLES = Number(process.env.IMPRINT_CRASH_CYCLES ?? 24);
const DEVICES_PER_CYCLE = 24;
/** The kill lands uniformly within this window after the fleet starts sending. */
const KILL_WINDOW_MS = 80;

interface FleetDevice {
  readonly id: string;
  readonly token: string;
  readonly csr: string;
  /** The certificate the device holds, once a response reached it. */
  certificate?: string;
  /** The request was cut off by the kill: the device does not know whether it enrolled. */
  pending: boolean;
  /** Got its certificate in the cycle that just ended; retries once to check it gets the same back. */
  retryToConfirm: boolean;
}

const dataDir = join(tempDir(), 'data');
let issuer: X509Certificate;
const fleet: FleetDevice[] = [];
const tally = { cutOff: 0, committedBeforeKill: 0, notCommitted: 0, confirmedRetries: 0 };

const enroll = (server: ServerProcess, device: FleetDevice): Promise<Response> =>
  call(`${server.url}/v1/enroll`, { ca: server.rootPem, json: { csr: device.csr }, headers: { authorization: `Bearer ${device.token}` } });

/** One enrollment attempt whose connection may be cut by the kill. */
async function attempt(server: ServerProcess, device: FleetDevice): Promise<void> {
  let response: Response;
  try {
    response = await enroll(server, device);
  } catch {
    device.pending = true; // connection reset or refused: outcome unknown to the device
    tally.cutOff++;
    return;
  }
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  device.certificate = response.body.certificate;
  device.retryToConfirm = true;
}

/** After a restart: devices that lost their answer, and devices that got one, retry. */
async function retry(server: ServerProcess, device: FleetDevice): Promise<void> {
  const response = await enroll(server, device);
  if (device.pending) {
    expect([200, 201], JSON.stringify(response.body)).toContain(response.status);
    if (response.status === 200) tally.committedBeforeKill++;
    else tally.notCommitted++;
    device.certificate = response.body.certificate;
    device.pending = false;
  } else {
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body.certificate).toBe(device.certificate);
    tally.confirmedRetries++;
  }
  device.retryToConfirm = false;
}

function checkInvariants(): void {
  // PostgreSQL's own files are its server's to keep, and that server is not the one killed.
  if (testStore === 'sqlite') expect(query(dataDir, 'PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
  const orphans = query(
    dataDir,
    `SELECT t.id FROM tokens t LEFT JOIN certificates c ON c.serial = t.serial LEFT JOIN devices d ON d.id = c.device_id
     WHERE t.used_at IS NOT NULL AND (c.serial IS NULL OR d.id IS NULL)`,
  );
  expect(orphans).toEqual([]);
  const stored = new Map(
    query<{ serial: string; der: Buffer; device_id: string }>(dataDir, "SELECT serial, der, device_id FROM certificates WHERE kind = 'device'").map((row) => [
      row.serial,
      row,
    ]),
  );
  for (const device of fleet) {
    if (!device.certificate) continue;
    const certificate = new X509Certificate(device.certificate);
    const row = stored.get(certificate.serialNumber.toLowerCase());
    expect(row, `${device.id}'s certificate is in the store`).toBeDefined();
    expect(row!.device_id).toBe(device.id);
    expect(Buffer.compare(row!.der, certificate.raw)).toBe(0);
    expect(certificate.verify(issuer.publicKey)).toBe(true);
  }
}

beforeAll(async () => {
  const init = await imprint(['init', '--data', dataDir]);
  expect(init.code, init.stderr).toBe(0);
  issuer = new X509Certificate(readFileSync(join(dataDir, 'ca/issuer.pem')));
  const minted = await imprint(['tokens', 'create', '--data', dataDir, '--count', String(CYCLES * DEVICES_PER_CYCLE), '--ttl', '1d', '--format', 'json']);
  expect(minted.code, minted.stderr).toBe(0);
  const tokens: { token: string }[] = JSON.parse(minted.stdout).tokens;
  for (const [i, { token }] of tokens.entries()) {
    fleet.push({ id: `crash-${String(i).padStart(4, '0')}`, token, csr: buildCsr(await generateDeviceKey(), `crash-${String(i).padStart(4, '0')}`), pending: false, retryToConfirm: false });
  }
});

describe('SIGKILL during concurrent enrollment', () => {
  it(`loses nothing over ${CYCLES} kill cycles`, { timeout: 240_000 }, async () => {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      // Alternately one process and a primary with two workers sharing the database.
      const server = await spawnTestServer(dataDir, ['--rate-limit', 'off', '--workers', cycle % 2 ? '2' : '1']);
      await Promise.all(fleet.filter((device) => device.pending || device.retryToConfirm).map((device) => retry(server, device)));

      const wave = fleet.slice(cycle * DEVICES_PER_CYCLE, (cycle + 1) * DEVICES_PER_CYCLE);
      const sending = Promise.all(wave.map((device) => attempt(server, device)));
      await new Promise((resolve) => setTimeout(resolve, Math.random() * KILL_WINDOW_MS));
      await server.killGroup('SIGKILL'); // the primary and every worker at once, as a power cut would
      await sending;
      expect(await server.exited).toBe('SIGKILL');
      checkInvariants();
    }

    // A last restart: every device that was cut off gets its certificate.
    const server = await spawnTestServer(dataDir, ['--rate-limit', 'off']);
    await Promise.all(fleet.filter((device) => device.pending || device.retryToConfirm).map((device) => retry(server, device)));
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    checkInvariants();
    expect(fleet.every((device) => device.certificate)).toBe(true);
    expect(query(dataDir, "SELECT count(*) AS n FROM devices")).toEqual([{ n: fleet.length }]);

    console.log(
      `crash test: ${CYCLES} SIGKILL cycles (half of them with 2 workers), ${fleet.length} devices; ${tally.cutOff} enrollments cut off and retried ` +
        `(${tally.committedBeforeKill} had committed: same certificate back, ${tally.notCommitted} had not: fresh enrollment), ` +
        `${tally.confirmedRetries} answered enrollments retried after a restart got the same certificate; 0 lost`,
    );
    expect(tally.cutOff).toBeGreaterThan(0);
  });
});
