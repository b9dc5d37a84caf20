// awg ui: the dashboard page (docs/ui.md). Served by `awg ui` (src/cli/ui/bridge.ts) under a
// strict CSP: no inline script, no eval, nothing from another origin. Every string from the
// daemon goes into the page as text (textContent), never as HTML.
//
// Updates: the SSE stream /api/events (a `snapshot` first, then the daemon's events, `rates`
// per monitor tick, `gap` when events were lost). While the stream is down the page polls
// /api/status every POLL_MS; while the daemon is gone it shows the "service unavailable"
// banner, and it comes back without a reload.

import { eventText } from './events.js';
import { renderLists } from './lists.js';
import { setupPending } from './pending.js';
import { age, bytes, clock, el, rate } from './dom.js';

const POLL_MS = 3000;
const CHART_SECONDS = 60;
const MAX_EVENTS = 200;
const EVENT_TYPES = [
  'reconcile-started',
  'reconcile-finished',
  'drift',
  'network-changed',
  'config-changed',
  'tunnel',
  'handshake',
  'confirm-pending',
  'reverted',
  'error',
  'limit',
  'list',
  'service',
];

const state = {
  session: { root: false },
  status: undefined,
  statusAt: 0,
  processes: [],
  /** name → {rx, tx, at}: the last counters seen, for rates from counters */
  counters: new Map(),
  /** tunnel name → [{t, up, down}] (bytes/s) */
  series: new Map(),
  /** rule/process rates from the monitor (`rates`/`traffic` answers) */
  ruleRates: new Map(),
  processRates: new Map(),
  handshakeAt: new Map(),
  lastRatesAt: 0,
  stream: undefined,
  lastId: undefined,
  streamUp: false,
  reconnectMs: 1000,
  reconnectTimer: undefined,
  pollTimer: undefined,
  available: undefined,
  plannedPath: undefined,
};

const $ = (id) => document.getElementById(id);

// ---- data from the daemon -------------------------------------------------------------------

async function api(path, init) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store', ...init });
  let body;
  try {
    body = await r.json();
  } catch {
    body = undefined;
  }
  return { ok: r.ok, status: r.status, body };
}

function setStatus(s) {
  if (!s || typeof s !== 'object') return;
  // while the stream is down, a reconcile is seen only in the status: log it from there
  const before = state.status?.lastReconcile;
  const lr = s.lastReconcile;
  if (!state.streamUp && before && lr && lr.at !== before.at)
    logLine({ type: 'reconcile-finished', ...lr });
  state.status = s;
  state.statusAt = Date.now();
  for (const t of s.tunnels ?? []) {
    if (t.lastHandshakeAgeSec !== undefined)
      state.handshakeAt.set(t.name, Date.now() - t.lastHandshakeAgeSec * 1000);
    else state.handshakeAt.delete(t.name);
    counterSample(t.name, t.rxBytes, t.txBytes);
  }
  const input = $('config-path');
  const path = configPathOf(s);
  if (input && !input.value && path) input.value = path;
}

/** the config file: `config` in the `awg status --json` document, `configPath` in the daemon's own */
function configPathOf(s) {
  if (typeof s?.config === 'string') return s.config;
  return typeof s?.configPath === 'string' ? s.configPath : undefined;
}

function setProcesses(p) {
  const list = Array.isArray(p) ? p : Array.isArray(p?.processes) ? p.processes : undefined;
  if (list) state.processes = list;
}

/** rates from two readings of a tunnel's counters (when no `rates` event gave them) */
function counterSample(name, rx, tx) {
  if (!Number.isFinite(rx) || !Number.isFinite(tx)) return;
  const now = Date.now();
  const prev = state.counters.get(name);
  state.counters.set(name, { rx, tx, at: now });
  if (!prev || now - state.lastRatesAt < 5000) return;
  const dt = (now - prev.at) / 1000;
  if (dt < 0.2) return;
  pushRate(name, Math.max(0, (tx - prev.tx) / dt), Math.max(0, (rx - prev.rx) / dt));
}

function pushRate(name, up, down) {
  const s = state.series.get(name) ?? [];
  s.push({ t: Date.now(), up, down });
  while (s.length && s[0].t < Date.now() - CHART_SECONDS * 1000) s.shift();
  state.series.set(name, s);
}

