/** The device-id pattern: what a CN or a bound id may look like. */
import { ImprintError, type ErrorCode } from '../errors.js';

/**
 * The default device-id pattern: a SPIFFE path segment (letters, digits, '.', '_', '-'),
 * so the SAN URI spiffe://<trust-domain>/device/<id> needs no escaping.
 */
export const DEFAULT_DEVICE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';

/** Checks device ids against the configured pattern. */
export class DeviceIdPolicy {
  private readonly pattern: RegExp;

  constructor(readonly source: string = DEFAULT_DEVICE_ID_PATTERN) {
    this.pattern = new RegExp(source, 'u');
  }

  matches(id: string): boolean {
    return this.pattern.test(id);
  }

  /** Throws `code` when the id does not match. */
  check(id: string, code: ErrorCode): void {
    if (!this.matches(id)) {
      throw new ImprintError(code, `device id ${JSON.stringify(id.slice(0, 80))} does not match ${this.source}`);
    }
  }
}
