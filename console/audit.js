// Audit: the log newest first, filtered by actor, device or action, and the chain's
// verification state with the head hash to copy (kept elsewhere, it proves later that no
// event was cut off the end).
import { api, describe } from './api.js';
import { field, h, message, replace, table, time } from './dom.js';

const state = { actor: '', deviceId: '', action: '', cursors: [undefined] };

export async function auditPage(view) {
  const inputs = {
    actor: h('input', { type: 'text', name: 'actor', value: state.actor, placeholder: 'operator:alice', autocomplete: 'off' }),
    deviceId: h('input', { type: 'text', name: 'deviceId', value: state.deviceId, autocomplete: 'off' }),
    action: h('input', { type: 'text', name: 'action', value: state.action, placeholder: 'devices.revoke', list: 'audit-actions', autocomplete: 'off' }),
  };
  const actions = h(
    'datalist',
    { id: 'audit-actions' },
    ['enroll', 'renew', 'devices.revoke', 'certificates.revoke', 'tokens.create', 'tokens.revoke', 'tokens.revoke_batch', 'operators.issue', 'operators.revoke'].map((a) =>
      h('option', { value: a }),
    ),
  );
  const results = h('div', {});
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter audit events' },
    field('Actor', inputs.actor),
    field('Device id', inputs.deviceId),
    field('Action', inputs.action),
    actions,
    h('button', { type: 'submit' }, 'Filter'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    for (const name of Object.keys(inputs)) state[name] = inputs[name].value.trim();
    state.cursors = [undefined];
    load(results);
  });
  const verification = h('div', { id: 'verification' });
  const verify = h('button', { type: 'button', id: 'verify' }, 'Verify the chain');
  verify.addEventListener('click', () => runVerify(verification, verify));
  view.append(
    h('h1', {}, 'Audit log'),
    h('section', { 'aria-labelledby': 'chain-h', class: 'chain' }, h('h2', { id: 'chain-h' }, 'Chain'), verify, verification),
    form,
    results,
  );
  await load(results);
}

async function runVerify(verification, button) {
  button.disabled = true;
  replace(verification, message('ok', 'Verifying every event…'));
  try {
    const result = await api('audit/verify');
    const head = h('input', { type: 'text', readonly: true, value: result.head, class: 'mono', id: 'head-hash', size: '64' });
    const copy = h('button', { type: 'button' }, 'Copy');
    copy.addEventListener('click', async () => {
      head.select();
      try {
        await navigator.clipboard.writeText(result.head);
        copy.textContent = 'Copied';
      } catch {
        copy.textContent = 'Press Ctrl+C';
      }
    });
    replace(
      verification,
      result.ok
        ? message('ok', `Intact: ${result.checked.toLocaleString()} events checked, each follows the one before.`)
        : message('error', `Broken at event ${result.problem.id}: ${result.problem.reason}. ${result.checked.toLocaleString()} events checked before it.`),
      h('div', { class: 'field-row' }, field('Head hash (keep it elsewhere to detect events cut off the end later)', head), copy),
    );
  } catch (error) {
    replace(verification, message('error', describe(error)));
  } finally {
    button.disabled = false;
  }
}

async function load(results) {
  const page = state.cursors.length - 1;
  let data;
  try {
    data = await api('audit', { query: { actor: state.actor, deviceId: state.deviceId, action: state.action, limit: '50', cursor: state.cursors[page] } });
  } catch (error) {
    replace(results, message('error', describe(error)));
    return;
  }
  const rows = data.items.map((e) => [
    time(e.at),
    e.actor,
    e.action,
    e.outcome,
    e.deviceId ? h('a', { href: `#/device/${encodeURIComponent(e.deviceId)}` }, e.deviceId) : '',
    h('span', { class: 'mono wrap' }, e.detail ? JSON.stringify(e.detail) : ''),
  ]);
  const previous = h('button', { type: 'button', disabled: page === 0 }, 'Newer');
  previous.addEventListener('click', () => {
    state.cursors.pop();
    load(results);
  });
  const next = h('button', { type: 'button', disabled: !data.nextCursor }, 'Older');
  next.addEventListener('click', () => {
    state.cursors.push(data.nextCursor);
    load(results);
  });
  replace(
    results,
    table(`Audit events, newest first, page ${page + 1}`, ['Time', 'Actor', 'Action', 'Outcome', 'Device', 'Detail'], rows, 'No event matches.'),
    h('div', { class: 'pager' }, previous, next),
  );
}