/** a `rates` event, or a TopDocument (/api/traffic): per tunnel, rule and process */
function takeRates(d) {
  if (!d || typeof d !== 'object') return;
  const up = (x) => x.upload ?? x.up ?? x.txRate ?? 0;
  const down = (x) => x.download ?? x.down ?? x.rxRate ?? 0;
  if (Array.isArray(d.tunnels)) {
    state.lastRatesAt = Date.now();
    for (const t of d.tunnels) pushRate(t.name ?? t.tunnel, up(t), down(t));
  }
  if (Array.isArray(d.rules)) for (const r of d.rules) state.ruleRates.set(r.name ?? r.rule, r);
  if (Array.isArray(d.processes)) {
    state.processRates.clear();
    for (const p of d.processes) state.processRates.set(p.pid, p);
  }
}

async function refresh() {
  const [s, p] = await Promise.all([api('/api/status'), api('/api/processes')]);
  if (s.status === 503 || (!s.ok && s.body === undefined)) {
    unavailable(s.body?.error?.message);
    return false;
  }
  available();
  if (s.ok) setStatus(s.body);
  else if (s.body?.error) logLine({ type: 'error', at: new Date().toISOString(), ...s.body.error });
  if (p.ok) setProcesses(p.body);
  render();
  return true;
}

// ---- service availability, the stream and polling ------------------------------------------

function unavailable(message) {
  if (state.available !== false) {
    logLine({
      type: 'service',
      at: new Date().toISOString(),
      state: 'unavailable',
      message: message ?? 'the awg daemon does not answer',
    });
  }
  state.available = false;
  // the monitor's rows are of a daemon that is gone
  state.processRates.clear();
  state.ruleRates.clear();
  $('banner').hidden = false;
  if (message) $('banner-text').textContent = message;
  setBadge('daemon-state', 'unavailable', 'bad');
}

function available() {
  if (state.available === false)
    logLine({ type: 'service', at: new Date().toISOString(), state: 'available' });
  state.available = true;
  $('banner').hidden = true;
}

function startPolling() {
  if (state.pollTimer) return;
  setBadge('stream', 'polling', 'warn');
  const tick = async () => {
    try {
      const ok = await refresh();
      if (ok) {
        const t = await api('/api/traffic');
        if (t.ok) takeRates(t.body);
      }
      if (ok && !state.stream) connect();
    } catch {
      unavailable();
    }
  };
  void tick();
  state.pollTimer = setInterval(() => void tick(), POLL_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = undefined;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = undefined;
  if (state.stream) return;
  // rates=1: the daemon's monitor sends a `rates` event per tick while this page listens
  const url =
    '/api/events?rates=1' + (state.lastId ? `&after=${encodeURIComponent(state.lastId)}` : '');
  const es = new EventSource(url);
  state.stream = es;
  es.onopen = () => {
    state.streamUp = true;
    state.reconnectMs = 1000;
    stopPolling();
    available();
    setBadge('stream', 'live', 'ok');
  };
  es.onerror = () => {
    state.streamUp = false;
    // CLOSED: the bridge answered with an error (the daemon is gone, or has no stream); the
    // browser does not retry that by itself. CONNECTING: the stream ended, it retries.
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      state.stream = undefined;
      state.reconnectTimer = setTimeout(connect, state.reconnectMs);
      state.reconnectMs = Math.min(state.reconnectMs * 2, 10000);
    }
    startPolling();
  };
  const on = (type, fn) =>
    es.addEventListener(type, (m) => {
      if (m.lastEventId) state.lastId = m.lastEventId;
      let data;
      try {
        data = JSON.parse(m.data);
      } catch {
        return;
      }
      fn(data);
      render();
    });
  on('snapshot', (d) => {
    setStatus(d.status);
    setProcesses(d.processes);
    if (d.traffic) takeRates(d.traffic);
  });
  on('gap', (e) => {
    logLine(e);
    void refresh();
  });
  on('rates', (d) => takeRates(d));
  on('traffic', (e) => {
    // the counters in the status move on with it (totals of tunnels and rules)
    const tunnels = new Map((state.status?.tunnels ?? []).map((t) => [t.name, t]));
    for (const t of e.tunnels ?? []) {
      counterSample(t.tunnel, t.rxBytes, t.txBytes);
      const st = tunnels.get(t.tunnel);
      if (st) Object.assign(st, { rxBytes: t.rxBytes, txBytes: t.txBytes });
    }
    if (state.status && Array.isArray(e.rules) && e.rules.length) state.status.rules = e.rules;
  });
  on('monitor-ended', (e) => {
    if (e.error) logLine({ type: 'error', at: new Date().toISOString(), ...e.error });
  });
  for (const type of EVENT_TYPES) {
    on(type, (e) => {
      logLine(e);
      if (e.type === 'handshake') state.handshakeAt.set(e.tunnel, Date.parse(e.at) || Date.now());
      if (['reconcile-finished', 'tunnel', 'limit', 'list'].includes(e.type)) void refreshQuiet();
    });
  }
}

