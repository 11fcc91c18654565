#!/usr/bin/env node
/**
 * The `imprint` command line: finds the command, parses its flags, reads the configuration
 * and runs it. Exit status: 0 done, 1 the operation failed, 2 a usage or configuration
 * mistake; either failure is one line on stderr.
 */
import { ConfigError, closest, loadConfig } from '../config.js';
import { ImprintError } from '../errors.js';
import { VERSION } from '../version.js';
import { COMMON_OPTIONS, parseCommand, UsageError, type Command, type Output } from './command.js';
import { COMMANDS, GROUPS } from './commands/index.js';
import { commandHelp, groupHelp, mainHelp } from './help.js';
import { RemoteError } from './remote-error.js';

// A reader that stops early (`imprint certs show X | head -2`) closes the pipe: that is
// the reader's choice, not a failure. End quietly instead of dying on EPIPE.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  process.stderr.write(`imprint: cannot write to stdout: ${error.message}\n`);
  process.exit(1);
});

const output: Output = {
  stdout: (text) => void process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`),
  stderr: (text) => void process.stderr.write(`${text}\n`),
  raw: (bytes) => void process.stdout.write(bytes),
};

const HELP = new Set(['--help', '-h', 'help']);

/** The first words of commands: groups and single commands. */
const firstWords = (): string[] => [...new Set(Object.keys(COMMANDS).map((name) => name.split(' ')[0]!))];

const isGroup = (word: string): boolean => word in GROUPS || Object.keys(COMMANDS).some((name) => name.startsWith(`${word} `));

/** "unknown command" with the nearest command, as one line. */
function unknownCommand(words: readonly string[]): UsageError {
  const [first, second] = words;
  if (first && isGroup(first) && second !== undefined) {
    const members = Object.keys(COMMANDS).filter((name) => name.startsWith(`${first} `)).map((name) => name.split(' ')[1]!);
    const hint = closest(second, members);
    return new UsageError(`unknown command "${first} ${second}"${hint ? `; did you mean "${first} ${hint}"?` : ''} (see imprint ${first} --help)`);
  }
  const hint = closest(first!, firstWords());
  const suggestion = hint && second !== undefined && COMMANDS[`${hint} ${second}`] ? `${hint} ${second}` : hint;
  return new UsageError(`unknown command "${first}"${suggestion ? `; did you mean "${suggestion}"?` : ''} (see imprint --help)`);
}

/** The command named by the first one or two words, and the arguments after them. */
function findCommand(argv: readonly string[]): { name: string; command: Command; rest: string[] } | { help: string } {
  const [first, second] = argv;
  if (second !== undefined && COMMANDS[`${first} ${second}`]) return { name: `${first} ${second}`, command: COMMANDS[`${first} ${second}`]!, rest: argv.slice(2) };
  if (COMMANDS[first!]) return { name: first!, command: COMMANDS[first!]!, rest: argv.slice(1) };
  if (isGroup(first!)) {
    if (second !== undefined && HELP.has(second)) return { help: groupHelp(first!, COMMANDS) };
    if (second === undefined || second.startsWith('-')) {
      const members = Object.keys(COMMANDS).filter((name) => name.startsWith(`${first} `)).map((name) => name.split(' ')[1]);
      throw new UsageError(`${first} needs a command: ${members.join(', ')} (see imprint ${first} --help)`);
    }
  }
  throw unknownCommand(argv);
}

async function main(argv: readonly string[]): Promise<number> {
  const [first] = argv;
  if (first === undefined) throw new UsageError('no command given (see imprint --help)');
  if (first === '--version' || first === '-V' || first === 'version') {
    output.stdout(argv.includes('--json') ? JSON.stringify({ version: VERSION }) : VERSION);
    return 0;
  }
  if (HELP.has(first)) {
    const topic = argv[1];
    if (topic === undefined) output.stdout(mainHelp(COMMANDS));
    else {
      const found = findCommand(argv.slice(1));
      output.stdout('help' in found ? found.help : commandHelp(found.name, found.command));
    }
    return 0;
  }
  if (first.startsWith('-')) throw new UsageError(`unknown flag ${first}: the command comes first (see imprint --help)`);
  const found = findCommand(argv);
  if ('help' in found) {
    output.stdout(found.help);
    return 0;
  }
  const { name, command, rest } = found;
  const { values, args } = parseCommand(name, command, rest);
  if (values.help) {
    output.stdout(commandHelp(name, command));
    return 0;
  }
  const options = { ...COMMON_OPTIONS, ...command.options };
  const flags = Object.fromEntries(Object.entries(options).filter(([, spec]) => spec.setting).map(([flag]) => [flag, values[flag]]));
  const config = loadConfig({ flags, env: process.env, configFile: typeof values.config === 'string' ? values.config : undefined });
  await command.run({ values, args, config, out: output });
  return 0;
}

/** The one line a failure prints, and its exit status. */
function failure(error: unknown): { line: string; status: number } {
  if (error instanceof UsageError || error instanceof ConfigError) return { line: error.message, status: 2 };
  if (error instanceof ImprintError || error instanceof RemoteError) return { line: `${error.code}: ${error.message}`, status: 1 };
  return { line: String((error as Error)?.message ?? error), status: 1 };
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const { line, status } = failure(error);
    process.stderr.write(`imprint: ${line.split('\n')[0]}\n`);
    process.exitCode = status;
    // A failed command has nothing left to do: should anything it started still hold the
    // event loop (a listener, a worker's IPC channel), end anyway rather than linger.
    setTimeout(() => process.exit(status), 500).unref();
  },
);
