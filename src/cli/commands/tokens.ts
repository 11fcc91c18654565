/** `tokens create|list|revoke`: bootstrap tokens, locally or on a server (--server). */
import { readFileSync } from 'node:fs';
import { parseDuration } from '../../duration.js';
import { MAX_TOKENS_PER_REQUEST, MAX_TOKEN_TTL_SECONDS, MIN_TOKEN_TTL_SECONDS, type MintedToken } from '../../enrollment/tokens.js';
import type { TokenStatus } from '../../enrollment/model.js';
import { int, JSON_OPTION, oneOf, optional, parsed, str, UsageError, type Command } from '../command.js';
import { LIST_OPTIONS, pageQuery, printPage, withFleet, FLEET_OPTIONS } from './fleet-helpers.js';

/** `tokens create` output formats. */
function formatTokens(tokens: readonly MintedToken[], format: string): string {
  if (format === 'json') return JSON.stringify({ tokens }, null, 2);
  if (format === 'csv') {
    return ['id,token,deviceId,expiresAt', ...tokens.map((t) => [t.id, t.token, t.deviceId ?? '', t.expiresAt].join(','))].join('\n');
  }
  return tokens.map((t) => t.token).join('\n');
}

/** Reads device ids from a file: one per line, blank lines and # comments ignored. */
function readDeviceIds(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`--device-ids-file: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
}

const TOKEN_STATUSES: readonly TokenStatus[] = ['unused', 'used', 'expired', 'revoked'];

function ttlSeconds(text: string | undefined): number | undefined {
  const seconds = parsed('ttl', text, parseDuration);
  if (seconds !== undefined && (seconds < MIN_TOKEN_TTL_SECONDS || seconds > MAX_TOKEN_TTL_SECONDS)) {
    throw new UsageError(`--ttl must be between ${MIN_TOKEN_TTL_SECONDS}s and ${MAX_TOKEN_TTL_SECONDS / 86_400}d`);
  }
  return seconds;
}

export const TOKEN_COMMANDS: Readonly<Record<string, Command>> = {
  'tokens create': {
    summary: 'mint one-time bootstrap tokens (shown once)',
    options: {
      count: { type: 'string', placeholder: 'N', help: `tokens to mint (1-${MAX_TOKENS_PER_REQUEST})`, defaultText: '1, or one per bound device id' },
      ttl: { type: 'string', placeholder: 'DURATION', help: 'how long the tokens stay valid (e.g. 12h, 30d)', defaultText: '7d' },
      label: { type: 'string', placeholder: 'LABEL', help: 'batch label (revoke a lost batch with tokens revoke --label)' },
      'device-id': { type: 'string', multiple: true, placeholder: 'ID', help: 'bind a token to this device id (repeatable)' },
      'device-ids-file': { type: 'string', placeholder: 'FILE', help: 'bind tokens to the ids in FILE, one per line' },
      format: { type: 'string', placeholder: 'lines|json|csv', help: 'output: one token per line, the API\'s JSON, or CSV for factory lines', defaultText: 'lines' },
      ...JSON_OPTION,
      ...FLEET_OPTIONS,
    },
    async run({ values, config, out }) {
      const format = oneOf(values, 'format', ['lines', 'json', 'csv'] as const) ?? (values.json ? 'json' : 'lines');
      if (values.json && format !== 'json') throw new UsageError('--json prints JSON: leave out --format, or use --format json');
      const fileIds = str(values['device-ids-file']);
      const ids = [...((values['device-id'] as string[] | undefined) ?? []), ...(fileIds ? readDeviceIds(fileIds) : [])];
      const request = {
        ...optional('count', int(values, 'count', 1, MAX_TOKENS_PER_REQUEST)),
        ...optional('ttlSeconds', ttlSeconds(str(values.ttl))),
        ...(ids.length ? { deviceIds: ids } : {}),
        ...optional('label', str(values.label)),
      };
      await withFleet(config, async (fleet) => {
        const { tokens } = await fleet.mintTokens(request);
        out.stdout(formatTokens(tokens, format));
      });
    },
  },

  'tokens list': {
    summary: 'list bootstrap tokens (never the secrets)',
    options: {
      status: { type: 'string', placeholder: TOKEN_STATUSES.join('|'), help: 'only tokens in this state' },
      label: { type: 'string', placeholder: 'LABEL', help: 'only tokens of this batch' },
      ...LIST_OPTIONS,
      ...FLEET_OPTIONS,
    },
    async run({ values, config, out }) {
      const status = oneOf(values, 'status', TOKEN_STATUSES);
      const query = { ...pageQuery(values), ...optional('status', status), ...optional('label', str(values.label)) };
      await withFleet(config, async (fleet) => {
        const page = await fleet.listTokens(query);
        printPage(out, values, page, ['ID', 'STATUS', 'LABEL', 'DEVICE', 'EXPIRES', 'USED BY'], (t) => [t.id, t.status, t.label, t.deviceId, t.expiresAt, t.usedByDevice]);
      });
    },
  },

  'tokens revoke': {
    summary: 'revoke an unused token, or every unused token of a batch (--label)',
    args: ['[TOKEN_ID]'],
    options: {
      label: { type: 'string', placeholder: 'LABEL', help: 'revoke every unused token of this batch instead' },
      ...JSON_OPTION,
      ...FLEET_OPTIONS,
    },
    async run({ values, args, config, out }) {
      const label = str(values.label);
      const [id] = args;
      if ((label === undefined) === (id === undefined)) throw new UsageError('tokens revoke takes a TOKEN_ID or --label LABEL (see imprint tokens revoke --help)');
      await withFleet(config, async (fleet) => {
        if (label !== undefined) {
          const result = await fleet.revokeTokenBatch(label);
          return out.stdout(values.json ? JSON.stringify(result, null, 2) : `revoked ${result.revoked} unused tokens of batch ${label}`);
        }
        const token = await fleet.revokeToken(id!);
        out.stdout(values.json ? JSON.stringify(token, null, 2) : `${token.id} ${token.status}`);
      });
    },
  },
};
