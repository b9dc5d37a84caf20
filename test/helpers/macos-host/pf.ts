/**
 * The model's PF: pf.conf and anchor text as pfctl normalises it, and the pfctl command lines
 * the drivers issue (rulesets, anchors, tables, dummynet rules, -E references, states).
 */
import { readFileSync } from 'node:fs';
import type { ExecResult } from '../../../src/util/exec.js';
import type { MacHost } from './model.js';
import { fail, ok, type Need } from './state.js';

/** the default /etc/pf.conf of macOS (10.x … 15.x) */
export const DEFAULT_PF_CONF = `#
# Default PF configuration file.
#
scrub-anchor "com.apple/*"
nat-anchor "com.apple/*"
rdr-anchor "com.apple/*"
dummynet-anchor "com.apple/*"
anchor "com.apple/*"
load anchor "com.apple" from "/etc/pf.anchors/com.apple"
`;

/** pfctl's main-ruleset normalisation of pf.conf lines (filter and scrub anchors only: `-sr`) */
export function pfMainRules(conf: string): string[] {
  const out: string[] = [];
  for (const raw of conf.split('\n')) {
    const l = raw.replace(/#.*/, '').trim();
    if (!l) continue;
    let m = /^anchor "([^"]+)"(?: all)?$/.exec(l);
    if (m) {
      out.push(`anchor "${m[1]}" all`);
      continue;
    }
    m = /^scrub-anchor "([^"]+)"(?: all)?(?: fragment reassemble)?$/.exec(l);
    if (m) {
      out.push(`scrub-anchor "${m[1]}" all fragment reassemble`);
      continue;
    }
    if (/^(nat|rdr|dummynet)-anchor "[^"]+"$/.test(l) || /^load anchor /.test(l)) continue;
    throw new Error(`macos-host: pf.conf line the model does not know: ${l}`);
  }
  return out;
}

/** pfctl's `-sn` of the main ruleset: the translation anchors of pf.conf */
export function pfMainNat(conf: string): string[] {
  return conf
    .split('\n')
    .map((raw) => raw.replace(/#.*/, '').trim())
    .flatMap((l) => {
      const m = /^(nat|rdr)-anchor "([^"]+)"(?: all)?$/.exec(l);
      return m ? [`${m[1]}-anchor "${m[2]}" all`] : [];
    });
}

/** pfctl's `-s dummynet` of the main ruleset: the dummynet anchors of pf.conf */
export function pfMainDummynet(conf: string): string[] {
  return conf
    .split('\n')
    .map((raw) => raw.replace(/#.*/, '').trim())
    .flatMap((l) => {
      const m = /^dummynet-anchor "([^"]+)"(?: all)?$/.exec(l);
      return m ? [`dummynet-anchor "${m[1]}" all`] : [];
    });
}

/**
 * an anchor's ruleset as `-sr` shows it (macros expanded, comments and definitions gone),
 * its `rdr` rules as `-sn` shows them and its `table <x> const { … }` definitions
 */
