/** Help texts: the command list, a group's commands, and one command's flags with defaults and variables. */
import { VERSION } from '../version.js';
import { COMMON_OPTIONS, type Command, type OptionSpec } from './command.js';

const flagColumn = (name: string, spec: OptionSpec) => `--${name}${spec.type === 'string' ? ` ${spec.placeholder ?? 'VALUE'}` : ''}${spec.multiple ? ' ...' : ''}`;

/** Lines of "  name  summary" with the names padded to one width. */
function listing(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`);
}

/** `imprint --help`. */
export function mainHelp(commands: Readonly<Record<string, Command>>): string {
  return [
    `imprint ${VERSION}: enrollment server and CA for IoT fleets`,
    '',
    'usage: imprint <command> [options]',
    '',
    ...listing(Object.entries(commands).map(([name, command]) => [name, command.summary])),
    '',
    'Every command takes --data DIR (IMPRINT_DATA, default ./data) and --config FILE (IMPRINT_CONFIG).',
    'tokens, devices, certs, audit and crl take --server URL --cert F --key F [--cacert F] to call',
    "a server's admin API with an operator certificate instead of opening the data directory.",
    '',
    'imprint <command> --help   flags, defaults and environment variables of a command',
    'imprint config show        the effective configuration and where each value came from',
    'imprint --version          the version',
  ].join('\n');
}

/** `imprint <group> --help`. */
export function groupHelp(group: string, commands: Readonly<Record<string, Command>>): string {
  const members = Object.entries(commands).filter(([name]) => name === group || name.startsWith(`${group} `));
  return [`usage: imprint ${group} <command> [options]`, '', ...listing(members.map(([name, command]) => [name, command.summary])), '', `imprint ${group} <command> --help for its flags`].join('\n');
}

/** `imprint <command> --help`: every flag with its default and variable. */
export function commandHelp(name: string, command: Command): string {
  const options = { ...command.options, ...COMMON_OPTIONS };
  const args = (command.args ?? []).join(' ');
  const rows = Object.entries(options).map(([flag, spec]) => {
    const extras = [spec.defaultText !== undefined ? `default: ${spec.defaultText}` : '', spec.env ? `env: ${spec.env}` : ''].filter(Boolean).join('; ');
    return [flagColumn(flag, spec), `${spec.help}${extras ? ` (${extras})` : ''}`] as const;
  });
  return [`usage: imprint ${name}${args ? ` ${args}` : ''} [options]`, '', command.summary, '', 'options:', ...listing(rows), ...(command.notes ? ['', command.notes] : [])].join(
    '\n',
  );
}
