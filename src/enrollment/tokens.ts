/**
 * Bootstrap tokens: `imp_` + 32 random bytes base64url, shown once, stored only as
 * SHA-256. Minting, listing and revoking are here; redeeming is part of enrollment.
 */
import { hash, randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import { ImprintError } from '../errors.js';
import type { AuditEventInput, Page, TokenBatchRecord, TokenRecord, TokenStatus } from './model.js';
import type { InventoryStore, TokenStore } from '../store/store.js';
import type { Actor } from './actor.js';
import { checkLimit, listPage } from './paging.js';
import type { DeviceIdPolicy } from './device-id.js';

const TOKEN_PATTERN = /^imp_[A-Za-z0-9_-]{43}$/;

/** Hash under which a token is stored and looked up. */
export const hashToken = (token: string): Buffer => hash('sha256', token, 'buffer');

/** True when a string has the shape of a token (checked before any lookup). */
export const isWellFormedToken = (token: string): boolean => TOKEN_PATTERN.test(token);

/** Limits of one minting request. */
export const MAX_TOKENS_PER_REQUEST = 10_000;
export const MIN_TOKEN_TTL_SECONDS = 60;
export const MAX_TOKEN_TTL_SECONDS = 366 * 86_400;
export const DEFAULT_TOKEN_TTL_SECONDS = 7 * 86_400;

/** A minting request as the API and the CLI take it. */
export interface MintRequest {
  readonly count?: number | undefined;
  readonly ttlSeconds?: number | undefined;
  readonly deviceIds?: readonly string[] | undefined;
  readonly label?: string | undefined;
}

/** A minted token: the only time the token itself exists outside the device. */
export interface MintedToken {
  readonly id: string;
  readonly token: string;
  readonly deviceId: string | null;
  readonly expiresAt: string;
}

/** Token view for listings (no secret). */
export interface TokenView {
  readonly id: string;
  readonly status: TokenStatus;
  readonly label: string | null;
  readonly deviceId: string | null;
  readonly createdAt: string;
  readonly createdBy: string;
  readonly expiresAt: string;
  readonly usedAt: string | null;
  readonly usedByDevice: string | null;
  readonly revokedAt: string | null;
}

/** A batch of tokens (one label) as operators see it; `label` null gathers the unlabelled tokens. */
export type TokenBatchView = { readonly [K in keyof TokenBatchRecord]: TokenBatchRecord[K] extends Date ? string : TokenBatchRecord[K] };

/** How many batches a listing shows at most (newest first). */
export const MAX_BATCHES_LISTED = 200;

/** The lifecycle state of a stored token at a given time. */
export function tokenStatus(token: TokenRecord, now: Date): TokenStatus {
  if (token.usedAt) return 'used';
  if (token.revokedAt) return 'revoked';
  return token.expiresAt <= now ? 'expired' : 'unused';
}

const view = (token: TokenRecord, now: Date): TokenView => ({
  id: token.id,
  status: tokenStatus(token, now),
  label: token.label,
  deviceId: token.deviceId,
  createdAt: token.createdAt.toISOString(),
  createdBy: token.createdBy,
  expiresAt: token.expiresAt.toISOString(),
  usedAt: token.usedAt?.toISOString() ?? null,
  usedByDevice: token.usedByDevice,
  revokedAt: token.revokedAt?.toISOString() ?? null,
});

/** A batch label: 1-64 printable ASCII characters, so that it fits a CSV line and a log line as it is. */
function checkLabel(label: string): void {
  if (!/^[\x21-\x7e][\x20-\x7e]{0,63}$/.test(label)) throw new ImprintError('bad_request', 'label must be 1-64 printable ASCII characters');
}

/** Mints, lists and revokes bootstrap tokens; shared by the CLI and the admin API. */
export class TokenService {
  constructor(
    private readonly store: TokenStore & InventoryStore,
    private readonly clock: Clock,
    private readonly deviceIds: DeviceIdPolicy,
    private readonly random: (size: number) => Buffer = randomBytes,
  ) {}

  /** Mints `count` tokens, or one per device id when ids are given, in one transaction. */
  async mint(request: MintRequest, by: Actor): Promise<{ tokens: MintedToken[] }> {
    const ids = request.deviceIds;
    const count = request.count ?? ids?.length ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > MAX_TOKENS_PER_REQUEST) {
      throw new ImprintError('bad_request', `count must be between 1 and ${MAX_TOKENS_PER_REQUEST}`);
    }
    if (ids) {
      if (ids.length !== count) throw new ImprintError('bad_request', 'count must equal the number of deviceIds');
      for (const id of ids) this.deviceIds.check(id, 'bad_request');
      if (new Set(ids).size !== ids.length) throw new ImprintError('bad_request', 'deviceIds contains duplicates');
    }
    const ttl = request.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < MIN_TOKEN_TTL_SECONDS || ttl > MAX_TOKEN_TTL_SECONDS) {
      throw new ImprintError(
        'bad_request',
        `ttlSeconds must be between ${MIN_TOKEN_TTL_SECONDS} and ${MAX_TOKEN_TTL_SECONDS}`,
      );
    }
    const label = request.label ?? null;
    if (label !== null) checkLabel(label);
    // A token bound to an existing device re-provisions it (its certificates are revoked):
    // that takes a device away from whoever holds it, so only an admin may mint one. A
    // provisioner may pre-bind ids no device has yet; its tokens can never re-provision,
    // also when the device appears between minting and enrolling.
    const mayReprovision = by.role === 'admin';
    if (ids && !mayReprovision) {
      const existing = await this.store.existingDeviceIds(ids);
      if (existing.length) {
        throw new ImprintError(
          'forbidden',
          `only an admin may bind tokens to existing devices (${existing.slice(0, 5).join(', ')}${existing.length > 5 ? ', ...' : ''})`,
        );
      }
    }
    const now = this.clock.now();
    const expiresAt = new Date(now.getTime() + ttl * 1000);
    const minted = Array.from({ length: count }, (_, i) => {
      const token = `imp_${this.random(32).toString('base64url')}`;
      return {
        id: `tok_${this.random(8).toString('hex')}`,
        token,
        hash: hashToken(token),
        deviceId: ids?.[i] ?? null,
      };
    });
    const { ok } = await this.store.createTokens(
      minted.map((t) => ({
        id: t.id,
        hash: t.hash,
        label,
        deviceId: t.deviceId,
        createdAt: now,
        createdBy: by.actor,
        expiresAt,
        mayReprovision: mayReprovision && t.deviceId !== null,
      })),
      {
        at: now,
        actor: by.actor,
        action: 'tokens.create',
        outcome: 'ok',
        source: by.source,
        detail: { count, label, ttlSeconds: ttl, bound: ids !== undefined },
      },
      by.operator,
    );
    if (!ok) throw new ImprintError('client_cert_invalid', 'this operator has been revoked');
    return {
      tokens: minted.map((t) => ({ id: t.id, token: t.token, deviceId: t.deviceId, expiresAt: expiresAt.toISOString() })),
    };
  }

  /** Lists tokens (never the secrets), filtered and paginated. */
  async list(query: {
    status?: TokenStatus | undefined;
    label?: string | undefined;
    limit?: number | undefined;
    cursor?: string | undefined;
  }): Promise<Page<TokenView>> {
    const now = this.clock.now();
    const page = await listPage(this.store.listTokens({ ...query, limit: checkLimit(query.limit), now }));
    return { items: page.items.map((token) => view(token, now)), nextCursor: page.nextCursor };
  }

  /** The batches (tokens grouped by label), newest first, with how many tokens are in each state. */
  async listBatches(limit = MAX_BATCHES_LISTED): Promise<TokenBatchView[]> {
    const now = this.clock.now();
    const batches = await this.store.listTokenBatches({ now, limit });
    return batches.map((batch) => ({
      ...batch,
      firstCreatedAt: batch.firstCreatedAt.toISOString(),
      lastCreatedAt: batch.lastCreatedAt.toISOString(),
      lastExpiresAt: batch.lastExpiresAt.toISOString(),
    }));
  }

  /** Revokes every unused token of a batch (a lost CSV file); returns how many. */
  async revokeBatch(label: string, by: Actor): Promise<{ label: string; revoked: number }> {
    checkLabel(label);
    const audit: AuditEventInput = { at: this.clock.now(), actor: by.actor, action: 'tokens.revoke_batch', outcome: 'ok', source: by.source };
    return { label, revoked: await this.store.revokeTokensByLabel(label, audit) };
  }

  /** Revokes one unused token; a used token is token_used (it stays used), an unknown id not_found. */
  async revoke(id: string, by: Actor): Promise<TokenView> {
    const now = this.clock.now();
    const audit: AuditEventInput = { at: now, actor: by.actor, action: 'tokens.revoke', outcome: 'ok', source: by.source, tokenId: id };
    const token = await this.store.revokeToken(id, audit);
    if (!token) throw new ImprintError('not_found', `no token with id ${id}`);
    if (token.usedAt) {
      throw new ImprintError('token_used', `token ${id} was already used by device ${token.usedByDevice}; revoke the device instead`);
    }
    return view(token, now);
  }
}