function pfAnchorRules(text: string): {
  rules: string[];
  nat: string[];
  dummynet: string[];
  tables: Map<string, string[]>;
  error?: string;
} {
  const macros = new Map<string, string>();
  const rules: string[] = [];
  const nat: string[] = [];
  const dummynet: string[] = [];
  const tables = new Map<string, string[]>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.replace(/#.*/, '').trim();
    if (!l) continue;
    const def = /^([A-Za-z_][A-Za-z0-9_]*) = "([^"]*)"$/.exec(l);
    if (def) {
      macros.set(def[1]!, def[2]!);
      continue;
    }
    let bad: string | undefined;
    const r = l.replace(/\$([A-Za-z0-9_]+)/g, (_, n: string) => macros.get(n) ?? ((bad = n), ''));
    if (bad !== undefined)
      return {
        rules: [],
        nat: [],
        dummynet: [],
        tables,
        error: `stdin:${i + 1}: macro '${bad}' not defined\nstdin:${i + 1}: syntax error`,
      };
    const t = /^table <([A-Za-z0-9_]+)> const \{ ([^}]*) \}$/.exec(r);
    if (t) {
      tables.set(t[1]!, t[2]!.split(/\s+/).filter(Boolean));
      continue;
    }
    // PF wants translation rules before filter (and dummynet) rules
    if (/^(rdr|nat)\b/.test(r)) {
      if (rules.length || dummynet.length)
        return {
          rules: [],
          nat: [],
          dummynet: [],
          tables,
          error: `stdin:${i + 1}: Rules must be in order: options, normalization, queueing, translation, filtering\nstdin:${i + 1}: syntax error`,
        };
      nat.push(r);
      continue;
    }
    // dummynet rules (Apple's): the grammar awg renders, as pfctl prints it back (pf-shaping.ts)
    if (/^(?:no )?dummynet\b/.test(r)) {
      if (
        !/^no dummynet quick on \S+ all$/.test(r) &&
        !/^dummynet (?:in|out) quick (?:on \S+ all|proto tcp from any port \d+:\d+ to any|proto tcp from any to any port \d+:\d+) pipe \d+$/.test(
          r,
        )
      )
        return { rules: [], nat: [], dummynet: [], tables, error: `stdin:${i + 1}: syntax error` };
      dummynet.push(r);
      continue;
    }
    if (!/^(pass|block)\b/.test(r))
      return { rules: [], nat: [], dummynet: [], tables, error: `stdin:${i + 1}: syntax error` };
    rules.push(r);
  }
  return { rules, nat, dummynet, tables };
}

