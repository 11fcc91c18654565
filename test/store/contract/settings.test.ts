/** Store contract, settings: what init chose is read back as written, and overwritten by key. */
import { describe, expect, it } from 'vitest';
import { useStores } from './harness.js';
import { STORES } from './stores.js';

describe.each(STORES)('$name store: settings', (backend) => {
  const stores = useStores(backend);

  it('round-trips settings and overwrites them by key', async () => {
    const store = await stores.fresh();
    const before = await store.getSettings();
    const written = {
      public_url: 'https://enroll.example.com:8443',
      trust_domain: 'example.com',
      device_id_pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
      organization: "Müller & Söhne 'GmbH' \u{1F4E1}",
      empty: '',
    };
    await store.putSettings(written);
    expect(await store.getSettings()).toEqual({ ...before, ...written });
    await store.putSettings({ trust_domain: 'example.org' });
    expect(await store.getSettings()).toEqual({ ...before, ...written, trust_domain: 'example.org' });
    await store.putSettings({});
    expect(await store.getSettings()).toEqual({ ...before, ...written, trust_domain: 'example.org' });
  });
});
