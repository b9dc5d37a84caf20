// awg ui: the pending-config form for root sessions (docs/ui.md): plan a config file with
// /api/diff, apply that plan's file with /api/apply, and confirm a change that waits for it
// (/api/confirm). Text only (textContent): every string from the daemon is shown as text.

let ui;
const $ = (id) => ui.$(id);
const el = (...a) => ui.el(...a);
const api = (...a) => ui.api(...a);

function showPlan(title, doc, extra) {
  const box = $('plan');
  const changes = (doc?.changes ?? []).filter((c) => c.action !== 'noop');
  const s = doc?.summary ?? {};
  box.replaceChildren(
    el('p', { class: 'outcome' }, title),
    el(
      'p',
      {},
      `${s.create ?? 0} to create, ${s.update ?? 0} to update, ${s.replace ?? 0} to replace, ${s.delete ?? 0} to delete`,
    ),
    changes.length
      ? el('ul', {}, ...changes.map((c) => el('li', {}, `${c.action} ${c.id}: ${c.reason}`)))
      : el('p', {}, 'No changes.'),
    ...(doc?.warnings ?? []).map((w) => el('p', { class: 'note' }, `warning: ${w}`)),
    ...(extra ?? []),
  );
}

function showError(prefix, r) {
  const e = r.body?.error;
  $('plan').replaceChildren(
    el(
      'p',
      { class: 'outcome bad' },
      `${prefix}: ${e ? `${e.kind}: ${e.message}` : `HTTP ${r.status}`}`,
    ),
    ...(e?.issues ?? []).map((i) => el('p', {}, typeof i === 'string' ? i : JSON.stringify(i))),
    ...(e?.hint ? [el('p', { class: 'note' }, e.hint)] : []),
  );
}

const post = (path, body) =>
  api(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

async function diff() {
  const configPath = $('config-path').value.trim();
  $('apply').disabled = true;
  $('plan').replaceChildren(el('p', {}, 'planning…'));
  const r = await post('/api/diff', { configPath });
  if (!r.ok) return showError('diff failed', r);
  const doc = r.body.plan ?? r.body;
  ui.state.plannedPath = configPath;
  showPlan(r.body.changes === false ? 'Plan: nothing to change' : 'Plan', doc);
  $('apply').disabled = false;
}

async function apply() {
  const configPath = ui.state.plannedPath ?? $('config-path').value.trim();
  $('apply').disabled = true;
  $('plan').replaceChildren(el('p', {}, 'applying…'));
  const r = await post('/api/apply', { configPath });
  if (!r.ok) return showError('apply failed', r);
  const b = r.body;
  showPlan(`Applied: ${b.outcome}, ${b.mutations ?? 0} mutation(s)`, b.plan, [
    ...(b.error ? [el('p', { class: 'bad' }, `${b.error.kind}: ${b.error.message}`)] : []),
  ]);
}

async function confirm() {
  const r = await post('/api/confirm', {});
  if (!r.ok) return showError('confirm failed', r);
  $('plan').replaceChildren(
    el(
      'p',
      { class: 'outcome' },
      r.body?.confirmed === false ? 'Nothing was waiting for a confirm' : 'Confirmed',
    ),
  );
  void ui.refreshQuiet();
}

/** wires the form's buttons; `u` gives app.js's $, el, api, state and refreshQuiet */
export function setupPending(u) {
  ui = u;
  $('diff').addEventListener('click', () => void diff());
  $('apply').addEventListener('click', () => void apply());
  $('confirm').addEventListener('click', () => void confirm());
  $('pending-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void diff();
  });
  $('config-path').addEventListener('input', () => ($('apply').disabled = true));
}
