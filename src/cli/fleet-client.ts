/**
 * The operations the CLI's fleet commands (tokens, devices, certs, audit, crl) perform,
 * as one interface with two implementations: the services on a local data directory, or a
 * server's admin API over HTTPS with an operator certificate (--server). Each command is
 * written once against this interface.
 */
import type { AuditEventView } from '../enrollment/audit-service.js';
import type { DeviceDetail, DeviceRevocation } from '../enrollment/fleet-service.js';
import type { MintRequest, MintedToken, TokenView } from '../enrollment/tokens.js';
import type { CertificateView, DeviceView } from '../enrollment/views.js';
import { loadCaCertificates } from '../ca/ca-directory.js';
import { publishedCrlWithoutKey } from '../enrollment/crl-publisher.js';
import { crlDer, type SignedCrl } from '../ca/crl.js';
import { CrlEntryList } from '../ca/crl-entries.js';
import { openInstance, type Instance } from '../instance.js';
import type { Config } from '../config.js';
import type { Page, TokenStatus } from '../enrollment/model.js';
import { ImprintError } from '../errors.js';
import { cliActor } from './cli-actor.js';

/** A token listing's filters. */
export interface TokenQuery {
  readonly status?: TokenStatus;
  readonly label?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/** A device listing's filters. */
export interface DeviceQuery {
  readonly status?: 'active' | 'revoked';
  readonly q?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/** A certificate listing's filters. */
export interface CertificateQuery {
  readonly deviceId?: string;
  readonly kind?: 'device' | 'operator';
  readonly status?: 'active' | 'revoked';
  readonly limit?: number;
  readonly cursor?: string;
}

/** An audit listing's filters. */
export interface AuditQuery {
  readonly since?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/** The current CRLs, DER. */
export interface Crls {
  readonly issuer: Buffer;
  readonly root?: Buffer;
}

/** What the fleet commands call, locally or on a server. */
export interface FleetClient {
  /** Where the operations go, for messages: the data directory or the server's URL. */
  readonly target: string;
  mintTokens(request: MintRequest): Promise<{ tokens: MintedToken[] }>;
  listTokens(query: TokenQuery): Promise<Page<TokenView>>;
  revokeToken(id: string): Promise<TokenView>;
  revokeTokenBatch(label: string): Promise<{ label: string; revoked: number }>;
  listDevices(query: DeviceQuery): Promise<Page<DeviceView>>;
  getDevice(id: string): Promise<DeviceDetail>;
  revokeDevice(id: string, reason: string | undefined): Promise<DeviceRevocation>;
  listCertificates(query: CertificateQuery): Promise<Page<CertificateView>>;
  getCertificate(serial: string): Promise<CertificateView>;
  revokeCertificate(serial: string, reason: string | undefined): Promise<CertificateView>;
  listAudit(query: AuditQuery): Promise<Page<AuditEventView>>;
  /** The issuing CA's CRL and, when asked, the root's. */
  crls(withRoot: boolean): Promise<Crls>;
  close(): Promise<void>;
}

/** The fleet operations on an opened data directory, through the same services as the API. */
export class LocalFleetClient implements FleetClient {
  readonly target: string;
  /** The issuing CA's CRL entries as last put together: `crl --watch` asks every second. */
  private readonly crlEntries = new CrlEntryList();

  constructor(private readonly instance: Instance) {
    this.target = instance.dataDir;
  }

  static async open(config: Config): Promise<LocalFleetClient> {
    return new LocalFleetClient(await openInstance(config.dataDir, { passphrase: config.caPassphrase, databaseUrl: config.database }));
  }

  mintTokens(request: MintRequest) {
    return this.instance.tokens.mint(request, cliActor());
  }
  listTokens(query: TokenQuery) {
    return this.instance.tokens.list(query);
  }
  revokeToken(id: string) {
    return this.instance.tokens.revoke(id, cliActor());
  }
  revokeTokenBatch(label: string) {
    return this.instance.tokens.revokeBatch(label, cliActor());
  }
  listDevices(query: DeviceQuery) {
    return this.instance.fleet.listDevices(query);
  }
  getDevice(id: string) {
    return this.instance.fleet.getDevice(id);
  }
  revokeDevice(id: string, reason: string | undefined) {
    return this.instance.fleet.revokeDevice(id, reason, cliActor());
  }
  listCertificates(query: CertificateQuery) {
    return this.instance.fleet.listCertificates(query);
  }
  getCertificate(serial: string) {
    return this.instance.fleet.getCertificate(serial);
  }
  revokeCertificate(serial: string, reason: string | undefined) {
    return this.instance.fleet.revokeCertificate(serial, reason, cliActor());
  }
  listAudit(query: AuditQuery) {
    return this.instance.audit.list(query);
  }

  /**
   * The CRLs as published in the store when they include the latest revocation and are
   * less than a day old: exporting them then needs the CA certificates, no CA key (a host
   * with the database but an encrypted key, or none). Otherwise they are built and
   * published, which needs the key.
   */
  async crls(withRoot: boolean): Promise<Crls> {
    const certificates = loadCaCertificates(this.instance.dataDir);
    const published = (scope: 'issuer' | 'root') => publishedCrlWithoutKey(this.instance.store, certificates[scope], scope, this.instance.clock.now(), this.crlEntries);
    const issuer = (await published('issuer')) ?? crlDer(await this.signed((crls) => crls.issuerCrl()));
    if (!withRoot) return { issuer };
    const root = (await published('root')) ?? crlDer(await this.signed((crls) => crls.rootCrl()));
    return { issuer, root };
  }

  private async signed(build: (crls: ReturnType<Instance['signing']>['crls']) => Promise<SignedCrl>): Promise<SignedCrl> {
    let signing: ReturnType<Instance['signing']>;
    try {
      signing = this.instance.signing();
    } catch (error) {
      if (error instanceof ImprintError) throw error;
      throw new Error(`no current CRL is published and the CA key cannot be read to build one (${(error as Error).message}); ask a running server with --server`, {
        cause: error,
      });
    }
    return build(signing.crls);
  }

  close(): Promise<void> {
    return this.instance.close();
  }
}
