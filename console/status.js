// Status: the CRL (number, last build, entries), this process's OCSP answers, version and uptime.
import { api } from './api.js';
import { h, table, time } from './dom.js';

function duration(seconds) {
  const d = Math.floor(seconds / 86400);
  const hrs = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return `${d ? `${d} d ` : ''}${d || hrs ? `${hrs} h ` : ''}${m} min`;
}

export async function statusPage(view) {
  const s = await api('status');
  view.append(
    h('h1', {}, 'Status'),
    h(
      'section',
      { 'aria-labelledby': 'server-h' },
      h('h2', { id: 'server-h' }, 'Server'),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Version'),
        h('dd', { id: 'version' }, `imprint ${s.version} on Node ${s.node}`),
        h('dt', {}, 'Up for'),
        h('dd', {}, duration(s.uptimeSeconds)),
      ),
    ),
    h(
      'section',
      { 'aria-labelledby': 'crl-h' },
      h('h2', { id: 'crl-h' }, 'CRL (issuing CA)'),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'CRL number'),
        h('dd', { id: 'crl-number' }, String(s.crl.crlNumber)),
        h('dt', {}, 'Last built'),
        h('dd', {}, time(s.crl.builtAt)),
        h('dt', {}, 'Next update'),
        h('dd', {}, time(s.crl.nextUpdate)),
        h('dt', {}, 'Entries'),
        h('dd', { id: 'crl-entries' }, s.crl.entries.toLocaleString()),
        h('dt', {}, 'Size'),
        h('dd', {}, `${s.crl.bytes.toLocaleString()} bytes`),
      ),
    ),
    h(
      'section',
      { 'aria-labelledby': 'ocsp-h' },
      h('h2', { id: 'ocsp-h' }, 'OCSP answers'),
      h('p', { class: 'hint' }, 'Counted by the process that answered this page since it started; GET /metrics sums every worker.'),
      table('OCSP responses by status and kind', ['Status', 'Kind', 'Responses'], s.ocsp.map((o) => [o.status, o.kind, o.count.toLocaleString()]), 'None yet.'),
    ),
  );
}
