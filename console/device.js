// Device: its status, current certificate, certificate history, its audit events, and the
// Revoke button (a reason, a confirmation, then the result).
import { api, describe } from './api.js';
import { announce, badge, field, h, message, replace, table, time } from './dom.js';

const REASON_HELP = {
  unspecified: 'No reason given',
  keyCompromise: 'The key may be known to someone else (stolen or cloned device): the key can never be certified again',
  affiliationChanged: 'The device changed owner or organisation',
  superseded: 'Replaced by another device',
  cessationOfOperation: 'Decommissioned',
  privilegeWithdrawn: 'No longer allowed on the fleet',
};

export async function devicePage(view, { session, argument: id }) {
  if (!id) throw new Error('no device id in the address');
  const [device, events] = await Promise.all([api(`devices/${encodeURIComponent(id)}`), api('audit', { query: { deviceId: id, limit: '50' } })]);
  const result = h('div', { id: 'revoke-result' });
  const body = h('div', {});
  view.append(h('p', {}, h('a', { href: '#/fleet' }, '← Fleet')), h('h1', {}, 'Device ', h('span', { class: 'mono' }, device.id)), result, body);
  draw(body, device, events.items, session, result);
}

function draw(body, device, events, session, result) {
  const current = device.certificates.find((c) => c.serial === device.currentSerial);
  replace(
    body,
    h(
      'section',
      { 'aria-labelledby': 'summary-h' },
      h('h2', { id: 'summary-h' }, 'Summary'),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Status'),
        h('dd', { id: 'device-status' }, badge(device.status), device.revocationReason ? ` (${device.revocationReason})` : ''),
        h('dt', {}, 'Enrolled'),
        h('dd', {}, time(device.enrolledAt), ` via ${device.enrolledVia}`, device.enrollmentLabel ? ` (${device.enrollmentLabel})` : ''),
        device.revokedAt ? [h('dt', {}, 'Revoked'), h('dd', {}, time(device.revokedAt))] : null,
      ),
    ),
    h(
      'section',
      { 'aria-labelledby': 'current-h' },
      h('h2', { id: 'current-h' }, 'Current certificate'),
      current
        ? h(
            'dl',
            { class: 'facts' },
            h('dt', {}, 'Serial'),
            h('dd', { class: 'mono', id: 'current-serial' }, current.serial),
            h('dt', {}, 'Valid'),
            h('dd', {}, time(current.notBefore), ' to ', time(current.notAfter)),
            h('dt', {}, 'Key'),
            h('dd', {}, current.keyType),
            h('dt', {}, 'SPKI SHA-256'),
            h('dd', { class: 'mono wrap' }, current.spkiSha256),
            h('dt', {}, 'Status'),
            h('dd', {}, badge(current.status), current.revocationReason ? ` (${current.revocationReason})` : ''),
          )
        : h('p', {}, 'No current certificate.'),
    ),
    h(
      'section',
      { 'aria-labelledby': 'history-h' },
      h('h2', { id: 'history-h' }, 'Certificate history'),
      table(
        'Certificates of this device, oldest first',
        ['Serial', 'Issued', 'How', 'Expires', 'Status', 'Reason'],
        device.certificates.map((c) => [
          h('span', { class: 'mono' }, c.serial),
          time(c.issuedAt),
          c.issuedFor === 'renewal' ? 'renewed' : 'enrolled',
          time(c.notAfter),
          badge(c.status),
          c.revocationReason ?? '',
        ]),
      ),
    ),
    h(
      'section',
      { 'aria-labelledby': 'events-h' },
      h('h2', { id: 'events-h' }, 'Audit events'),
      table(
        'Audit events of this device, newest first',
        ['Time', 'Actor', 'Action', 'Outcome'],
        events.map((e) => [time(e.at), e.actor, e.action, e.outcome]),
        'No events.',
      ),
    ),
    session.role === 'admin' && device.status === 'active' ? revokeSection(body, device, session, result) : null,
  );
}

function revokeSection(body, device, session, result) {
  const reason = h(
    'select',
    { name: 'reason', id: 'revoke-reason' },
    session.reasons.filter((r) => r !== 'superseded').map((r) => h('option', { value: r }, `${r}: ${REASON_HELP[r] ?? ''}`)),
  );
  const confirmText = h('p', { id: 'confirm-text' });
  const confirm = h('button', { type: 'submit', value: 'revoke', class: 'danger', id: 'confirm-revoke' }, 'Revoke now');
  const cancel = h('button', { type: 'submit', value: 'cancel', formnovalidate: true }, 'Cancel');
  const dialog = h(
    'dialog',
    { 'aria-labelledby': 'confirm-h', 'aria-describedby': 'confirm-text' },
    h('form', { method: 'dialog' }, h('h2', { id: 'confirm-h' }, 'Revoke this device?'), confirmText, h('div', { class: 'actions' }, cancel, confirm)),
  );
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'revoke') return;
    const chosen = reason.value;
    replace(result, message('ok', 'Revoking…'));
    try {
      const revoked = await api(`devices/${encodeURIComponent(device.id)}/revoke`, { method: 'POST', body: { reason: chosen } });
      const text = `Device ${device.id} revoked (${chosen}): ${revoked.revokedSerials.length} certificate(s) revoked. The server refuses it from now on.`;
      replace(result, message('ok', text));
      announce(text);
      const events = await api('audit', { query: { deviceId: device.id, limit: '50' } });
      draw(body, revoked.device, events.items, session, result);
      result.querySelector('.message')?.setAttribute('tabindex', '-1');
      result.querySelector('.message')?.focus();
    } catch (error) {
      replace(result, message('error', `Not revoked: ${describe(error)}`));
    }
  });
  const open = h('button', { type: 'button', class: 'danger', id: 'revoke-button' }, 'Revoke device…');
  open.addEventListener('click', () => {
    dialog.returnValue = '';
    replace(
      confirmText,
      'Revoke ',
      h('strong', {}, device.id),
      ` with reason "${reason.value}"? All its certificates are revoked at once and it can no longer connect. This cannot be undone; the device can come back only by enrolling again with a new token.`,
    );
    dialog.showModal();
    cancel.focus();
  });
  return h(
    'section',
    { 'aria-labelledby': 'revoke-h', class: 'danger-zone' },
    h('h2', { id: 'revoke-h' }, 'Revoke'),
    field('Reason', reason),
    open,
    dialog,
  );
}
