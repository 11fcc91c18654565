/**
 * A store backend is one part per role (settings, tokens, redemption, ...); compose joins
 * them into the one object that answers every role.
 */
import type {
  AuditStore,
  CrlStore,
  InventoryStore,
  OperatorStore,
  RedemptionStore,
  RevocationStore,
  SettingsStore,
  Store,
  StoreLifecycle,
  TokenStore,
} from './store.js';

/**
 * One object answering every role: each method of each part bound to its part once, so a
 * call reaches the part with no wrapper in between. A part's prototype holds its role's
 * methods and nothing else (its helpers are functions of its module).
 */
export function compose(
  ...parts: [SettingsStore, TokenStore, RedemptionStore, InventoryStore, RevocationStore, CrlStore, OperatorStore, AuditStore, StoreLifecycle]
): Store {
  const store: Record<string, unknown> = {};
  for (const part of parts) {
    const prototype = Object.getPrototypeOf(part) as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(prototype)) {
      if (name === 'constructor') continue;
      if (name in store) throw new Error(`two parts of the store define ${name}`);
      store[name] = (prototype[name] as (...args: unknown[]) => unknown).bind(part);
    }
  }
  return store as unknown as Store;
}
