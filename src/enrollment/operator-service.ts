/**
 * Operators: people and factory scripts that hold a client certificate with a role.
 * `admin` may do everything; `provisioner` may only mint and list tokens.
 */
import { createHash, createPublicKey } from 'node:crypto';
import type { CertificateAuthority } from '../ca/authority.js';
import { generateP256 } from '../ca/keys.js';
import type { Clock } from '../clock.js';
import { ImprintError } from '../errors.js';
import type { OperatorRecord, OperatorRole } from './model.js';
import type { OperatorStore } from '../store/store.js';
import { operatorActor, type Actor } from './actor.js';

const OPERATOR_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Refuses a name outside the pattern (it also names files, so it never holds a path separator). */
export function checkOperatorName(name: string): void {
  if (!OPERATOR_NAME.test(name)) throw new ImprintError('bad_request', `operator name must match ${OPERATOR_NAME.source}`);
}
export const OPERATOR_ROLES: readonly OperatorRole[] = ['admin', 'provisioner'];
const DEFAULT_OPERATOR_VALIDITY_DAYS = 365;

/** A newly issued operator identity: the only time its private key exists outside the holder. */
export interface IssuedOperator {
  readonly name: string;
  readonly role: OperatorRole;
  readonly serial: string;
  readonly notAfter: string;
  readonly certificatePem: string;
  readonly chainPem: readonly string[];
  readonly keyPem: string;
}

/** An operator as listed. */
export interface OperatorView {
  readonly name: string;
  readonly role: OperatorRole;
  readonly status: OperatorRecord['status'];
  readonly createdAt: string;
  readonly createdBy: string;
  readonly revokedAt: string | null;
}

const view = (operator: OperatorRecord): OperatorView => ({
  name: operator.name,
  role: operator.role,
  status: operator.status,
  createdAt: operator.createdAt.toISOString(),
  createdBy: operator.createdBy,
  revokedAt: operator.revokedAt?.toISOString() ?? null,
});

/** Issues, lists and revokes operator identities. */
export class OperatorService {
  constructor(
    private readonly store: OperatorStore,
    private readonly ca: CertificateAuthority,
    private readonly clock: Clock,
  ) {}

  /** Makes a key and a certificate for a new operator. */
  async issue(request: { name: string; role: string; validityDays?: number | undefined }, by: Actor): Promise<IssuedOperator> {
    checkOperatorName(request.name);
    if (!(OPERATOR_ROLES as readonly string[]).includes(request.role)) {
      throw new ImprintError('bad_request', `role must be one of ${OPERATOR_ROLES.join(', ')}`);
    }
    const days = request.validityDays ?? DEFAULT_OPERATOR_VALIDITY_DAYS;
    if (!Number.isInteger(days) || days < 1 || days > 3650) throw new ImprintError('bad_request', 'validity must be 1 to 3650 days');
    const role = request.role as OperatorRole;
    const now = this.clock.now();
    const key = generateP256();
    const spki = createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' });
    const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000 - 5 * 60_000);
    const issued = this.ca.issueClientCertificate({
      kind: 'operator',
      name: request.name,
      keyType: 'ec',
      subjectPublicKeyInfo: spki,
      subjectPublicKeyBits: spki.subarray(spki.length - 65),
      notBefore,
      notAfter: new Date(notBefore.getTime() + days * 86_400_000),
    });
    const outcome = await this.store.recordOperator(
      {
        name: request.name,
        role,
        createdBy: by.actor,
        certificate: {
          serial: issued.serial,
          kind: 'operator',
          subject: request.name,
          deviceId: null,
          spkiSha256: createHash('sha256').update(spki).digest('hex'),
          notBefore: issued.notBefore,
          notAfter: issued.notAfter,
          issuedAt: now,
          tokenId: null,
          der: issued.der,
        },
      },
      { at: now, actor: by.actor, action: 'operators.issue', outcome: 'ok', source: by.source, serial: issued.serial, detail: { name: request.name, role } },
    );
    if (!outcome.ok) throw new ImprintError('operator_exists', `operator ${request.name} already exists; revoke it first`);
    return {
      name: request.name,
      role,
      serial: issued.serial,
      notAfter: issued.notAfter.toISOString(),
      certificatePem: issued.pem,
      chainPem: this.ca.chainPem,
      keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
  }

  async list(): Promise<OperatorView[]> {
    return (await this.store.listOperators()).map(view);
  }

  /**
   * Revokes an operator, all its certificates and the tokens it minted that are still
   * unused: a factory line's identity that leaked must not leave redeemable tokens behind.
   */
  async revoke(name: string, by: Actor): Promise<OperatorView & { revokedSerials: readonly string[]; revokedTokens: number }> {
    const result = await this.store.revokeOperator(name, operatorActor(name), 'privilegeWithdrawn', {
      at: this.clock.now(),
      actor: by.actor,
      action: 'operators.revoke',
      outcome: 'ok',
      source: by.source,
      detail: { name },
    });
    if (!result) throw new ImprintError('not_found', `no operator ${name}`);
    return { ...view(result.operator), revokedSerials: result.revoked, revokedTokens: result.revokedTokens };
  }
}
