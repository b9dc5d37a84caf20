/**
 * `awg fleet status` (src/cli/commands/fleet.ts, src/pipeline/fleet-status.ts) on fixtures of
 * a rollout half-way: a /federate scrape, a Prometheus query answer and observation records
 * (test/fixtures/fleet/). Per revision: applied, waiting, halted, rejected.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fleetStatusCommand } from '../../../src/cli/commands/fleet.js';
import type { Io } from '../../../src/cli/output.js';
import {
  fleetStatus,
  hostsFromSamples,
  parsePrometheusText,
} from '../../../src/pipeline/fleet-status.js';

const FIX = fileURLToPath(new URL('../../fixtures/fleet/', import.meta.url));
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

function io(): Io & { text: () => string; errors: () => string } {
  let out = '';
  let err = '';
  return {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    colour: false,
    text: () => out,
    errors: () => err,
  };
}

describe('awg fleet status', () => {
  it('a /federate scrape: per revision, hosts applied, waiting, halted, rejected; exit 2 on a rejection', async () => {
    const i = io();
    expect(await fleetStatusCommand(i, { metrics: `${FIX}federate.prom` })).toBe(2);
    expect(i.text()).toBe(
      [
        'revision      applied  waiting  halted  rejected  next wave due',
        'bbbbbbbbbbbb        1        2       1         1  2026-11-18T11:21:40.000Z',
        'aaaaaaaaaaaa        4        0       0         0',
        'canary-2 rejected bbbbbbbbbbbb',
        '',
      ].join('\n'),
    );
  });

  it('--json names every host', async () => {
    const i = io();
    await fleetStatusCommand(i, { metrics: `${FIX}federate.prom`, json: true });
    const doc = JSON.parse(i.text()) as ReturnType<typeof fleetStatus>;
    expect(doc.hosts.map((h) => h.host)).toEqual([
      'canary-1',
      'canary-2',
      'web-1',
      'web-2',
      'web-3',
    ]);
    expect(doc.hosts.find((h) => h.host === 'web-3')).toEqual({
      host: 'web-3',
      applied: A,
      held: { revision: B, state: 'halted', wave: 3 },
      rejected: [],
    });
    expect(doc.hosts.find((h) => h.host === 'web-2')?.held?.dueAt).toBe('2026-11-18T12:06:40.000Z');
  });

  it('a Prometheus query answer', async () => {
    const i = io();
    expect(await fleetStatusCommand(i, { query: `${FIX}query.json`, json: true })).toBe(0);
    expect(JSON.parse(i.text()).revisions).toEqual([
      { revision: B, applied: 1, waiting: 1, halted: 0, rejected: 0 },
      { revision: A, applied: 1, waiting: 0, halted: 0, rejected: 0 },
    ]);
  });

  it('observation records: with the earliest wave due', async () => {
    const i = io();
    expect(await fleetStatusCommand(i, { observed: `${FIX}observed`, json: true })).toBe(2);
    expect(JSON.parse(i.text()).revisions).toEqual([
      {
        revision: B,
        applied: 1,
        waiting: 2,
        halted: 0,
        rejected: 1,
        nextDue: '2026-11-27T12:45:00.000Z',
      },
      { revision: A, applied: 3, waiting: 0, halted: 0, rejected: 0 },
    ]);
  });

  it('exactly one source; a broken line is located', async () => {
    const i = io();
    expect(await fleetStatusCommand(i, {})).toBe(1);
    expect(i.errors()).toMatch(/exactly one of --metrics/);
    expect(() =>
      parsePrometheusText('awg_config_info{host="a"} 1\nnot a line at all {\n', 'x.prom'),
    ).toThrow(/x\.prom:2: /);
  });

  it("a single host's /metrics (no instance label) is one host", () => {
    const hosts = hostsFromSamples(
      parsePrometheusText(
        `awg_config_info{host="h",revision="${A}"} 1\nawg_rollout_waiting{revision="${B}",wave="2",state="waiting"} 1\n`,
        'm',
      ),
    );
    expect(hosts).toEqual([
      { host: 'h', applied: A, held: { revision: B, state: 'waiting', wave: 2 }, rejected: [] },
    ]);
  });
});
