/**
 * Golden planner tests. Each directory of test/fixtures/golden/ holds
 *   desired.yaml        the config (secrets are replaced by a fake map, never read)
 *   observed.json       an ObservedState
 *   last-applied.json   optional: what the last successful apply installed
 *   plan.txt, plan.json the expected `awg diff` text (no colour) and `--json` document
 * `UPDATE_GOLDEN=1 npx vitest run test/unit/reconciler/golden.test.ts` rewrites the last two;
 * review the diff before committing. Besides the byte comparison, each case has semantic
 * checks below so that a regenerated golden cannot silently bless a wrong plan.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { loadConfigText } from '../../../src/config/load.js';
import { secretRefs } from '../../../src/config/secrets.js';
import { formatPath } from '../../../src/config/positions.js';
import { linuxDesired } from '../../helpers/desired.js';
import { plan } from '../../../src/reconciler/plan.js';
import { renderPlan } from '../../../src/cli/render-plan.js';
import { PlanDocument, toPlanDocument } from '../../../src/model/plan-document.js';
import {
  RESOURCE_KINDS,
  type AnyResource,
  type ObservedState,
} from '../../../src/model/resources.js';
import type { AnyChange, Plan } from '../../../src/model/change.js';

const root = resolve(import.meta.dirname, '../../fixtures/golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const cases = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

const readJson = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

interface Case {
  plan: Plan;
  desired: AnyResource[];
  observed: ObservedState;
  lastApplied?: AnyResource[];
}

function loadCase(name: string): Case {
  const dir = join(root, name);
  const r = loadConfigText(readFileSync(join(dir, 'desired.yaml'), 'utf8'), 'desired.yaml');
  if (!r.config) throw new Error(`${name}/desired.yaml is invalid: ${JSON.stringify(r.issues)}`);
  const secrets = new Map(
    secretRefs(r.config).map((s) => [formatPath(s.path), `fake-secret:${formatPath(s.path)}`]),
  );
  const desired = linuxDesired(r.config, {
    facts: { cgroupNftPrefix: 'unified', dnsManager: 'resolved' },
    secrets,
  });
  const observed = readJson<ObservedState>(join(dir, 'observed.json'));
  const lpath = join(dir, 'last-applied.json');
  const lastApplied = existsSync(lpath) ? readJson<AnyResource[]>(lpath) : undefined;
  return {
    plan: plan(desired, observed, lastApplied ? { lastApplied } : {}),
    desired: desired.resources,
    observed,
    ...(lastApplied ? { lastApplied } : {}),
  };
}

const idx = (p: Plan, pred: (c: AnyChange) => boolean) => p.changes.findIndex(pred);
const lastIdx = (p: Plan, pred: (c: AnyChange) => boolean) =>
  Math.max(-1, ...p.changes.map((c, i) => (pred(c) ? i : -1)));
const real = (p: Plan) => p.changes.filter((c) => c.action !== 'noop');

/** per-case semantic checks (run on the computed plan, independent of the golden files) */
const checks: Record<string, (p: Plan, ctx: Case) => void> = {
  'initial-full-tunnel': (p, ctx) => {
    expect(real(p).length).toBe(ctx.desired.length);
    expect(p.changes.every((c) => c.action === 'create' && c.cause === 'initial')).toBe(true);
    // the kill switch (firewall) is in place before the link exists; rules after routes
    expect(idx(p, (c) => c.kind === 'firewall')).toBeLessThan(idx(p, (c) => c.kind === 'link'));
    expect(lastIdx(p, (c) => c.kind === 'route')).toBeLessThan(idx(p, (c) => c.kind === 'rule'));
  },
  converged: (p) => expect(real(p)).toEqual([]),
  drift: (p) => {
    expect(real(p).length).toBeGreaterThan(0);
    expect(p.changes.every((c) => c.cause === 'drift')).toBe(true);
    const by = (a: string, k: string) => p.changes.filter((c) => c.action === a && c.kind === k);
    expect(by('create', 'route')).toHaveLength(1);
    expect(by('create', 'route')[0]!.reason).toBe('missing (deleted outside awg)');
    expect(by('replace', 'rule')).toHaveLength(1);
    expect(by('replace', 'rule')[0]!.fields).toEqual(['table']);
    expect(by('update', 'firewall')).toHaveLength(1);
    expect(by('update', 'link')[0]!.fields).toEqual(['mtu']);
  },
  'config-mtu-change': (p) => {
    expect(real(p)).toHaveLength(1);
    expect(p.changes[0]).toMatchObject({
      kind: 'link',
      action: 'update',
      cause: 'config',
      fields: ['mtu'],
      before: { mtu: 1420 },
      after: { mtu: 1380 },
    });
  },
  'config-rule-table-change': (p) => {
    const rules = p.changes.filter((c) => c.kind === 'rule');
    expect(rules.length).toBeGreaterThan(0);
    for (const r of rules)
      expect(r).toMatchObject({
        action: 'replace',
        cause: 'config',
        fields: ['table'],
        after: { table: 100 },
      });
    expect(p.changes.every((c) => c.cause === 'config')).toBe(true);
    // routes move to table 100: new ids, so old ones are deleted and new ones created
    expect(p.changes.some((c) => c.kind === 'route' && c.action === 'delete')).toBe(true);
    expect(
      p.changes.some(
        (c) =>
          c.kind === 'route' &&
          c.action === 'create' &&
          (c.after as { table: number }).table === 100,
      ),
    ).toBe(true);
  },
  'config-rule-priority-change': (p) => {
    // the priority is part of a rule's identity: old priorities are deleted, new ones created
    const rules = p.changes.filter((c) => c.kind === 'rule');
    expect(
      rules
        .filter((c) => c.action === 'delete')
        .every((c) => (c.before as { priority: number }).priority < 6000),
    ).toBe(true);
    expect(
      rules
        .filter((c) => c.action === 'create')
        .every((c) => (c.after as { priority: number }).priority >= 6000),
    ).toBe(true);
    expect(rules.filter((c) => c.action === 'delete').length).toBeGreaterThan(0);
    expect(rules.filter((c) => c.action === 'delete').length).toBe(
      rules.filter((c) => c.action === 'create').length,
    );
    expect(p.changes.every((c) => c.cause === 'config')).toBe(true);
    // deletions run before creations
    expect(lastIdx(p, (c) => c.action === 'delete')).toBeLessThan(
      idx(p, (c) => c.action === 'create'),
    );
  },
  'tunnel-removed': (p) => {
    const dels = p.changes.filter((c) => c.action === 'delete');
    expect(dels.length).toBeGreaterThan(0);
    for (const d of dels)
      expect(d).toMatchObject({ cause: 'config', reason: 'no longer in the config' });
    const first = (k: string) => idx(p, (c) => c.action === 'delete' && c.kind === k);
    const last = (k: string) => lastIdx(p, (c) => c.action === 'delete' && c.kind === k);
    // reverse dependency order: rules before routes before engine/address before the link
    expect(first('rule')).toBeGreaterThanOrEqual(0);
    expect(last('rule')).toBeLessThan(first('route'));
    expect(last('route')).toBeLessThan(first('link'));
    expect(last('address')).toBeLessThan(first('link'));
    expect(last('engine')).toBeLessThan(first('link'));
    expect(dels.filter((c) => c.kind === 'link').map((c) => c.id)).toEqual(['link/awg-fra']);
    // all deletions come before any forward change
    expect(last('rule')).toBeLessThan(idx(p, (c) => c.action !== 'delete'));
    // the firewall policy changes in place, and with it the kill switch kept for boot
    expect(p.changes.find((c) => c.kind === 'firewall')).toMatchObject({
      action: 'update',
      fields: ['boot', 'ruleset'],
    });
  },
  'foreign-conflict': (p) => {
    expect(p.foreign.map((f) => f.relation)).toEqual(['conflict', 'competitor']);
    expect(p.changes.every((c) => c.action === 'create')).toBe(true);
  },
  'two-tunnels-per-app': (p) => {
    const lastCgroup = lastIdx(p, (c) => c.kind === 'cgroup');
    expect(lastCgroup).toBeGreaterThanOrEqual(0);
    expect(lastCgroup).toBeLessThan(idx(p, (c) => c.kind === 'firewall'));
    // the root cgroup comes before its children
    expect(idx(p, (c) => c.id === 'cgroup/awg')).toBeGreaterThanOrEqual(0);
    expect(idx(p, (c) => c.id === 'cgroup/awg')).toBeLessThan(
      idx(p, (c) => c.kind === 'cgroup' && c.id.startsWith('cgroup/awg/')),
    );
    expect(p.changes.filter((c) => c.kind === 'engine').map((c) => c.id)).toEqual([
      'engine/fra',
      'engine/work',
    ]);
  },
  'limits-drift': (p) => {
    // the deleted class is rebuilt in place, the deleted ingress tree created again; nothing else
    expect(real(p).map((c) => [c.action, c.id, c.cause])).toEqual([
      ['update', 'shaper/awg-home/egress', 'drift'],
      ['create', 'shaper/awg-home/ingress', 'drift'],
    ]);
    expect(p.changes.find((c) => c.id === 'shaper/awg-home/egress')!.fields).toEqual(['classes']);
  },
  'unowned-leftover': (p) => {
    expect(real(p)).toHaveLength(1);
    expect(p.changes[0]).toMatchObject({
      action: 'delete',
      kind: 'route',
      cause: 'initial',
      reason: 'owned by awg but not desired',
    });
  },
};

