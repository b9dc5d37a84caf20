/**
 * Lists by URL in what the daemon shows: the status on the wire (both ways), the plan's
 * lists, UpdateLists, the metrics, and the text of `awg status` and `awg events`.
 */
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/daemon/metrics.js';
import type { StatusResponse, UrlListStatus } from '../../../src/daemon/core.js';
import { statusFromWire, statusToWire } from '../../../src/daemon/wire/status.js';
import { planFromWire, planToWire } from '../../../src/daemon/wire/plan.js';
import { updateListsFromWire, updateListsToWire } from '../../../src/daemon/wire/lists.js';
import { DaemonStatus } from '../../../src/daemon/status-document.js';
import { PlanDocument } from '../../../src/model/plan-document.js';
import { formatEvent } from '../../../src/cli/foreground.js';
import { FakeCore, sampleStatus } from '../daemon/server-fake-core.js';

const stale: UrlListStatus = {
  list: 'https://lists.example/ru.txt',
  rules: ['blocked'],
  state: 'stale',
  format: 'plain',
  entries: 41_203,
  fetchedAt: '2026-11-22T01:00:00.000Z',
  checkedAt: '2026-11-22T03:00:00.000Z',
  ageSec: 7200,
  error: 'connect ECONNREFUSED 10.0.0.1:80',
  failures: 2,
  failuresTotal: 3,
  nextCheckAt: '2026-11-22T05:01:00.000Z',
  refresh: '6h',
  via: 'vpn',
};
const pending: UrlListStatus = {
  list: 'https://lists.example/new.txt',
  rules: ['other'],
  state: 'pending',
  failures: 0,
  failuresTotal: 0,
  refresh: '1h',
};

describe('lists by URL in the daemon’s answers', () => {
  it('the status carries them through the wire unchanged, and is a valid status document', () => {
    const s: StatusResponse = { ...sampleStatus(), lists: [stale, pending] };
    expect(DaemonStatus.safeParse(s).success).toBe(true);
    expect(statusFromWire(statusToWire(s))).toEqual(s);
    const none = sampleStatus();
    expect(statusFromWire(statusToWire(none)).lists).toBeUndefined();
  });

  it('a plan’s lists and UpdateLists survive the wire', () => {
    const plan: PlanDocument = {
      formatVersion: 1,
      changes: [],
      summary: { create: 0, update: 0, replace: 0, delete: 0, drift: 0, config: 0 },
      foreign: [],
      warnings: [],
      lists: [
        {
          list: stale.list,
          rules: ['blocked'],
          state: 'ok',
          format: 'plain',
          entries: 3,
          fetchedAt: stale.fetchedAt!,
          checkedAt: stale.checkedAt!,
        },
        { list: pending.list, rules: ['other'], state: 'pending', error: 'not fetched yet' },
      ],
    };
    expect(PlanDocument.safeParse(plan).success).toBe(true);
    expect(planFromWire(planToWire(plan))).toEqual(plan);
    const r = updateListsFromWire(
      updateListsToWire({
        results: [{ type: 'list', at: 'x', list: stale.list, result: 'failed', error: 'HTTP 503' }],
        lists: [stale],
      }),
    );
    expect(r.lists).toEqual([stale]);
    expect(r.results).toEqual([
      {
        type: 'list',
        at: expect.any(String),
        list: stale.list,
        result: 'failed',
        error: 'HTTP 503',
      },
    ]);
  });

  it('metrics: entries, age, last success, failures and state per list', async () => {
    const core = new FakeCore();
    core.statusValue = { ...sampleStatus(), lists: [stale, pending] };
    const t = await createMetrics(core).render();
    const l = 'list="https://lists.example/ru.txt"';
    expect(t).toContain(`awg_list_entries{${l}} 41203`);
    expect(t).toContain(`awg_list_age_seconds{${l}} 7200`);
    expect(t).toContain(
      `awg_list_last_success_timestamp_seconds{${l}} ${Date.parse(stale.checkedAt!) / 1000}`,
    );
    expect(t).toContain(`awg_list_fetch_failures_total{${l}} 3`);
    expect(t).toContain(`awg_list_state{${l},state="stale"} 1`);
    expect(t).toContain(`awg_list_state{${l},state="ok"} 0`);
    expect(t).toContain('awg_list_state{list="https://lists.example/new.txt",state="pending"} 1');
    expect(t).not.toContain('awg_list_entries{list="https://lists.example/new.txt"}');
  });

  it('the event lines', () => {
    expect(
      formatEvent({
        type: 'list',
        at: 'x',
        list: 'https://l/a',
        result: 'fetched',
        entries: 41203,
      }),
    ).toBe('list https://l/a fetched (41,203 entries)');
    expect(
      formatEvent({ type: 'list', at: 'x', list: 'https://l/a', result: 'not-modified' }),
    ).toBe('list https://l/a not modified');
    expect(
      formatEvent({
        type: 'list',
        at: 'x',
        list: 'https://l/a',
        result: 'failed',
        error: 'HTTP 503',
      }),
    ).toBe('list https://l/a not fetched: HTTP 503; the last good copy stays in use');
  });
});
