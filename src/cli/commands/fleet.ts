/** `devices`, `certs` and `audit`: the fleet, locally or on a server (--server). */
import type { CertificateView } from '../../enrollment/views.js';
import { REVOCATION_REASONS } from '../../enrollment/model.js';
import { JSON_OPTION, oneOf, optional, str, UsageError, type Command } from '../command.js';
import { table } from '../table.js';
import { FLEET_OPTIONS, LIST_OPTIONS, pageQuery, printPage, withFleet } from './fleet-helpers.js';

const CERTIFICATE_HEADERS = ['SERIAL', 'KIND', 'SUBJECT', 'STATUS', 'NOT AFTER', 'REVOKED', 'REASON'];
const certificateRow = (c: CertificateView) => [c.serial, c.kind, c.subject, c.status, c.notAfter, c.revokedAt, c.revocationReason];
const certificateTable = (certificates: CertificateView[]) => table(CERTIFICATE_HEADERS, certificates.map(certificateRow));

const REASON_OPTION = {
  reason: { type: 'string', placeholder: 'REASON', help: `RFC 5280 reason: ${REVOCATION_REASONS.join(', ')}`, defaultText: 'unspecified' },
} as const;

const reasonOf = (values: Parameters<Command['run']>[0]['values']) => oneOf(values, 'reason', REVOCATION_REASONS);

export const FLEET_COMMANDS: Readonly<Record<string, Command>> = {
  'devices list': {
    summary: 'list and search the fleet',
    options: {
      status: { type: 'string', placeholder: 'active|revoked', help: 'only devices in this state' },
      q: { type: 'string', placeholder: 'TEXT', help: 'device ids containing TEXT' },
      ...LIST_OPTIONS,
      ...FLEET_OPTIONS,
    },
    async run({ values, config, out }) {
      const status = oneOf(values, 'status', ['active', 'revoked'] as const);
      const query = { ...pageQuery(values), ...optional('status', status), ...optional('q', str(values.q)) };
      await withFleet(config, async (fleet) => {
        const page = await fleet.listDevices(query);
        printPage(out, values, page, ['DEVICE', 'STATUS', 'ENROLLED', 'SERIAL'], (d) => [d.id, d.status, d.enrolledAt, d.currentSerial]);
      });
    },
  },

  'devices show': {
    summary: 'show one device with its certificate history',
    args: ['DEVICE_ID'],
    options: { ...JSON_OPTION, ...FLEET_OPTIONS },
    async run({ values, args, config, out }) {
      await withFleet(config, async (fleet) => {
        const device = await fleet.getDevice(args[0]!);
        if (values.json) return out.stdout(JSON.stringify(device, null, 2));
        out.stdout(`${device.id}  ${device.status}  enrolled ${device.enrolledAt}${device.revokedAt ? `  revoked ${device.revokedAt} (${device.revocationReason})` : ''}\n`);
        out.stdout(certificateTable(device.certificates));
      });
    },
  },

  'devices revoke': {
    summary: 'revoke a device and all its unexpired certificates',
    args: ['DEVICE_ID'],
    options: { ...REASON_OPTION, ...JSON_OPTION, ...FLEET_OPTIONS },
    async run({ values, args, config, out }) {
      const reason = reasonOf(values);
      await withFleet(config, async (fleet) => {
        const device = await fleet.revokeDevice(args[0]!, reason);
        if (values.json) return out.stdout(JSON.stringify(device, null, 2));
        out.stdout(`${device.id} ${device.status} (${device.revokedSerials.length} certificate(s) revoked now)`);
      });
    },
  },

  'certs list': {
    summary: 'list issued certificates',
    options: {
      device: { type: 'string', placeholder: 'ID', help: "only this device's certificates" },
      kind: { type: 'string', placeholder: 'device|operator', help: 'only certificates of this kind' },
      status: { type: 'string', placeholder: 'active|revoked', help: 'only certificates in this state' },
      ...LIST_OPTIONS,
      ...FLEET_OPTIONS,
    },
    async run({ values, config, out }) {
      const query = {
        ...pageQuery(values),
        ...optional('deviceId', str(values.device)),
        ...optional('kind', oneOf(values, 'kind', ['device', 'operator'] as const)),
        ...optional('status', oneOf(values, 'status', ['active', 'revoked'] as const)),
      };
      await withFleet(config, async (fleet) => {
        printPage(out, values, await fleet.listCertificates(query), CERTIFICATE_HEADERS, certificateRow);
      });
    },
  },

  'certs show': {
    summary: 'show one certificate (with its PEM)',
    args: ['SERIAL'],
    options: { ...JSON_OPTION, ...FLEET_OPTIONS },
    async run({ values, args, config, out }) {
      await withFleet(config, async (fleet) => {
        const certificate = await fleet.getCertificate(args[0]!);
        if (values.json) return out.stdout(JSON.stringify(certificate, null, 2));
        out.stdout(certificateTable([certificate]));
        out.stdout(certificate.pem ?? '');
      });
    },
  },

  'certs revoke': {
    summary: 'revoke one certificate by serial (the device stays active)',
    args: ['SERIAL'],
    options: { ...REASON_OPTION, ...JSON_OPTION, ...FLEET_OPTIONS },
    async run({ values, args, config, out }) {
      const reason = reasonOf(values);
      await withFleet(config, async (fleet) => {
        const certificate = await fleet.revokeCertificate(args[0]!, reason);
        if (values.json) return out.stdout(JSON.stringify(certificate, null, 2));
        out.stdout(`${certificate.serial} ${certificate.status} (${certificate.revocationReason})`);
      });
    },
  },

  audit: {
    summary: 'show the audit log: who did what, when, from where',
    options: {
      since: { type: 'string', placeholder: 'ISO-TIME', help: 'events from this time on' },
      ...LIST_OPTIONS,
      ...FLEET_OPTIONS,
    },
    async run({ values, config, out }) {
      const query = { ...optional('since', str(values.since)), ...pageQuery(values) };
      await withFleet(config, async (fleet) => {
        const page = await fleet.listAudit(query);
        printPage(out, values, page, ['ID', 'TIME', 'ACTOR', 'ACTION', 'OUTCOME', 'SOURCE', 'SUBJECT'], (e) => [
          String(e.id),
          e.at,
          e.actor,
          e.action,
          e.outcome,
          e.source,
          e.deviceId ?? e.serial ?? e.tokenId,
        ]);
      });
    },
  },

  'audit verify': {
    summary: 'check the audit log hash chain; fails if any event was edited or deleted',
    options: {
      head: { type: 'string', placeholder: 'HASH', help: 'a head hash printed by an earlier audit verify: proves nothing was cut off since' },
      ...JSON_OPTION,
    },
    async run({ values, config, out }) {
      const head = str(values.head);
      if (head !== undefined && !/^[0-9a-f]{64}$/.test(head)) throw new UsageError('--head must be a head hash printed by an earlier audit verify');
      const { openInstance } = await import('../../instance.js');
      const instance = await openInstance(config.dataDir, { passphrase: config.caPassphrase, databaseUrl: config.database });
      try {
        const result = await instance.audit.verify(head);
        if (values.json) out.stdout(JSON.stringify(result, null, 2));
        if (!result.ok) throw new Error(`audit log broken at event ${result.problem!.id}: ${result.problem!.reason} (${result.checked} events before it verified)`);
        if (!values.json) out.stdout(`audit log intact: ${result.checked} events verified, head ${result.head}`);
      } finally {
        await instance.close();
      }
    },
  },
};
