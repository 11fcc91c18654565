#!/usr/bin/env node
/** The `imprint` command line: dispatches to a command and turns failures into one line. */
import { parseArgs } from 'node:util';
import { ImprintError } from '../errors.js';
import { COMMANDS, type Output } from './commands.js';

const output: Output = {
  stdout: (text) => process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
};

function help(): string {
  return [
    'usage: imprint <command> [options]',
    '',
    ...Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(15)} ${command.summary}`),
    '',
    'Every command takes --data DIR (default: $IMPRINT_DATA or ./data).',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [first, second] = argv;
  if (!first || first === '--help' || first === '-h' || first === 'help') {
    output.stdout(help());
    return first ? 0 : 2;
  }
  const name = second && COMMANDS[`${first} ${second}`] ? `${first} ${second}` : first;
  const command = COMMANDS[name];
  if (!command) {
    output.stderr(`imprint: unknown command "${argv.slice(0, 2).join(' ')}" (see imprint --help)`);
    return 2;
  }
  const rest = argv.slice(name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    output.stdout(`usage: imprint ${command.usage}`);
    return 0;
  }
  const { values, positionals } = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
  await command.run(values, positionals, output);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message = error instanceof ImprintError ? `${error.code}: ${error.message}` : (error as Error).message;
    process.stderr.write(`imprint: ${message.split('\n')[0]}\n`);
    process.exitCode = 1;
    // A failed command has nothing left to do: should anything it started still hold the
    // event loop (a listener, a worker's IPC channel), end anyway rather than linger.
    setTimeout(() => process.exit(1), 500).unref();
  },
);