let refreshing;
function refreshQuiet() {
  refreshing ??= refresh()
    .catch(() => undefined)
    .finally(() => (refreshing = undefined));
  return refreshing;
}

// ---- rendering ------------------------------------------------------------------------------

function setBadge(id, text, kind) {
  const b = $(id);
  b.textContent = text;
  b.className = `badge ${kind ?? ''}`;
}

function logLine(e) {
  const list = $('events');
  const bad = e.type === 'error' || e.type === 'reverted' || e.state === 'unavailable';
  const li = el(
    'li',
    { 'data-type': e.type, class: bad ? 'bad' : undefined },
    el('time', { datetime: e.at }, clock(e.at)),
    el('span', { class: 'type' }, e.type),
    eventText(e),
  );
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

function healthKind(h) {
  if (h === 'up' || h === 'healthy') return 'ok';
  if (h === 'down' || h === 'auth-failed' || h === 'failed') return 'bad';
  return 'warn';
}

function renderTunnels() {
  const box = $('tunnels');
  const tunnels = state.status?.tunnels ?? [];
  if (!tunnels.length) {
    box.replaceChildren(el('p', { class: 'empty' }, 'no tunnels'));
    return;
  }
  // cards are kept (their canvases hold the chart); removed tunnels go
  const keep = new Set(tunnels.map((t) => t.name));
  for (const c of [...box.querySelectorAll('.tunnel')]) if (!keep.has(c.dataset.name)) c.remove();
  box.querySelector('.empty')?.remove();
  for (const t of tunnels) {
    let card = box.querySelector(`.tunnel[data-name="${CSS.escape(t.name)}"]`);
    if (!card) {
      card = el(
        'div',
        { class: 'tunnel', 'data-name': t.name },
        el(
          'div',
          { class: 'title' },
          el('span', { class: 'name' }, t.name),
          el('span', { class: 'badge health' }),
        ),
        el('div', { class: 'meta' }),
        el('div', { class: 'rates' }, el('span', { class: 'up' }), el('span', { class: 'down' })),
        el('canvas', { width: 600, height: 180, 'aria-label': `throughput of ${t.name}` }),
      );
      box.append(card);
    }
    const health = t.health ?? (t.up ? 'up' : 'down');
    const hb = card.querySelector('.health');
    hb.textContent = t.reason ? `${health}: ${t.reason}` : health;
    hb.className = `badge health ${healthKind(health)}`;
    hb.title = t.since ? `since ${new Date(t.since).toLocaleString()}` : '';
    card.dataset.health = health;
    card.dataset.reason = t.reason ?? '';
    card.dataset.profile = t.profile ?? '';
    const at = state.handshakeAt.get(t.name);
    const hsAge = at === undefined ? undefined : (Date.now() - at) / 1000;
    card.dataset.handshake = at === undefined ? 'never' : String(Math.round(hsAge));
    const endpoint = (t.peers ?? [])
      .map((p) => p.endpoint)
      .filter(Boolean)
      .join(', ');
    card.querySelector('.meta').textContent = [
      t.type,
      t.link,
      `handshake ${age(hsAge)}`,
      endpoint ? `peer ${endpoint}` : undefined,
      `total ↑ ${bytes(t.txBytes)} ↓ ${bytes(t.rxBytes)}`,
      t.error,
      t.reason && t.since ? `down since ${new Date(t.since).toLocaleTimeString()}` : undefined,
      t.reason && t.lastUp ? `last up ${new Date(t.lastUp).toLocaleTimeString()}` : undefined,
      t.profile ? `profile ${t.profile}${profileSwitch(t.profileSwitches)}` : undefined,
      t.probe?.failures
        ? `probe failing ×${t.probe.failures}: ${t.probe.lastFailure ?? '?'}`
        : undefined,
      t.heldRules?.length
        ? `held on fallback (sticky): ${t.heldRules.map((h) => h.rule).join(', ')}`
        : undefined,
    ]
      .filter(Boolean)
      .join(' · ');
    const s = state.series.get(t.name) ?? [];
    const last = s.at(-1);
    card.querySelector('.rates .up').textContent = `↑ ${rate(last?.up ?? 0)}`;
    card.querySelector('.rates .down').textContent = `↓ ${rate(last?.down ?? 0)}`;
    drawChart(card.querySelector('canvas'), s);
  }
}

/** the last obfuscation profile switch: ` (from a, handshake, 12:00:01)` */
function profileSwitch(switches) {
  const w = switches?.at(-1);
  return w ? ` (from ${w.from}, ${w.reason}, ${new Date(w.at).toLocaleTimeString()})` : '';
}

/** throughput of the last CHART_SECONDS: upload and download lines, hand-drawn */
function drawChart(canvas, series) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(100, Math.round(canvas.clientWidth * ratio));
  const h = Math.max(60, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, w, h);
  const now = Date.now();
  const max = Math.max(1, ...series.map((p) => Math.max(p.up, p.down)));
  canvas.dataset.max = String(
    Math.round(Math.max(0, ...series.map((p) => Math.max(p.up, p.down)))),
  );
  canvas.dataset.points = String(series.length);
  g.strokeStyle = '#dde1e6';
  g.lineWidth = 1;
  for (let i = 1; i < 4; i++) {
    const y = Math.round((h * i) / 4) + 0.5;
    g.beginPath();
    g.moveTo(0, y);
    g.lineTo(w, y);
    g.stroke();
  }
  g.fillStyle = '#5b6470';
  g.font = `${11 * ratio}px system-ui, sans-serif`;
  g.fillText(rate(max), 4, 12 * ratio);
  const x = (t) => w - ((now - t) / (CHART_SECONDS * 1000)) * w;
  const y = (v) => h - 2 - (v / max) * (h - 16 * ratio);
  for (const [key, color] of [
    ['down', '#1c7ed6'],
    ['up', '#d9480f'],
  ]) {
    if (series.length < 1) continue;
    g.strokeStyle = color;
    g.lineWidth = 2 * ratio;
    g.beginPath();
    series.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p[key])) : g.moveTo(x(p.t), y(p[key]))));
    g.stroke();
  }
}