describe('golden plans', () => {
  it('has at least 8 cases, each with a semantic check', () => {
    expect(cases.length).toBeGreaterThanOrEqual(8);
    for (const c of cases) expect(Object.keys(checks)).toContain(c);
  });

  describe.each(cases)('%s', (name) => {
    const dir = join(root, name);
    const ctx = loadCase(name);
    const text = renderPlan(ctx.plan, { colour: false });
    const doc = toPlanDocument(ctx.plan);
    const json = JSON.stringify(doc, null, 2) + '\n';
    if (UPDATE) {
      writeFileSync(join(dir, 'plan.txt'), text);
      writeFileSync(join(dir, 'plan.json'), json);
    }

    it('plan.txt matches renderPlan(colour: false)', () => {
      expect(text).toBe(readFileSync(join(dir, 'plan.txt'), 'utf8'));
      expect(text.includes('\u001b[')).toBe(false);
    });

    it('plan.json matches toPlanDocument and validates against the PlanDocument schema', () => {
      const stored = readJson<unknown>(join(dir, 'plan.json'));
      const v = PlanDocument.safeParse(stored);
      expect(v.success, v.success ? '' : JSON.stringify(v.error.issues)).toBe(true);
      expect(json).toBe(readFileSync(join(dir, 'plan.json'), 'utf8'));
      // and against the published JSON Schema generated from it
      const schemaFile = resolve(root, '../../../schema/plan.schema.json');
      if (existsSync(schemaFile)) {
        const validate = new Ajv2020({ allErrors: true, strict: false }).compile(
          JSON.parse(readFileSync(schemaFile, 'utf8')) as object,
        );
        validate(stored);
        expect(validate.errors ?? []).toEqual([]);
      }
    });

    it('summary counts agree with the change list', () => {
      const c = doc.changes;
      expect(doc.summary).toEqual({
        create: c.filter((x) => x.action === 'create').length,
        update: c.filter((x) => x.action === 'update').length,
        replace: c.filter((x) => x.action === 'replace').length,
        delete: c.filter((x) => x.action === 'delete').length,
        drift: c.filter((x) => x.cause === 'drift').length,
        config: c.filter((x) => x.cause === 'config').length,
      });
    });

    it('never contains a secret value', () => {
      expect(text + json).not.toContain('fake-secret:');
    });

    it('lists kind groups in RESOURCE_KINDS order', () => {
      const heads = text
        .split('\n')
        .filter((l) => /^[a-z]+:$/.test(l))
        .map((l) => l.slice(0, -1));
      const ranks = heads.map((h) => (RESOURCE_KINDS as readonly string[]).indexOf(h));
      expect(ranks.every((r) => r >= 0)).toBe(true);
      expect([...ranks].sort((a, b) => a - b)).toEqual(ranks);
    });

    it('every line of the text is one well-formed line (field values never break lines)', () => {
      const ok = [
        /^$/,
        /^[a-z]+:$/,
        /^ {2}[+~±-] [a-z]+\/\S+ {2}\(.*\)( \[drift\])?$/,
        /^ {6}[A-Za-z]+: .* → .*$/,
        // multi-line values (the nft ruleset) render as a line diff under the field name
        /^ {6}[A-Za-z]+:$/,
        /^ {8}[+-] \S.*$/,
        /^ {8}… \d+ more lines$/,
        /^Plan: \d+ to create, \d+ to update, \d+ to replace, \d+ to delete( \(\d+ from drift\))?\.$/,
        /^No changes\. /,
        /^! (conflict|competitor): /,
        /^warning: /,
      ];
      const bad = text.split('\n').filter((l) => !ok.some((re) => re.test(l)));
      expect(bad).toEqual([]);
    });

    it('semantic checks', () => checks[name]!(ctx.plan, ctx));
  });
});
