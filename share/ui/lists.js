// awg ui: the lists a config fetches by URL (status `lists`, docs/lists-url.md): a row per
// list with its source, entries, age and state, and a banner while a list is stale (its last
// fetch failed and its last good copy is in use) or has no copy. Text only (textContent).

function stateText(l, age) {
  if (l.state === 'pending') return `pending: not fetched yet${l.error ? ` (${l.error})` : ''}`;
  if (l.state === 'stale')
    return `stale: the last fetch failed${l.failures > 1 ? ` ${l.failures}×` : ''}: ${l.error ?? '?'}; the last good copy (checked ${age(l.ageSec)}) stays in use`;
  return `ok (checked ${age(l.ageSec)})`;
}

/** the lists table and the banner; `ui` gives app.js's $, el and age */
export function renderLists(lists, ui) {
  const { $, el, age } = ui;
  $('lists-section').hidden = lists.length === 0;
  const rows = lists.map((l) =>
    el(
      'tr',
      { 'data-state': l.state, class: l.state === 'ok' ? undefined : 'bad' },
      el('td', {}, l.list),
      el('td', {}, (l.rules ?? []).join(', ')),
      el('td', {}, l.format ?? '–'),
      el('td', { class: 'num' }, l.entries === undefined ? '–' : l.entries.toLocaleString('en-US')),
      el('td', {}, stateText(l, age)),
    ),
  );
  $('lists')
    .querySelector('tbody')
    .replaceChildren(...rows);
  const bad = lists.filter((l) => l.state !== 'ok');
  $('lists-banner').hidden = bad.length === 0;
  if (bad.length)
    $('lists-text').textContent = bad
      .map((l) => `list ${l.list}: ${stateText(l, age)}`)
      .join(' · ');
}