function cell(text, cls) {
  return el('td', { class: cls }, text ?? '');
}

function renderRules() {
  const rules = state.status?.rules ?? [];
  const byRule = new Map();
  for (const p of state.processes) {
    if (!p.rule) continue;
    byRule.set(p.rule, [...(byRule.get(p.rule) ?? []), p.name]);
  }
  const rows = rules.map((r) => {
    const rr = state.ruleRates.get(r.name);
    const apps = [...new Set(byRule.get(r.name) ?? [])];
    return el(
      'tr',
      { 'data-rule': r.name },
      cell(r.name),
      cell(r.target),
      cell(r.route),
      cell(apps.join(', ') || '–', 'apps'),
      cell(rr ? rate(rr.upload) : bytes(r.txBytes), 'num'),
      cell(rr ? rate(rr.download) : bytes(r.rxBytes), 'num'),
    );
  });
  $('rules').tBodies[0].replaceChildren(
    ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'no rules'))]),
  );
}

/** the processes in rules (ListProcesses) and those with traffic now (the monitor), by pid */
function renderProcesses() {
  const byPid = new Map();
  for (const p of state.processes) byPid.set(p.pid, { ...p });
  for (const [pid, r] of state.processRates) {
    const p = byPid.get(pid);
    byPid.set(pid, { ...r, ...(p ?? {}), route: p?.route ?? r.route });
  }
  const list = [...byPid.values()].sort(
    (a, b) =>
      trafficOf(state.processRates.get(b.pid)) - trafficOf(state.processRates.get(a.pid)) ||
      a.pid - b.pid,
  );
  const rows = list.slice(0, 300).map((p) => {
    const pr = state.processRates.get(p.pid);
    return el(
      'tr',
      { 'data-pid': p.pid, 'data-route': p.route },
      cell(String(p.pid), 'num'),
      cell(p.name),
      cell(p.rule ?? '–'),
      cell(p.route),
      cell(pr ? rate(pr.upload) : '', 'num'),
      cell(pr ? rate(pr.download) : '', 'num'),
    );
  });
  $('processes').tBodies[0].replaceChildren(
    ...(rows.length
      ? rows
      : [
          el(
            'tr',
            {},
            el('td', { colspan: 6, class: 'empty' }, 'no process in a rule or with traffic'),
          ),
        ]),
  );
}

