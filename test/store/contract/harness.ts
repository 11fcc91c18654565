/**
 * What the contract tests share: stores opened and closed around them, and the inputs the
 * services would hand a store, built small (random serials and keys, fake DER: a store
 * never parses a certificate). Times are relative to one instant so that tests can place
 * expiries before and after "now".
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, onTestFinished } from 'vitest';
import type {
  AuditEventInput,
  NewCertificate,
  NewToken,
  Redemption,
  RedemptionConflict,
  Renewal,
} from '../../../src/enrollment/model.js';
import type { Store } from '../../../src/store/store.js';
import type { StoreBackend } from './stores.js';

/** Stores of one backend for one describe block. */
export interface Stores {
  /** A store shared by the block's tests (opened once): for tests that keep to their own ids. */
  shared(): Store;
  /** A new, empty store closed when the test ends: for tests that count or order everything. */
  fresh(): Promise<Store>;
}

/** Opens the block's shared store (filled by `prepare`) before its tests and closes it after them. */
export function useStores(backend: StoreBackend, prepare?: (store: Store) => Promise<void>): Stores {
  let shared: Store | undefined;
  beforeAll(async () => {
    shared = await backend.open();
    await prepare?.(shared);
  });
  afterAll(() => shared?.close());
  return {
    shared: () => shared ?? expect.unreachable('the shared store is not open'),
    async fresh() {
      const store = await backend.open();
      onTestFinished(() => store.close());
      return store;
    },
  };
}

const BASE = Date.now();
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** The instant `minutes` after the suite's "now". */
export const at = (minutes: number): Date => new Date(BASE + minutes * MINUTE);
/** The instant `days` after the suite's "now". */
export const atDay = (days: number): Date => new Date(BASE + days * DAY);

/** `bytes` random bytes as lowercase hex. */
export const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

/** A unique id that fits the device-id pattern, e.g. `dev-3f9a0c12b4e1`. */
export const newId = (prefix = 'dev'): string => `${prefix}-${hex(6)}`;

/** A certificate serial as the CA makes them: 16 random bytes, positive, lowercase hex. */
export function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

/** An audit event at "now" by an operator. */
export function audit(action: string, fields: Partial<AuditEventInput> = {}): AuditEventInput {
  return { at: at(0), actor: 'operator:alice', action, outcome: 'ok', ...fields };
}

/** A token to insert: unbound, unlabelled, valid for an hour. */
export function newToken(fields: Partial<NewToken> = {}): NewToken {
  return {
    id: newId('tok'),
    hash: randomBytes(32),
    label: null,
    deviceId: null,
    createdAt: at(0),
    createdBy: 'operator:alice',
    expiresAt: at(60),
    mayReprovision: false,
    ...fields,
  };
}

/** Inserts one token and returns it. */
export async function mint(store: Store, fields: Partial<NewToken> = {}): Promise<NewToken> {
  const token = newToken(fields);
  expect(await store.createTokens([token], audit('tokens.create'))).toEqual({ ok: true });
  return token;
}

/** What a test may choose of a certificate (its owner comes from the helper). */
type CertificateFields = Partial<Omit<NewCertificate, 'kind' | 'deviceId'>>;

/** A device certificate valid for 90 days with a fresh key. */
export function deviceCertificate(deviceId: string, fields: CertificateFields = {}): NewCertificate & { deviceId: string } {
  return {
    serial: newSerial(),
    kind: 'device',
    subject: deviceId,
    deviceId,
    spkiSha256: hex(32),
    notBefore: at(-5),
    notAfter: atDay(90),
    issuedAt: at(0),
    tokenId: null,
    der: randomBytes(48),
    ...fields,
  };
}

/** An operator certificate with a fresh key. */
export function operatorCertificate(name: string, fields: CertificateFields = {}): NewCertificate {
  return { ...deviceCertificate(name, fields), kind: 'operator', deviceId: null };
}

/** The redemption the enrollment service would ask for: the mode follows from the token, as there. */
export function redemption(
  token: NewToken,
  deviceId: string,
  fields: Omit<Partial<Redemption>, 'certificate'> & { certificate?: CertificateFields } = {},
): Redemption {
  const certificate = deviceCertificate(deviceId, { tokenId: token.id, ...fields.certificate });
  return {
    tokenId: token.id,
    now: at(1),
    csrSha256: hex(32),
    mode: token.deviceId === null ? 'unbound' : token.mayReprovision ? 'reprovision' : 'create',
    supersede: 'superseded',
    audit: audit('enroll', { actor: 'anonymous', deviceId, tokenId: token.id, serial: certificate.serial }),
    ...fields,
    certificate,
  };
}

/** Redeems and expects `expected` (ok by default). */
export async function redeem(store: Store, r: Redemption, expected: 'ok' | RedemptionConflict = 'ok'): Promise<Redemption> {
  const result = await store.redeemTokenAndRecordCertificate(r);
  expect(result).toEqual(expected === 'ok' ? { ok: true } : { ok: false, conflict: expected });
  return r;
}

/** Enrolls a new device with an unbound token; returns the redemption (its certificate, key and token). */
export async function enroll(
  store: Store,
  deviceId = newId(),
  fields: Parameters<typeof redemption>[2] = {},
): Promise<Redemption> {
  return redeem(store, redemption(await mint(store), deviceId, fields));
}

/** The renewal the enrollment service would ask for, presenting `presentedSerial`. */
export function renewal(
  deviceId: string,
  presentedSerial: string,
  fields: Omit<Partial<Renewal>, 'certificate'> & { certificate?: CertificateFields } = {},
): Renewal {
  const certificate = deviceCertificate(deviceId, { renewedFrom: presentedSerial, csrSha256: hex(32), issuedAt: at(2), ...fields.certificate });
  return {
    now: at(2),
    presentedSerial,
    retireAt: atDay(1),
    limit: { max: 100, since: atDay(-1) },
    supersede: 'superseded',
    audit: audit('renew', { actor: `device:${deviceId}`, deviceId, serial: certificate.serial }),
    ...fields,
    certificate,
  };
}

/** Every page of a listing, following its cursors. */
export async function allPages<T>(list: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>): Promise<T[][]> {
  const pages: T[][] = [];
  let cursor: string | undefined;
  do {
    const page = await list(cursor);
    pages.push(page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return pages;
}
