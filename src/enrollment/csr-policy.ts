/**
 * CSR policy as small named rules run in a fixed order, cheapest refusals first: the key
 * and subject rules read what the parser described, the signature rule imports the key
 * (only one the key rule accepted) and verifies. Each rule has one job and throws an
 * ImprintError with the code of the contract.
 */
import { verifyCsrSignature, type ParsedCsr } from '../ca/csr.js';
import { ImprintError } from '../errors.js';
import type { DeviceIdPolicy } from './device-id.js';

/** One CSR rule. Synchronous: enrollment runs the rules inside its batch of CPU work (turn-batch.ts). */
export type CsrRule = (csr: ParsedCsr, context: { readonly deviceIds: DeviceIdPolicy }) => void;

const ALLOWED_CURVES = new Set(['prime256v1', 'secp384r1']);
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 4096;

/** Keys: ECDSA P-256/P-384, RSA 2048-4096 with exponent 65537. */
export const keyAlgorithmRule: CsrRule = (csr) => {
  const key = csr.key;
  if (key.type === 'ec' && 'curve' in key) {
    if (ALLOWED_CURVES.has(key.curve)) return;
    throw new ImprintError('csr_key_unsupported', `EC curve ${key.curve} is not accepted; use P-256 or P-384`);
  }
  if (key.type === 'rsa' && 'bits' in key) {
    if (key.bits < MIN_RSA_BITS || key.bits > MAX_RSA_BITS) {
      throw new ImprintError('csr_key_unsupported', `RSA-${key.bits} is not accepted; use ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
    }
    if (key.exponent !== 65537n) throw new ImprintError('csr_key_unsupported', 'RSA public exponent must be 65537');
    return;
  }
  throw new ImprintError('csr_key_unsupported', `${key.type} keys are not accepted; use ECDSA P-256/P-384 or RSA`);
};

/** Proof of possession: the CSR is signed by its own key with a fitting algorithm. */
export const signatureRule: CsrRule = (csr) => {
  if (!verifyCsrSignature(csr)) {
    throw new ImprintError('csr_signature_invalid', 'CSR signature does not verify with its public key');
  }
};

/** Exactly one CN, and it must be a valid device id. */
export const subjectRule: CsrRule = (csr, { deviceIds }) => {
  if (csr.commonNames.length !== 1) {
    throw new ImprintError('csr_subject_invalid', `CSR subject must have exactly one CN (found ${csr.commonNames.length})`);
  }
  deviceIds.check(csr.commonNames[0]!, 'csr_subject_invalid');
};

/** The rules every enrollment and renewal CSR passes, in order. */
export const CSR_RULES: readonly CsrRule[] = [keyAlgorithmRule, subjectRule, signatureRule];

/** Runs the rules; returns the CSR's device id (its CN). */
export function checkCsr(csr: ParsedCsr, deviceIds: DeviceIdPolicy): string {
  const context = { deviceIds };
  for (const rule of CSR_RULES) rule(csr, context);
  return csr.commonNames[0]!;
}
