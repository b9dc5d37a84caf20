// awg ui: the one line the event log shows per daemon event (app.js logLine). Text only: the
// caller puts it into the page with textContent.

export function eventText(e) {
  switch (e.type) {
    case 'reconcile-started':
      return `reconcile started (${e.reason})`;
    case 'reconcile-finished': {
      const s = e.summary ?? {};
      const n = (s.create ?? 0) + (s.update ?? 0) + (s.replace ?? 0) + (s.delete ?? 0);
      const changes = e.summary ? `, ${n} change(s)` : '';
      return `reconcile ${e.outcome} in ${e.durationMs} ms${changes}${e.error ? `: ${e.error.message}` : ''}`;
    }
    case 'drift':
      return `drift: ${(e.ids ?? []).join(', ')}${e.repaired ? ' (repaired)' : ''}`;
    case 'network-changed':
      return `network changed: ${e.detail}`;
    case 'config-changed':
      return `config changed: ${e.path}${e.valid ? '' : ' (invalid)'}`;
    case 'tunnel':
      return `tunnel ${e.tunnel}: ${e.state}${e.error ? ` (${e.error})` : ''}`;
    case 'handshake':
      return `handshake on ${e.tunnel} with ${String(e.peer).slice(0, 10)}…`;
    case 'confirm-pending':
      return `confirm before ${e.deadline}`;
    case 'reverted':
      return `reverted: ${e.reason}`;
    case 'error':
      return `${e.kind}: ${e.message}`;
    case 'gap':
      return `events lost (${e.reason}); state re-read`;
    case 'limit':
      return `limit ${e.action} on pid ${e.pid}${e.reason ? ` (${e.reason})` : ''}`;
    case 'list':
      return e.result === 'failed'
        ? `list ${e.list} ${e.refused ? 'refused' : 'not fetched'}: ${e.error ?? 'failed'} (the last good copy stays)`
        : `list ${e.list} ${e.result === 'fetched' ? 'fetched' : 'not modified'}${e.entries !== undefined ? `, ${e.entries} entries` : ''}`;
    case 'service':
      return e.state === 'available'
        ? 'service available again'
        : `service unavailable${e.message ? `: ${e.message}` : ''}`;
    default:
      return JSON.stringify(e);
  }
}