const trafficOf = (r) => (r ? (r.upload ?? 0) + (r.download ?? 0) : 0);

function renderProtection() {
  const s = state.status ?? {};
  const objects = s.objects ?? [];
  const ids = (kind) => objects.filter((o) => o.kind === kind).map((o) => o.id);
  const firewall = ids('firewall');
  const dns = ids('dns');
  const ks =
    typeof s.killSwitch === 'object' && s.killSwitch
      ? (s.killSwitch.state ?? JSON.stringify(s.killSwitch))
      : typeof s.killSwitch === 'string' || typeof s.killSwitch === 'boolean'
        ? String(s.killSwitch)
        : undefined;
  const rows = [
    [
      'daemon',
      `${s.state ?? 'unknown'}${s.lastReconcile ? ` (last run ${s.lastReconcile.outcome} at ${clock(s.lastReconcile.at)})` : ''}`,
    ],
    [
      'kill switch',
      ks ?? (firewall.length ? `firewall loaded: ${firewall.join(', ')}` : 'no firewall table'),
    ],
    ['DNS', dns.length ? dns.join(', ') : 'system resolver (not managed)'],
    ['config', configPathOf(s) ?? '–'],
  ];
  if (s.confirmDeadline) rows.push(['confirm by', s.confirmDeadline]);
  if (s.placement)
    rows.push([
      'placement',
      `${s.placement.state}${s.placement.mode ? ` (${s.placement.mode})` : ''}`,
    ]);
  $('protection').replaceChildren(
    ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-key': k }, v)]),
  );
}

/** the banner of a newer awg the configured apt source offers (the daemon's update watch) */
function renderUpdate() {
  const u = state.status?.update;
  $('update-banner').hidden = !u?.available;
  if (u?.available)
    $('update-text').textContent =
      `awg ${u.candidate}${u.suites?.length ? ` (${u.suites.join(', ')})` : ''} is available (installed ${u.installed ?? '?'}): run \`awg update --apply\` as root.`;
}

function render() {
  const s = state.status;
  // an apply with a confirm timeout is reverted unless confirmed: the button while one waits
  $('confirm').hidden = !(state.session.root && s?.confirmDeadline);
  if (s) setBadge('daemon-state', s.state, s.state === 'converged' ? 'ok' : 'warn');
  if (state.available === false) setBadge('daemon-state', 'unavailable', 'bad');
  renderTunnels();
  renderRules();
  renderProcesses();
  renderProtection();
  renderUpdate();
  renderLists(state.status?.lists ?? [], { $, el, age });
}

// ---- start ----------------------------------------------------------------------------------

async function start() {
  const s = await api('/session');
  if (s.ok) state.session = s.body;
  setBadge(
    'mode',
    state.session.root ? 'root: can apply' : 'read-only',
    state.session.root ? 'warn' : '',
  );
  $('pending-section').hidden = !state.session.root;
  $('readonly-note').hidden = state.session.root;
  if (state.session.root) setupPending({ $, el, api, state, refreshQuiet });
  try {
    await refresh();
  } catch {
    unavailable();
  }
  connect();
  // the charts scroll and the handshake ages count on between updates
  setInterval(() => {
    for (const [name, s] of state.series) {
      const last = s.at(-1);
      if (!last || Date.now() - last.t > 5000) pushRate(name, 0, 0);
    }
    renderTunnels();
  }, 1000);
}

void start();
