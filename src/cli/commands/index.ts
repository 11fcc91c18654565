/**
 * Every CLI command by name ("tokens create"); a group is the first word.
 *
 * Every invocation loads this table, the cluster primary of `serve` too, which only forks:
 * the command modules import names, flags and help text, and each command's run imports
 * what it runs (the store, the CA, the server, pkijs) when it runs.
 */
import { SETTINGS } from '../../config.js';
import { settingOptions, type Command } from '../command.js';
import { CRL_COMMANDS } from './crl.js';
import { FLEET_COMMANDS } from './fleet.js';
import { OPERATOR_COMMANDS } from './operators.js';
import { SETUP_COMMANDS } from './setup.js';
import { TOKEN_COMMANDS } from './tokens.js';

const configShow = SETUP_COMMANDS['config show']!;

export const COMMANDS: Readonly<Record<string, Command>> = {
  ...SETUP_COMMANDS,
  // config show takes every setting's flag, to preview what a command line would give.
  'config show': { ...configShow, options: { ...settingOptions(...SETTINGS.filter((spec) => !('noFlag' in spec)).map((spec) => spec.key)), ...configShow.options } },
  ...TOKEN_COMMANDS,
  ...FLEET_COMMANDS,
  ...OPERATOR_COMMANDS,
  ...CRL_COMMANDS,
};

/** Summaries of the groups (words that only prefix commands). */
export const GROUPS: Readonly<Record<string, string>> = {
  tokens: 'bootstrap tokens: create, list, revoke',
  devices: 'the fleet: list, show, revoke',
  certs: 'issued certificates: list, show, revoke',
  operators: 'operator identities: issue, list, revoke',
  config: 'the effective configuration: show',
};
