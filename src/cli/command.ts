/**
 * What a CLI command is: its flags (each with a help line, a default and, for settings, an
 * environment variable), its positional arguments, and a run function taking the parsed
 * values and the resolved configuration. Parsing turns every mistake into a UsageError:
 * one line of our own (never node:util's raw text), exit 2.
 */
import { parseArgs } from 'node:util';
import { closest, settingSpec, type Config, type SettingKey } from '../config.js';

/** A mistake on the command line: printed as one line, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Where commands write: stdout for results, stderr for messages. */
export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Raw bytes to stdout (a DER CRL). */
  raw(bytes: Buffer): void;
}

/** One flag. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  /** The placeholder in help (`--count N`). */
  readonly placeholder?: string;
  readonly help: string;
  readonly defaultText?: string;
  readonly env?: string;
  /** The configuration setting this flag sets (its value is read through src/config.ts). */
  readonly setting?: SettingKey;
}

/** Flags by name (without dashes). */
export type Options = Readonly<Record<string, OptionSpec>>;

/** Parsed flag values. */
export type Values = Readonly<Record<string, string | boolean | string[] | undefined>>;

/** What a command's run function gets. */
export interface Invocation {
  readonly values: Values;
  readonly args: readonly string[];
  readonly config: Config;
  readonly out: Output;
}

/** One CLI command. */
export interface Command {
  readonly summary: string;
  /** Positional arguments as help shows them: `DEVICE_ID`, `[FILE]`. A trailing `...` takes any number. */
  readonly args?: readonly string[];
  readonly options: Options;
  /** More help text after the flags. */
  readonly notes?: string;
  /** Imports what it runs itself (see commands/index.ts). */
  run(invocation: Invocation): Promise<void>;
}

/** A flag backed by a configuration setting: its help, default and variable come from the setting. */
export function settingOption(key: SettingKey): Options {
  const spec = settingSpec(key);
  return {
    [spec.flag]: {
      type: 'string',
      ...(spec.list ? { multiple: true } : {}),
      placeholder: spec.placeholder,
      help: spec.help,
      ...(spec.defaultText === undefined ? {} : { defaultText: spec.defaultText }),
      env: spec.env,
      setting: key,
    },
  };
}

/** Flags backed by settings. */
export const settingOptions = (...keys: SettingKey[]): Options => Object.assign({}, ...keys.map(settingOption)) as Options;

/** Flags every command has. */
export const COMMON_OPTIONS: Options = {
  ...settingOptions('data', 'database'),
  config: { type: 'string', placeholder: 'FILE', help: 'read settings from this JSON file', env: 'IMPRINT_CONFIG' },
  help: { type: 'boolean', help: 'show this help' },
};

/** --json, for every command that prints something. */
export const JSON_OPTION: Options = { json: { type: 'boolean', help: 'print JSON' } };

/** The flags that make a command call a server's admin API instead of opening the data directory. */
export const REMOTE_OPTIONS: Options = settingOptions('server', 'cert', 'key', 'cacert');

/** Parses a command's arguments; every mistake is a UsageError naming the flag. */
export function parseCommand(name: string, command: Command, argv: readonly string[]): { values: Values; args: string[] } {
  const options = { ...COMMON_OPTIONS, ...command.options };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries(
        Object.entries(options).map(([flag, spec]) => [flag, { type: spec.type, ...(spec.multiple ? { multiple: true } : {}) }]),
      ),
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw usageFromParseArgs(name, options, argv, error as NodeJS.ErrnoException);
  }
  const values = parsed.values as Values;
  if (values.help) return { values, args: parsed.positionals };
  checkPositionals(name, command, parsed.positionals);
  return { values, args: parsed.positionals };
}

/** node:util's parse errors in our words. */
function usageFromParseArgs(name: string, options: Options, argv: readonly string[], error: NodeJS.ErrnoException): UsageError {
  const hint = `(see imprint ${name} --help)`;
  const flagIn = (message: string) => /'(-{1,2}[^' ]+)/.exec(message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = flagIn(error.message) ?? argv.find((arg) => arg.startsWith('-')) ?? '';
    const bare = flag.replace(/^-+/, '').replace(/=.*$/, '');
    const suggestion = closest(bare, Object.keys(options));
    return new UsageError(`unknown flag ${flag} for ${name}${suggestion ? ` (did you mean --${suggestion}?)` : ''} ${hint}`);
  }
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const flag = flagIn(error.message) ?? '';
    const bare = flag.replace(/^-+/, '').split(' ')[0]!;
    const spec = options[bare];
    if (spec?.type === 'boolean') return new UsageError(`${flag} takes no value ${hint}`);
    return new UsageError(`${flag} needs a value${spec?.placeholder ? ` (${spec.placeholder})` : ''} ${hint}`);
  }
  return new UsageError(`${error.message.split('\n')[0]} ${hint}`);
}

function checkPositionals(name: string, command: Command, positionals: readonly string[]): void {
  const declared = command.args ?? [];
  const required = declared.filter((arg) => !arg.startsWith('['));
  const variadic = declared.some((arg) => arg.endsWith('...'));
  const hint = `(see imprint ${name} --help)`;
  if (positionals.length < required.length) throw new UsageError(`${name}: missing ${required[positionals.length]} ${hint}`);
  if (!variadic && positionals.length > declared.length) throw new UsageError(`${name}: unexpected argument "${positionals[declared.length]}" ${hint}`);
}

/** A flag's text value. */
export const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** A whole number from `min` to `max`, or a UsageError. */
export function int(values: Values, name: string, min: number, max: number): number | undefined {
  const text = str(values[name]);
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
  return Number(text);
}

/** One of `allowed`, or a UsageError. */
export function oneOf<T extends string>(values: Values, name: string, allowed: readonly T[]): T | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}`);
  return value as T;
}

/** Parses with `parse`, turning its error into a UsageError for `--name`. */
export function parsed<T>(name: string, text: string | undefined, parse: (text: string) => T): T | undefined {
  if (text === undefined) return undefined;
  try {
    return parse(text);
  } catch (error) {
    throw new UsageError(`--${name}: ${(error as Error).message}`);
  }
}

/** An object with `key` only when `value` is defined (exactOptionalPropertyTypes). */
export const optional = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } =>
  (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
