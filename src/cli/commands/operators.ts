/** `operators issue|list|revoke`: operator identities, on the CA host only (issuing needs the CA key). */
import { parseDuration } from '../../duration.js';
import { checkOperatorName, OPERATOR_ROLES } from '../../enrollment/operator-service.js';
import type { Instance } from '../../instance.js';
import type { Config } from '../../config.js';
import { cliActor } from '../cli-actor.js';
import { JSON_OPTION, oneOf, parsed, str, UsageError, type Command } from '../command.js';
import { table } from '../table.js';

/** Runs `body` on the opened data directory (loaded here: the store and the CA). */
async function withInstance<T>(config: Config, body: (instance: Instance) => Promise<T>): Promise<T> {
  const { openInstance } = await import('../../instance.js');
  const instance = await openInstance(config.dataDir, { passphrase: config.caPassphrase, databaseUrl: config.database });
  try {
    return await body(instance);
  } finally {
    await instance.close();
  }
}

export const OPERATOR_COMMANDS: Readonly<Record<string, Command>> = {
  'operators issue': {
    summary: 'issue an operator identity: NAME.pem, NAME.key (0600) and NAME.p12 in --out',
    args: ['NAME'],
    options: {
      role: { type: 'string', placeholder: OPERATOR_ROLES.join('|'), help: 'admin may do everything; provisioner may only mint and list tokens' },
      out: { type: 'string', placeholder: 'DIR', help: 'directory for the files (created 0700)' },
      validity: { type: 'string', placeholder: 'DURATION', help: 'certificate validity (e.g. 365d)', defaultText: '365d' },
      ...JSON_OPTION,
    },
    notes: 'The .p12 passphrase is IMPRINT_P12_PASSPHRASE (or IMPRINT_P12_PASSPHRASE_FILE), else generated and shown once.',
    async run({ values, args, config, out }) {
      const name = args[0]!;
      const role = oneOf(values, 'role', OPERATOR_ROLES);
      if (!role) throw new UsageError('operators issue needs --role admin|provisioner');
      const outDir = str(values.out);
      if (!outDir) throw new UsageError('operators issue needs --out DIR');
      const validity = parsed('validity', str(values.validity), (text) => parseDuration(text.replace(/^(\d+)$/, '$1d')));
      checkOperatorName(name);
      // PKCS#12 is built with pkijs: loaded by this command alone.
      const { operatorFiles, writeOperatorFiles } = await import('../operator-files.js');
      const files = operatorFiles(outDir, name);
      await withInstance(config, async (instance) => {
        const issued = await instance.signing().operators.issue(
          { name, role, validityDays: validity === undefined ? undefined : Math.round(validity / 86_400) },
          cliActor(),
        );
        const written = await writeOperatorFiles(files, issued, out, config.p12Passphrase);
        if (values.json) {
          return out.stdout(JSON.stringify({ name: issued.name, role: issued.role, serial: issued.serial, notAfter: issued.notAfter, files: written }, null, 2));
        }
        out.stdout(`issued ${issued.role} ${issued.name} (serial ${issued.serial}, valid until ${issued.notAfter}): ${written.join(', ')}`);
      });
    },
  },

  'operators list': {
    summary: 'list operators',
    options: JSON_OPTION,
    async run({ values, config, out }) {
      await withInstance(config, async (instance) => {
        const operators = await instance.signing().operators.list();
        if (values.json) return out.stdout(JSON.stringify({ items: operators }, null, 2));
        out.stdout(table(['NAME', 'ROLE', 'STATUS', 'CREATED', 'BY'], operators.map((o) => [o.name, o.role, o.status, o.createdAt, o.createdBy])));
      });
    },
  },

  'operators revoke': {
    summary: 'revoke an operator, its certificates and the unused tokens it minted',
    args: ['NAME'],
    options: JSON_OPTION,
    async run({ values, args, config, out }) {
      await withInstance(config, async (instance) => {
        const operator = await instance.signing().operators.revoke(args[0]!, cliActor());
        if (values.json) return out.stdout(JSON.stringify(operator, null, 2));
        out.stdout(`${operator.name} ${operator.status} (${operator.revokedSerials.length} certificate(s) and ${operator.revokedTokens} unused token(s) revoked)`);
      });
    },
  },
};
