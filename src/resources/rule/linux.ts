/**
 * Linux ip-rule driver. Owns rules in the claimed priority band tagged with our protocol
 * (parse.ts); foreign rules are never touched. The kernel has no "change rule": an update is
 * delete + add, and `ip rule del` is given the full spec including `protocol`, which the kernel
 * matches, so it can only remove a rule of ours.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { ForeignObject, Resource, RuleSpec } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import type { Claims, Driver, ObserveResult, ObserveScope } from '../driver.js';
import { specEqual } from '../../util/canonical.js';
import { familyFlag } from '../route/render.js';
import {
  describeRuleRow,
  networkdManagesForeignRules,
  parseRuleJson,
  parseRuleRows,
  type ParsedRules,
  type RuleBand,
} from './parse.js';
import { ruleArgs } from './render.js';
import { readFamily, ruleRead } from '../reads.js';

export interface LinuxRuleOptions {
  exec: Pick<Exec, 'read'>;
  /** networkd.conf and drop-in dir; default /etc/systemd */
  networkdConfDir?: string;
  /** default: a process named systemd-networkd exists */
  networkdRunning?: () => Promise<boolean>;
}

const bandOf = (c: Claims): RuleBand => ({
  protocol: c.routeProtocol,
  rulePriority: c.rulePriority,
  bandSize: c.bandSize,
});

/**
 * A family's rules: over netlink in this process when `exec` runs on this host
 * (route/probe-netlink.ts, route/rule-netlink.ts: the rows `ip -j -N rule show` prints), else by `ip`.
 */
async function readRules(
  exec: Pick<Exec, 'read'>,
  family: 4 | 6,
  band: RuleBand,
): Promise<ParsedRules> {
  const { routingReader } = await import('../route/probe-netlink.js');
  const reader = routingReader(exec);
  if (!reader) return readFamily(exec, ruleRead, parseRuleJson, family, band);
  try {
    return parseRuleRows(reader.ruleRowsJson(family), family, band);
  } finally {
    reader.close();
  }
}

/**
 * networkd keeps its state under /run/systemd/netif while it runs: without that directory
 * skip the scan of every /proc/PID/comm (it grew with the process count and dominated a
 * no-op observe). A positive scan is cached for a minute (the daemon observes often).
 */
let networkdCache: { at: number; running: boolean } | undefined;
async function networkdRunningDefault(): Promise<boolean> {
  if (!(await stat('/run/systemd/netif').catch(() => undefined))) return false;
  const now = Date.now();
  if (networkdCache && now - networkdCache.at < 60_000) return networkdCache.running;
  const running = await processRunning('systemd-network');
  networkdCache = { at: now, running };
  return running;
}

/**
 * Synchronous on purpose: procfs reads never wait for a disk, and one promise round trip
 * per process made this scan a visible part of a one-shot `awg diff`, which cannot use the
 * cache; read synchronously it costs next to nothing (bench/RESULTS.md).
 */
async function processRunning(comm: string): Promise<boolean> {
  let pids: string[];
  try {
    pids = readdirSync('/proc');
  } catch {
    return false;
  }
  for (const pid of pids) {
    if (!/^\d+$/.test(pid)) continue;
    let c: string;
    try {
      c = readFileSync(`/proc/${pid}/comm`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    if (c.trim() === comm) return true;
  }
  return false;
}

async function networkdTexts(dir: string): Promise<string[]> {
  const texts: string[] = [];
  const main = await readFile(join(dir, 'networkd.conf'), 'utf8').catch(() => undefined);
  if (main !== undefined) texts.push(main);
  const dropins = (await readdir(join(dir, 'networkd.conf.d')).catch(() => [] as string[]))
    .filter((f) => f.endsWith('.conf'))
    .sort();
  for (const f of dropins) texts.push(await readFile(join(dir, 'networkd.conf.d', f), 'utf8'));
  return texts;
}

export function createLinuxRuleDriver(opts: LinuxRuleOptions): Driver<'rule'> {
  return {
    kind: 'rule',
    async observe(scope: ObserveScope): Promise<ObserveResult<'rule'>> {
      const resources: Resource<'rule'>[] = [];
      const foreign: ForeignObject[] = [];
      const seen = new Set<string>();
      // both families and the networkd probe at once: each read is a child process
      const [v4, v6, running] = await Promise.all([
        readRules(opts.exec, 4, bandOf(scope.claims)),
        readRules(opts.exec, 6, bandOf(scope.claims)),
        (opts.networkdRunning ?? networkdRunningDefault)(),
      ]);
      for (const p of [v4, v6]) {
        for (const r of p.owned) {
          const id = ids.rule(r);
          // several of our rules at one priority: the first is reported, apply removes the rest
          if (seen.has(id)) continue;
          seen.add(id);
          resources.push({ kind: 'rule', id, spec: r, deps: [] });
        }
        for (const r of p.conflicts)
          foreign.push({
            kind: 'rule',
            id: ids.rule(r),
            relation: 'conflict',
            description: `${describeRuleRow(r)} is in the claimed priority band but not ours`,
          });
        for (const r of p.competitors)
          foreign.push({
            kind: 'rule',
            id: ids.rule(r),
            relation: 'competitor',
            description: `${describeRuleRow(r)} steers traffic before awg's rules`,
          });
      }
      if (
        running &&
        networkdManagesForeignRules(await networkdTexts(opts.networkdConfDir ?? '/etc/systemd'))
      ) {
        foreign.push({
          kind: 'rule',
          id: 'rule/systemd-networkd',
          relation: 'competitor',
          description:
            'systemd-networkd runs with ManageForeignRoutingPolicyRules=yes and may delete awg rules; set it to no in networkd.conf',
        });
      }
      return { resources, foreign };
    },

    async apply(change: Change<'rule'>, ctx) {
      if (change.action === 'noop') return 'unchanged';
      const spec = change.after ?? change.before;
      if (!spec) throw new AwgError('bug', `${change.action} ${change.id} without a spec`);
      const families = new Set(
        [change.before?.family, change.after?.family].filter((f): f is 4 | 6 => f !== undefined),
      );
      const band = bandOf(ctx.claims);
      let n = 0;
      for (const family of families) {
        const cur = await readRules(ctx.exec, family, band);
        const after =
          change.action === 'delete' || change.after?.family !== family ? undefined : change.after;
        const priorities = new Set(
          [change.before, change.after]
            .filter((r): r is RuleSpec => r?.family === family)
            .map((r) => r.priority),
        );
        if (after) {
          if (
            after.protocol !== band.protocol ||
            after.priority < band.rulePriority ||
            after.priority >= band.rulePriority + band.bandSize
          ) {
            throw new AwgError(
              'bug',
              `rule ${ids.rule(after)} is outside the claimed band or lacks protocol ${band.protocol}`,
            );
          }
          const c = cur.conflicts.find((r) => r.priority === after.priority);
          if (c)
            throw new AwgError(
              'conflict',
              `${describeRuleRow(c)} occupies priority ${after.priority}; not touching it`,
            );
        }
        let present = false;
        for (const r of cur.owned) {
          if (!priorities.has(r.priority)) continue;
          if (after && !present && specEqual(r, after)) {
            present = true;
            continue;
          }
          await ctx.exec.mutate('ip', [familyFlag(family), ...ruleArgs('del', r)]);
          n++;
        }
        if (after && !present) {
          await ctx.exec.mutate('ip', [familyFlag(family), ...ruleArgs('add', after)]);
          n++;
        }
      }
      return n ? 'changed' : 'unchanged';
    },
  };
}
