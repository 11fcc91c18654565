/** The audit log's hash chain: how an event's hash is computed from the one before it. */
import { hash } from 'node:crypto';
import type { AuditEventInput } from '../enrollment/model.js';

/** The previous hash of the first event. */
export const GENESIS_HASH = '0'.repeat(64);

/** An event's optional fields as stored and shown: absent is null, never undefined. */
export function auditFields(event: AuditEventInput) {
  return {
    actor: event.actor,
    action: event.action,
    outcome: event.outcome,
    source: event.source ?? null,
    tokenId: event.tokenId ?? null,
    deviceId: event.deviceId ?? null,
    serial: event.serial ?? null,
    detail: event.detail ?? null,
  };
}

/**
 * Every field of the event, in a fixed order, as the text its hash covers: PostgreSQL's
 * enrollment batches hash this text themselves (migrations/postgres/0006).
 */
export function auditText(event: AuditEventInput): string {
  return JSON.stringify([
    event.at.getTime(),
    event.actor,
    event.action,
    event.outcome,
    event.source ?? null,
    event.tokenId ?? null,
    event.deviceId ?? null,
    event.serial ?? null,
    event.detail ? JSON.stringify(event.detail) : null,
  ]);
}

/** SHA-256 over the previous hash and every field of the event (auditText). */
export function auditHash(prevHash: string, event: AuditEventInput): string {
  return hash('sha256', `${prevHash}\n${auditText(event)}`);
}
