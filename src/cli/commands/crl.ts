/**
 * `crl`: the current CRLs for relying parties (nginx, mosquitto), from the data directory or
 * a server (--server); with --watch, kept current in a file, running a command (a reload)
 * after each change.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { toPem } from '../../ca/pem.js';
import { writeFileAtomic } from '../../files.js';
import { int, JSON_OPTION, str, UsageError, type Command, type Output, type Values } from '../command.js';
import type { Crls, FleetClient } from '../fleet-client.js';
import { FLEET_OPTIONS, openFleet } from './fleet-helpers.js';

/** One PEM file: the issuing CA's CRL, then the root's when asked. */
const pemOf = (crls: Crls): string => [crls.issuer, ...(crls.root ? [crls.root] : [])].map((der) => toPem(der, 'X509 CRL')).join('');

function currentContent(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/** Runs `command` through /bin/sh -c and logs its exit status; a failure is logged, never fatal. */
function runHook(command: string, out: Output): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (error) => {
      out.stderr(`crl: --exec could not start: ${error.message}`);
      resolve();
    });
    child.on('exit', (code, signal) => {
      out.stderr(`crl: --exec ${JSON.stringify(command)} exited ${signal ?? code}`);
      resolve();
    });
  });
}

/** Writes the file when its content differs; returns whether it did. */
function update(file: string, content: Buffer): boolean {
  const before = currentContent(file);
  if (before && before.equals(content)) return false;
  writeFileAtomic(file, content);
  return true;
}

const MIN_INTERVAL_S = 1;
const MAX_INTERVAL_S = 3600;

/** Polls until SIGINT/SIGTERM, rewriting `file` and running `exec` whenever the CRLs change. */
async function watch(fleet: FleetClient, values: Values, file: string, out: Output): Promise<void> {
  const intervalMs = (int(values, 'interval', MIN_INTERVAL_S, MAX_INTERVAL_S) ?? 1) * 1000;
  const exec = str(values.exec);
  const withRoot = Boolean(values['with-root']);
  let stopping = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const stop = () => {
    stopping = true;
    clearTimeout(timer);
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  out.stderr(`crl: watching ${fleet.target} every ${intervalMs / 1000} s, writing ${file}${exec ? `, then running ${JSON.stringify(exec)}` : ''}`);
  let failing = false;
  while (!stopping) {
    try {
      const content = Buffer.from(pemOf(await fleet.crls(withRoot)));
      if (failing) out.stderr('crl: reading the CRL works again');
      failing = false;
      if (update(file, content)) {
        out.stderr(`crl: wrote ${file} (${content.length} bytes)`);
        if (exec) await runHook(exec, out);
      }
    } catch (error) {
      // A server restarting or a database busy for a moment: keep the file and try again.
      if (!failing) out.stderr(`crl: cannot read the CRL (${(error as Error).message.split('\n')[0]}); keeping ${file} and retrying`);
      failing = true;
    }
    if (stopping) break;
    await new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, intervalMs);
    });
  }
  process.removeListener('SIGINT', stop);
  process.removeListener('SIGTERM', stop);
}

export const CRL_COMMANDS: Readonly<Record<string, Command>> = {
  crl: {
    summary: 'write the current CRL as PEM (for nginx, mosquitto, ...); --watch keeps a file current',
    options: {
      out: { type: 'string', placeholder: 'FILE', help: 'write to FILE (atomically) instead of stdout' },
      'with-root': { type: 'boolean', help: "append the root's CRL (relying parties that check the whole chain need it)" },
      der: { type: 'boolean', help: "write the issuing CA's CRL as DER" },
      watch: { type: 'boolean', help: 'keep --out current: rewrite it whenever the CRL changes, until stopped' },
      exec: { type: 'string', placeholder: 'CMD', help: 'with --watch: run CMD (/bin/sh -c) after each rewrite, e.g. "systemctl reload nginx"' },
      interval: { type: 'string', placeholder: 'SECONDS', help: `with --watch: how often to look (${MIN_INTERVAL_S}-${MAX_INTERVAL_S})`, defaultText: '1' },
      ...JSON_OPTION,
      ...FLEET_OPTIONS,
    },
    notes: 'Exporting needs no CA key when the CRL published in the store is current (or with --server).',
    async run({ values, config, out }) {
      const file = str(values.out);
      if (values.der && values['with-root']) throw new UsageError('--der writes one CRL; --with-root needs PEM');
      if (values.watch && !file) throw new UsageError('--watch needs --out FILE');
      if (values.watch && (values.der || values.json)) throw new UsageError('--watch writes PEM: leave out --der and --json');
      if (!values.watch && (values.exec !== undefined || values.interval !== undefined)) throw new UsageError('--exec and --interval go with --watch');
      if (values.json && values.der) throw new UsageError('--json and --der do not go together');
      int(values, 'interval', MIN_INTERVAL_S, MAX_INTERVAL_S);
      const fleet = await openFleet(config);
      try {
        if (values.watch) return await watch(fleet, values, file!, out);
        const crls = await fleet.crls(Boolean(values['with-root']));
        if (values.json) {
          if (file) writeFileAtomic(file, pemOf(crls));
          const pem = (der: Buffer) => toPem(der, 'X509 CRL');
          return out.stdout(JSON.stringify({ file: file ?? null, issuer: pem(crls.issuer), ...(crls.root ? { root: pem(crls.root) } : {}) }, null, 2));
        }
        const content = values.der ? crls.issuer : pemOf(crls);
        if (file) writeFileAtomic(file, content);
        else if (typeof content === 'string') out.stdout(content);
        else out.raw(content);
      } finally {
        await fleet.close();
      }
    },
  },
};
