/**
 * examples/fleet/ works as shipped: every host of hosts.txt renders and validates (without
 * secrets), ci/plan.sh plans them, and the alert rules and dashboard name only metrics the
 * daemon exports.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfigFile } from '../../../src/config/load.js';
import { tempDir } from '../../helpers/tmp.js';

const root = resolve(import.meta.dirname, '../../..');
const fleet = join(root, 'examples/fleet');
const hosts = readFileSync(join(fleet, 'hosts.txt'), 'utf8')
  .split('\n')
  .filter((l) => l.trim() && !l.startsWith('#'))
  .map((l) => l.trim().split(/\s+/) as [string, string]);
const AWG = `${process.execPath} --import file://${join(root, 'node_modules/tsx/dist/loader.mjs')} ${join(root, 'test/helpers/awg-cli.ts')}`;

describe('examples/fleet', () => {
  it('every host renders to a valid config with the overlays its selectors pick', async () => {
    const { parseLabelsFile } = await import('../../../src/config/host-selection.js');
    const got: Record<string, string[]> = {};
    for (const [host, labels] of hosts) {
      const l = await loadConfigFile(join(fleet, 'awg.yaml'), {
        selection: {
          host,
          os: 'linux',
          labels: parseLabelsFile(readFileSync(join(fleet, labels), 'utf8'), labels),
        },
      });
      expect(
        l.issues.filter((i) => i.severity === 'error'),
        host,
      ).toEqual([]);
      got[host] = l.overlays.map((o) => o.name);
    }
    expect(got).toEqual({
      'laptop-eu-1': ['eu-laptops', 'laptop-eu-1'],
      'ci-runner-7': ['ci-runners'],
    });
  });

  it('ci/plan.sh validates and plans every host and writes the summary', () => {
    const dir = tempDir('awg-fleet-ex-');
    cpSync(fleet, dir, { recursive: true });
    const r = spawnSync('bash', ['ci/plan.sh'], {
      cwd: dir,
      env: { ...process.env, AWG: AWG },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\| laptop-eu-1 \| changes \| [1-9]\d* \| 0 \| 0 \| 0 \|$/m);
    expect(r.stdout).toMatch(/^\| ci-runner-7 \| changes \| [1-9]\d* \| 0 \| 0 \| 0 \|$/m);
    expect(readdirSync(join(dir, 'plans'))).toEqual(
      expect.arrayContaining(['laptop-eu-1.json', 'ci-runner-7.json', 'summary.md']),
    );
  }, 180_000);

  it('the alert rules and the dashboard use only metrics the daemon exports', () => {
    const src = readFileSync(join(root, 'src/daemon/metrics.ts'), 'utf8');
    const exported = new Set([...src.matchAll(/name: '(awg_[a-z_]+)'/g)].map((m) => m[1]!));
    const rules = {
      groups: ['awg-alerts.yaml', 'awg-rollout-alerts.yaml'].flatMap(
        (f) =>
          (
            parseYaml(readFileSync(join(fleet, 'prometheus', f), 'utf8')) as {
              groups: { rules: { alert: string; expr: string }[] }[];
            }
          ).groups,
      ),
    };
    const dash = JSON.parse(readFileSync(join(fleet, 'grafana/awg-fleet.json'), 'utf8')) as {
      panels: { targets: { expr: string }[] }[];
    };
    const exprs = [
      ...rules.groups.flatMap((g) => g.rules.map((x) => x.expr)),
      ...dash.panels.flatMap((p) => p.targets.map((t) => t.expr)),
    ];
    expect(exprs.length).toBeGreaterThan(10);
    for (const e of exprs)
      for (const m of e.match(/awg_[a-z_]+/g) ?? []) expect(exported, `${m} in ${e}`).toContain(m);
  });
});
