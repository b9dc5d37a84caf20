/**
 * Lists fetched by URL on the wire: the status's lists (UrlList), a plan's (PlanList), the
 * ListFetched event and UpdateLists. The proto's messages and the domain's types have the
 * same fields under the same names: one copy each, used both ways. A state or result this
 * side does not know (a newer daemon's) is left out. Pure.
 */
import type { PlanListDoc } from '../../model/plan-document.js';
import type { DaemonEvent, UpdateListsResponse, UrlListStatus } from '../core.js';
import { LIST_RESULTS, LIST_STATES } from '../names.js';
import { opt } from './common.js';
import type { ListFetched__Output } from './generated/awg/v1/ListFetched.js';
import type { PlanList__Output } from './generated/awg/v1/PlanList.js';
import type { UpdateListsResponse__Output } from './generated/awg/v1/UpdateListsResponse.js';
import type { UrlList__Output } from './generated/awg/v1/UrlList.js';

const oneOf = <T extends string>(xs: readonly T[], v: string): T | undefined =>
  xs.find((x) => x === v);

export const urlListToWire = (l: UrlListStatus): UrlList__Output => ({
  list: l.list,
  rules: [...l.rules],
  state: l.state,
  ...opt('format', l.format),
  ...opt('entries', l.entries),
  ...opt('fetchedAt', l.fetchedAt),
  ...opt('checkedAt', l.checkedAt),
  ...opt('ageSec', l.ageSec),
  ...opt('error', l.error),
  failures: l.failures,
  failuresTotal: l.failuresTotal,
  ...opt('nextCheckAt', l.nextCheckAt),
  refresh: l.refresh,
  ...opt('via', l.via),
});

/** the fields a list's status and a plan's list share, from the wire */
const commonFromWire = (w: PlanList__Output, state: (typeof LIST_STATES)[number]) => ({
  list: w.list,
  rules: [...(w.rules ?? [])],
  state,
  ...opt('format', w.format),
  ...opt('entries', w.entries === undefined ? undefined : Number(w.entries)),
  ...opt('fetchedAt', w.fetchedAt),
  ...opt('checkedAt', w.checkedAt),
});

export const urlListFromWire = (w: UrlList__Output): UrlListStatus[] => {
  const state = oneOf(LIST_STATES, w.state);
  if (!state) return [];
  return [
    {
      ...commonFromWire(w, state),
      ...opt('ageSec', w.ageSec === undefined ? undefined : Number(w.ageSec)),
      ...opt('error', w.error),
      failures: w.failures,
      failuresTotal: Number(w.failuresTotal),
      ...opt('nextCheckAt', w.nextCheckAt),
      refresh: w.refresh,
      ...opt('via', w.via),
    },
  ];
};

export const planListToWire = (l: PlanListDoc): PlanList__Output => ({
  list: l.list,
  rules: [...l.rules],
  state: l.state,
  ...opt('format', l.format),
  ...opt('entries', l.entries),
  ...opt('fetchedAt', l.fetchedAt),
  ...opt('checkedAt', l.checkedAt),
  ...opt('error', l.error),
});

export const planListFromWire = (w: PlanList__Output): PlanListDoc[] => {
  const state = oneOf(LIST_STATES, w.state);
  if (!state) return [];
  return [
    {
      ...commonFromWire(w, state),
      ...opt('error', w.error),
    },
  ];
};

type ListEvent = Extract<DaemonEvent, { type: 'list' }>;

export const listFetchedToWire = (e: Omit<ListEvent, 'type' | 'at'>): ListFetched__Output => ({
  list: e.list,
  result: e.result,
  ...opt('entries', e.entries),
  ...opt('error', e.error),
  refused: Boolean(e.refused),
});

/** the event of a ListFetched (`at` from its Event); undefined for a result this side does not know */
export const listFetchedFromWire = (w: ListFetched__Output, at: string): ListEvent | undefined => {
  const result = oneOf(LIST_RESULTS, w.result);
  if (!result) return undefined;
  return {
    type: 'list',
    at,
    list: w.list,
    result,
    ...opt('entries', w.entries === undefined ? undefined : Number(w.entries)),
    ...opt('error', w.error),
    ...(w.refused ? { refused: true } : {}),
  };
};

export function updateListsToWire(r: UpdateListsResponse): UpdateListsResponse__Output {
  return { results: r.results.map(listFetchedToWire), lists: r.lists.map(urlListToWire) };
}

export function updateListsFromWire(w: UpdateListsResponse__Output): UpdateListsResponse {
  const at = new Date().toISOString();
  return {
    results: (w.results ?? []).flatMap((x) => listFetchedFromWire(x, at) ?? []),
    lists: (w.lists ?? []).flatMap(urlListFromWire),
  };
}
