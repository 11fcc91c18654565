/** Online backup of the store: a consistent copy taken while the server serves. */
import { resolve } from 'node:path';
import type { AuditStore, StoreLifecycle } from '../store/store.js';
import type { Actor } from './actor.js';
import type { Clock } from '../clock.js';

/** Writes the copy to `file` and records who took it; the copy holds the events before it. */
export async function backupStore(store: AuditStore & StoreLifecycle, clock: Clock, file: string, by: Actor): Promise<{ readonly file: string; readonly bytes: number }> {
  const path = resolve(file);
  const { bytes } = await store.backup(path);
  await store.appendAudit({ at: clock.now(), actor: by.actor, source: by.source, action: 'backup', outcome: 'ok', detail: { file: path, bytes } });
  return { file: path, bytes };
}
