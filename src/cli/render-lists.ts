/**
 * Lists fetched by URL as text: the status's lines (`awg status`, `awg lists status`), a
 * plan's (`awg diff`: the copy each list was planned with) and `awg lists update`'s results.
 * Pure; the caller passes the lines through safeLine (URLs and errors come from outside).
 */
import { ageOf } from '../config/duration.js';
import type { DaemonEvent, UrlListStatus } from '../daemon/core.js';
import type { PlanListDoc } from '../model/plan-document.js';

const n = (x: number) => x.toLocaleString('en-US');
const entriesOf = (x: number) => `${n(x)} ${x === 1 ? 'entry' : 'entries'}`;

/** `sing-box, 41,203 entries, fetched 2h ago` */
function copyText(
  l: Pick<UrlListStatus, 'format' | 'entries' | 'fetchedAt' | 'checkedAt'>,
  now: number,
): string {
  return [
    l.format,
    l.entries !== undefined ? entriesOf(l.entries) : undefined,
    l.fetchedAt ? `fetched ${ageOf(l.fetchedAt, now)}` : undefined,
    l.checkedAt && l.checkedAt !== l.fetchedAt ? `checked ${ageOf(l.checkedAt, now)}` : undefined,
  ]
    .filter(Boolean)
    .join(', ');
}

/** one line per list of the status */
export function listStatusLines(
  lists: readonly UrlListStatus[] | undefined,
  now = Date.now(),
): string[] {
  return (lists ?? []).map((l) => {
    const head = `list ${l.list} (${l.rules.join(', ')}${l.via ? `, via ${l.via}` : ''})`;
    if (l.state === 'pending')
      return `${head}: pending — not fetched yet${l.error ? ` (last try: ${l.error})` : ''}; its rules route without it`;
    const copy = copyText(l, now);
    if (l.state === 'stale')
      return `${head}: STALE — the last fetch failed${l.failures > 1 ? ` ${l.failures} times in a row` : ''}: ${l.error ?? '?'}; the last good copy stays in use (${copy})`;
    return `${head}: ok (${copy})`;
  });
}

/** `rules[2] → list https://… (sing-box, 41,203 entries, fetched 2h ago)` per rule and list */
export function planListLines(
  lists: readonly PlanListDoc[] | undefined,
  now = Date.now(),
): string[] {
  return (lists ?? []).flatMap((l) =>
    l.rules.map((rule) => {
      const what =
        l.state === 'pending'
          ? `not fetched yet (${l.error ?? 'no copy'}): contributes nothing`
          : `${copyText(l, now)}${l.state === 'stale' ? `; the last fetch failed: ${l.error ?? '?'}` : ''}`;
      return `${rule} → list ${l.list} (${what})`;
    }),
  );
}

/** `awg lists update`: one line per list fetched */
export function updateResultLines(
  results: readonly Extract<DaemonEvent, { type: 'list' }>[],
): string[] {
  return results.map((r) => {
    const entries = r.entries !== undefined ? `, ${entriesOf(r.entries)}` : '';
    if (r.result === 'fetched') return `${r.list}: fetched${entries}`;
    if (r.result === 'not-modified') return `${r.list}: not modified${entries}`;
    return `${r.list}: ${r.refused ? 'refused' : 'failed'}: ${r.error ?? '?'}${r.entries !== undefined ? ` (the last good copy stays: ${entriesOf(r.entries)})` : ' (no copy yet)'}`;
  });
}
