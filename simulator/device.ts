/**
 * One simulated device with a state directory: enrolls on first boot, then reconnects
 * over mutual TLS, renewing with a new key once past 2/3 of its certificate's lifetime.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DeviceResponse, ImprintClient } from './client.js';
import { loadDeviceKey } from './csr.js';
import { enrollmentProtocol, type Protocol } from './protocols.js';

/** What one boot of the device did. */
export interface BootReport {
  readonly action: 'enrolled' | 'reconnected' | 'renewed';
  readonly device: DeviceResponse;
}

const RENEW_AFTER_FRACTION = 2 / 3;

/** Files in a device's state directory. */
const statePaths = (dir: string) => ({ key: join(dir, 'device.key'), certificate: join(dir, 'device.pem'), chain: join(dir, 'chain.pem') });

function save(path: string, content: string, mode: number): void {
  writeFileSync(`${path}.tmp`, content, { mode });
  renameSync(`${path}.tmp`, path);
}

/** True once a certificate has used up 2/3 of its lifetime. */
export function dueForRenewal(certificatePem: string, now = new Date()): boolean {
  const certificate = new X509Certificate(certificatePem);
  const from = new Date(certificate.validFrom).getTime();
  const to = new Date(certificate.validTo).getTime();
  return now.getTime() >= from + (to - from) * RENEW_AFTER_FRACTION;
}

/**
 * Boots the device: enroll (with the token) if it has no certificate yet, else reconnect.
 * `protocol` is how it enrolls and renews (json by default); reconnects are always /v1/device.
 */
export async function bootDevice(
  client: ImprintClient,
  options: { stateDir: string; deviceId: string; token: string | undefined; now?: Date; protocol?: Protocol; rootPem?: string },
): Promise<BootReport> {
  const paths = statePaths(options.stateDir);
  const protocol = enrollmentProtocol(options.protocol ?? 'json', client, options.rootPem ?? client.caPem);
  mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  if (!existsSync(paths.certificate)) {
    if (!options.token) throw new Error('this device has no certificate yet: give it a --token');
    // The key is kept before enrolling, so a retry after a lost answer sends the same CSR.
    const key = existsSync(paths.key) ? loadDeviceKey(readFileSync(paths.key, 'utf8')) : await protocol.newKey();
    save(paths.key, key.privateKeyPem, 0o600);
    const enrolled = await (await protocol.prepareEnroll(options.token, key, options.deviceId))();
    save(paths.certificate, enrolled.certificate, 0o644);
    if (enrolled.chain.length) save(paths.chain, enrolled.chain.join(''), 0o644);
    const device = await client.device({ certificatePem: enrolled.certificate, keyPem: key.privateKeyPem });
    return { action: 'enrolled', device };
  }
  const identity = { certificatePem: readFileSync(paths.certificate, 'utf8'), keyPem: readFileSync(paths.key, 'utf8') };
  if (!dueForRenewal(identity.certificatePem, options.now)) return { action: 'reconnected', device: await client.device(identity) };

  const key = await protocol.newKey();
  const renewed = await protocol.renew(identity, key, options.deviceId);
  save(`${paths.key}.next`, key.privateKeyPem, 0o600);
  save(paths.certificate, renewed.certificate, 0o644);
  renameSync(`${paths.key}.next`, paths.key);
  const device = await client.device({ certificatePem: renewed.certificate, keyPem: key.privateKeyPem });
  return { action: 'renewed', device };
}