export function pfctl(
  host: MacHost,
  args: string[],
  input: string | undefined,
  need: Need,
): ExecResult {
  const s = args.join(' ');
  const altq = 'No ALTQ support in kernel\nALTQ related functions disabled\n';
  let m: RegExpExecArray | null;
  if (s === '-sr') return (need('read'), ok(host.pf.main.map((r) => `${r}\n`).join(''), altq));
  if (s === '-sn') return (need('read'), ok(host.pf.nat.map((r) => `${r}\n`).join(''), altq));
  if (s === '-s dummynet')
    return (need('read'), ok(host.pf.dummynet.map((r) => `${r}\n`).join(''), altq));
  if (s === '-s info') {
    need('read');
    const status = host.pf.enabled
      ? 'Status: Enabled for 0 days 00:00:00           Debug: Urgent'
      : 'Status: Disabled                              Debug: Urgent';
    return ok(
      `${status}\n\nState Table                          Total             Rate\n  current entries                        0               \n`,
    );
  }
  if (s === '-s References') {
    need('read');
    const rows = [...host.pf.refs]
      .reverse()
      .map(
        ([t, pid]) =>
          `${String(pid).padEnd(8)} ${'pfctl'.padEnd(28)} ${t.padEnd(24)} 0 days 00:00:00`,
      );
    return ok(
      [
        'TOKENS:',
        'PID      Process Name                 TOKEN                    TIMESTAMP',
        ...rows,
        '',
      ].join('\n'),
    );
  }
  if ((m = /^-a (com\.awg) -s Anchors$/.exec(s))) {
    need('read');
    return ok(
      [...host.pf.anchors.keys()]
        .filter((a) => a.startsWith(`${m![1]}/`))
        .map((a) => `  ${a}\n`)
        .join(''),
    );
  }
  if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -sr$/.exec(s))) {
    need('read');
    return ok((host.pf.anchors.get(m[1]!) ?? []).map((r) => `${r}\n`).join(''), altq);
  }
  if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -sn$/.exec(s))) {
    need('read');
    return ok((host.pf.anchorNat.get(m[1]!) ?? []).map((r) => `${r}\n`).join(''), altq);
  }
  if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -s dummynet$/.exec(s))) {
    need('read');
    return ok((host.pf.anchorDummynet.get(m[1]!) ?? []).map((r) => `${r}\n`).join(''), altq);
  }
  need('mutate');
  if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -f -$/.exec(s))) {
    const r = pfAnchorRules(input ?? '');
    if (r.error)
      return fail(`${r.error}\npfctl: Syntax error in config file: pf rules not loaded\n`);
    // one transaction: the anchor's filter, translation and dummynet rules and its tables are replaced
    host.pf.anchors.set(m[1]!, r.rules);
    host.pf.anchorNat.set(m[1]!, r.nat);
    host.pf.anchorDummynet.set(m[1]!, r.dummynet);
    host.pf.anchorTables.set(m[1]!, r.tables);
    return ok('', altq);
  }
  if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -F dummynet$/.exec(s))) {
    host.pf.anchorDummynet.set(m[1]!, []);
    return ok('', `${altq}dummynet cleared\n`);
  }
  if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -F rules$/.exec(s))) {
    host.pf.anchors.set(m[1]!, []);
    return ok('', `${altq}rules cleared\n`);
  }
  if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -F nat$/.exec(s))) {
    host.pf.anchorNat.set(m[1]!, []);
    return ok('', `${altq}nat cleared\n`);
  }
  if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -F Tables$/.exec(s))) {
    const n = host.pf.anchorTables.get(m[1]!)?.size ?? 0;
    host.pf.anchorTables.set(m[1]!, new Map());
    return ok('', `${altq}${n} tables deleted.\n`);
  }
  if (s === '-f -' || s === '-f /etc/pf.conf') {
    const text = s === '-f -' ? (input ?? '') : host.pfConf;
    host.pf.main = pfMainRules(text);
    host.pf.nat = pfMainNat(text);
    host.pf.dummynet = pfMainDummynet(text);
    // reloading the main ruleset drops what was inserted at run time; our anchors' rules stay
    return ok(
      '',
      `pfctl: Use of -f option, could result in flushing of rules\npresent in the main ruleset added by the system at startup.\nSee /etc/pf.conf for further details.\n\n${altq}`,
    );
  }
  if ((m = /^-E -f (\/.+)$/.exec(s))) {
    // BSD pfctl loads the rules, then enables, in one run; `load anchor` lines of ours are
    // read from their files (the system's com.apple anchor file is not modelled)
    const text = readFileSync(m[1]!, 'utf8');
    host.pf.main = pfMainRules(text);
    host.pf.nat = pfMainNat(text);
    host.pf.dummynet = pfMainDummynet(text);
    for (const l of text.split('\n')) {
      const a = /^load anchor "(com\.awg\/[A-Za-z0-9_.-]+)" from "([^"]+)"$/.exec(l.trim());
      if (!a) continue;
      const r = pfAnchorRules(readFileSync(a[2]!, 'utf8'));
      if (r.error)
        return fail(`${r.error}\npfctl: Syntax error in config file: pf rules not loaded\n`);
      host.pf.anchors.set(a[1]!, r.rules);
      host.pf.anchorNat.set(a[1]!, r.nat);
      host.pf.anchorDummynet.set(a[1]!, r.dummynet);
      host.pf.anchorTables.set(a[1]!, r.tables);
    }
    const token = String(host.nextToken++);
    host.pf.refs.set(token, host.nextPid++);
    host.pf.enabled = true;
    return ok(
      '',
      `pfctl: Use of -f option, could result in flushing of rules\npresent in the main ruleset added by the system at startup.\nSee /etc/pf.conf for further details.\n\n${altq}pf enabled\nToken : ${token}\n`,
    );
  }
  if (s === '-E') {
    const token = String(host.nextToken++);
    host.pf.refs.set(token, host.nextPid++);
    host.pf.enabled = true;
    return ok('', `${altq}pf enabled\nToken : ${token}\n`);
  }
  if ((m = /^-X (\d+)$/.exec(s))) {
    if (!host.pf.enabled) return fail('pfctl: pf not enabled\n');
    if (!host.pf.refs.delete(m[1]!)) return fail('pfctl: pf: token invalid\n');
    const remaining = host.pf.refs.size + host.pf.plainRefs;
    if (remaining === 0) {
      host.pf.enabled = false;
      return ok('', 'pf disabled\n');
    }
    return ok(
      '',
      `disable request successful. ${remaining} more pf enable reference(s) remaining, pf still enabled.\n`,
    );
  }
  if (s === '-F states') {
    host.pf.stateFlushes++;
    host.pfStates.clear();
    return ok('', `${altq}0 states cleared\n`);
  }
  throw new Error(`macos-host: pfctl ${s}`);
}
