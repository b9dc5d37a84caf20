/**
 * A model of a macOS host for the darwin drivers (issue 17, Step 13): routes (the captured
 * tun2socks table, with link#N, ARP and interface-scoped entries), interfaces (en0, lo0,
 * utunN), network services with their DNS (manual, or DHCP's while `Empty`), the dynamic-store
 * keys scutil writes, PF (main ruleset, anchors, enabled flag, -E references), launchd jobs and
 * their plists, sysctls. `MacHost` is an Exec that interprets every command line the macOS
 * drivers issue against this state and answers in the formats of the captured outputs the
 * parsers are tested on (test/fixtures/macos/; host-model-formats.test.ts compares them). An
 * unknown command or argument list, or a read issued as a mutation (and back), throws, so a
 * driver that issues something the model does not know fails the test instead of passing.
 *
 * Test hooks: `faults` (the Nth mutation matching a pattern fails, in the tool's own error
 * format, without its effect), `triggers` (something happens on the host after the Nth
 * matching mutation, e.g. an engine dies), `root` (false: every tool refuses as it does for a
 * user), `crashJob`, `createUtun`/`destroyUtun`, `pfctlReload`, `reboot`.
 *
 * What the model is not: a kernel. pfctl's rule normalisation is modelled only as macro
 * expansion and comment stripping; route cloning, ARP, scoped routes beyond what the initial
 * table holds, and service-order changes are not modelled.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ipaddr from 'ipaddr.js';
import type { Exec, ExecOptions, ExecResult } from '../../../src/util/exec.js';
import { AwgError } from '../../../src/errors.js';
import { parseNetstatRoutes, type NetstatRoute } from '../../../src/platform/darwin/netstat.js';
import { plistProgramArguments } from '../../../src/platform/darwin/plist.js';
import { PfStateTable } from './pf-states.js';

const CAPTURES = new URL('../../fixtures/macos/', import.meta.url);

/** the verbatim part of a capture in test/fixtures/macos */
export function capture(rel: string): string {
  const text = readFileSync(fileURLToPath(new URL(rel, CAPTURES)), 'utf8');
  const marker = '# ---- verbatim output below this line ----\n';
  const i = text.indexOf(marker);
  if (i < 0) throw new Error(`macos-host: capture ${rel} has no marker line`);
  return text.slice(i + marker.length);
}

export const LAPTOP_NETSTAT = 'routes/netstat-rn-split-0-1-128-1-utun2-tun2socks.txt';

function capturedRoutes(): NetstatRoute[] {
  return parseNetstatRoutes(capture(LAPTOP_NETSTAT));
}

export interface MRoute {
  family: 4 | 6;
  /** canonical CIDR */
  dst: string;
  /** next hop IP, `link#N`, or an interface name (a `-interface` route) */
  gateway: string;
  flags: string;
  netif: string;
  /** routes the kernel made for an interface (go with it) */
  system?: boolean;
  /** netstat's Expire column (`!`, seconds of an ARP entry) */
  expire?: string;
}

export interface MInterface {
  name: string;
  index: number;
  mtu: number;
  up: boolean;
  inet: { address: string; prefixlen: number }[];
  inet6: { address: string; prefixlen: number }[];
}

export interface MService {
  name: string;
  device: string;
  enabled: boolean;
  dns: string[];
  search: string[];
  /** what DHCP gave the service: in effect while its manual list is `Empty` */
  dhcp?: { dns: string[]; search: string[] };
}

export interface MPf {
  enabled: boolean;
  /** main ruleset as `pfctl -sr` prints it */
  main: string[];
  /** main translation rules as `pfctl -sn` prints them (nat-/rdr-anchors of pf.conf) */
  nat: string[];
  anchors: Map<string, string[]>;
  /** an anchor's translation rules (`-a X -sn`) and tables (name → entries) */
  anchorNat: Map<string, string[]>;
  anchorTables: Map<string, Map<string, string[]>>;
  /** main dummynet rules as `pfctl -s dummynet` prints them (dummynet-anchors of pf.conf) */
  dummynet: string[];
  /** an anchor's dummynet rules (`-a X -s dummynet`) */
  anchorDummynet: Map<string, string[]>;
  /** -E references: token → pid */
  refs: Map<string, number>;
  /**
   * references without a token: `pfctl -e` (DIOCSTART) adds one to XNU's pf_enabled_ref_count
   * when it starts PF (or when it is running and every reference has a token), and `pfctl -X`
   * (DIOCSTOPREF) stops PF only when that count reaches 0 — bsd/net/pf_ioctl.c
   */
  plainRefs: number;
  /** state-table flushes (pfctl -F states) */
  stateFlushes: number;
}

export interface Fault {
  /** fail the mutation whose command line matches (and the `nth` such, from 1; 'every': all of them) */
  match: RegExp;
  nth?: number | 'every';
}

/** something that happens on the host right after a mutation (an engine dying mid-apply) */
export interface Trigger {
  /** after the `nth` mutation (from 1) whose command line matches */
  match: RegExp;
  nth?: number;
  run: (host: MacHost) => void;
}

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

const ok = (stdout = '', stderr = ''): ExecResult => ({ stdout, stderr, code: 0 });
const fail = (stderr: string, code = 1, stdout = ''): ExecResult => ({ stdout, stderr, code });

/** canonical network CIDR of `a/len` */
function canon(cidr: string): string {
  const [a, l] = ipaddr.parseCIDR(cidr);
  const bytes = a.toByteArray();
  for (let i = 0; i < bytes.length * 8; i++) if (i >= l) bytes[i >> 3]! &= ~(0x80 >> (i & 7));
  return `${ipaddr.fromByteArray(bytes).toString()}/${l}`;
}

function inPrefix(addr: string, cidr: string): boolean {
  const a = ipaddr.parse(addr);
  const [net, len] = ipaddr.parseCIDR(cidr);
  return a.kind() === net.kind() && a.match(net, len);
}

/**
 * netstat's destination column: `default`; a host route (flag H) without its length; IPv4
 * networks as network_cmds netstat.tproj/route.c `netname()` prints them — trailing zero
 * octets dropped down to the address's classful mask, and `/len` only when the mask is not
 * that classful mask (`0/1`, `128.0/1`, `127`, `169.254`, `192.168.1`, `224.0.0/4`,
 * `192.168.1.1/32`, `10.66/16`).
 */
function netstatDst(r: MRoute): string {
  const [a, l] = r.dst.split('/') as [string, string];
  const len = Number(l);
  if (len === 0) return 'default';
  if (r.flags.includes('H')) return a;
  if (r.family === 6) return `${a}/${l}`;
  const o = a.split('.').map(Number);
  // forgemask(): class A /8, B /16, everything else (C and D) /24
  const classful = o[0]! < 128 ? 8 : o[0]! < 192 ? 16 : 24;
  let keep = 4;
  if (classful <= 8 && o[1] === 0 && o[2] === 0 && o[3] === 0) keep = 1;
  else if (classful <= 16 && o[2] === 0 && o[3] === 0) keep = 2;
  else if (o[3] === 0) keep = 3;
  return `${o.slice(0, keep).join('.')}${len === classful ? '' : `/${len}`}`;
}

/** pfctl's main-ruleset normalisation of pf.conf lines (filter and scrub anchors only: `-sr`) */
function pfMainRules(conf: string): string[] {
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
function pfMainNat(conf: string): string[] {
  return conf
    .split('\n')
    .map((raw) => raw.replace(/#.*/, '').trim())
    .flatMap((l) => {
      const m = /^(nat|rdr)-anchor "([^"]+)"(?: all)?$/.exec(l);
      return m ? [`${m[1]}-anchor "${m[2]}" all`] : [];
    });
}

/** pfctl's `-s dummynet` of the main ruleset: the dummynet anchors of pf.conf */
function pfMainDummynet(conf: string): string[] {
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

/**
 * A dummynet pipe as xnu keeps it (bsd/netinet/ip_dummynet.c config_pipe): bandwidth in
 * bit/s (0: unlimited), delay in ms, a queue in slots or in bytes, a loss rate (0..1).
 */
export interface MPipe {
  bandwidth: number;
  delayMs: number;
  queue: { slots: number } | { bytes: number };
  plr: number;
}

/** C's `%<w>.<p>f` and `%<w>d` (right-aligned), for dnctl's list */
const fmt = (v: number, width: number, prec?: number) =>
  (prec === undefined ? String(v) : v.toFixed(prec)).padStart(width);

/** one pipe as dnctl.c list_pipes/print_flowset_parms/list_queues print it (no flows: the model forwards no packets) */
function dnctlPipeText(nr: number, p: MPipe): string {
  const b = p.bandwidth;
  const bw =
    b === 0
      ? 'unlimited'
      : b >= 1_000_000
        ? `${fmt(b / 1_000_000, 7, 3)} Mbit/s`
        : b >= 1000
          ? `${fmt(b / 1000, 7, 3)} Kbit/s`
          : `${fmt(b, 7, 3)} bit/s `;
  const prefix = `${String(nr).padStart(5, '0')}: ${bw} ${fmt(p.delayMs, 4)} ms `;
  const qs =
    'bytes' in p.queue
      ? p.queue.bytes >= 8192
        ? `${Math.floor(p.queue.bytes / 1024)} KB`
        : `${p.queue.bytes} B`
      : `${fmt(p.queue.slots, 3)} sl.`;
  const plr = p.plr ? `plr ${p.plr.toFixed(6)}` : '';
  return `${prefix} ${qs}${plr} 0 queues (1 buckets) droptail\n    mask: 0x00 0x00000000/0x0000 -> 0x00000000/0x0000\n`;
}

export class MacHost implements Exec {
  routes: MRoute[] = [];
  interfaces = new Map<string, MInterface>();
  services: MService[] = [];
  store = new Map<
    string,
    { ServerAddresses: string[]; SupplementalMatchDomains: string[]; SearchDomains: string[] }
  >();
  pf: MPf = {
    enabled: false,
    main: pfMainRules(DEFAULT_PF_CONF),
    nat: pfMainNat(DEFAULT_PF_CONF),
    anchors: new Map(),
    anchorNat: new Map(),
    anchorTables: new Map(),
    refs: new Map(),
    plainRefs: 0,
    stateFlushes: 0,
    dummynet: pfMainDummynet(DEFAULT_PF_CONF),
    anchorDummynet: new Map(),
  };
  pfConf = DEFAULT_PF_CONF;
  /** PF's UDP states (pf-states.ts): not part of `snapshot`; `pfctl -F states` and a reboot clear it */
  readonly pfStates = new PfStateTable();
  /** dummynet pipes (dnctl): number → parameters */
  pipes = new Map<number, MPipe>();
  /** loaded jobs of the system domain: label → the plist it was bootstrapped from, its pid (none: not running) */
  launchd = new Map<string, { plist: string; pid?: number; lastExit?: number }>();
  sysctls = new Map<string, string>([
    ['net.inet.ip.forwarding', '0'],
    ['net.inet6.ip6.forwarding', '0'],
  ]);
  /** files the drivers read and write besides /etc/pf.conf (the LaunchDaemons plists) */
  files = new Map<string, string>();
  /** every command line, in order (mutations marked) */
  readonly log: { kind: 'read' | 'mutate'; line: string; input?: string }[] = [];
  mutations = 0;
  readonly dryRun = false;
  faults: Fault[] = [];
  private faultCounts = new Map<Fault, number>();
  triggers: Trigger[] = [];
  private triggerCounts = new Map<Trigger, number>();
  /**
   * false: awg runs as an ordinary user — every change is refused with the tool's own message
   * (route: `must be root to alter routing table`, exit 77; pfctl cannot open /dev/pf, reads
   * included; ifconfig's ioctls: EPERM), reads of routes, interfaces and services still work.
   * A RegExp refuses only the command lines it matches (to reach one driver's error path).
   */
  root: boolean | RegExp = true;
  private nextToken = 15053025338191571182n;
  private nextPid = 4000;
  dnsFlushes = 0;

  /**
   * A MacBook on Wi-Fi. Its IPv4 table is the captured `netstat -rn` of the tun2socks report
   * (routes/netstat-rn-split-0-1-128-1-utun2-tun2socks.txt), read with the project's parser,
   * without the VPN's lines (the utun2 routes and its server's host route), plus the
   * interface-scoped default (flag I) that macOS keeps beside the primary one
   * (routes/netstat-nr-two-defaults-scoped-2020.txt). Interfaces and services follow the
   * captures' devices (en0 = link#11).
   */
  /**
   * The laptop's uplink given IPv6: a global address on en0, the v6 default via the router's
   * link-local address and the LAN's /64 on-link. Returns the host.
   */
  withIpv6Uplink(): this {
    this.interfaces.get('en0')!.inet6.push({ address: '2001:db8:1::175', prefixlen: 64 });
    this.routes.push(
      { family: 6, dst: '::/0', gateway: 'fe80::1%en0', flags: 'UGcg', netif: 'en0', system: true },
      {
        family: 6,
        dst: '2001:db8:1::/64',
        gateway: 'link#11',
        flags: 'UC',
        netif: 'en0',
        system: true,
      },
    );
    return this;
  }

  static laptop(): MacHost {
    const h = new MacHost();
    h.interfaces.set('lo0', {
      name: 'lo0',
      index: 1,
      mtu: 16384,
      up: true,
      inet: [{ address: '127.0.0.1', prefixlen: 8 }],
      inet6: [
        { address: '::1', prefixlen: 128 },
        { address: 'fe80::1', prefixlen: 64 },
      ],
    });
    h.interfaces.set('en0', {
      name: 'en0',
      index: 11,
      mtu: 1500,
      up: true,
      inet: [{ address: '192.168.1.175', prefixlen: 24 }],
      inet6: [],
    });
    h.routes = capturedRoutes()
      .filter((r) => r.netif !== 'utun2' && !(r.destination === '192.168.1.51' && r.viaGateway))
      .map((r) => {
        if (!r.dst)
          throw new Error(`macos-host: capture row without a destination: ${r.destination}`);
        const g = r.gateway;
        const gateway =
          g.kind === 'link'
            ? `link#${g.index}`
            : g.kind === 'ip'
              ? g.address
              : g.kind === 'mac'
                ? g.address
                : g.name;
        const m: MRoute = {
          family: r.family,
          dst: r.dst,
          gateway,
          flags: r.flags,
          netif: r.netif,
          system: true,
        };
        if (r.expire !== undefined) m.expire = r.expire;
        return m;
      });
    h.routes.splice(1, 0, {
      family: 4,
      dst: '0.0.0.0/0',
      gateway: '192.168.1.1',
      flags: 'UGScIg',
      netif: 'en0',
      system: true,
    });
    h.services = [
      {
        name: 'Wi-Fi',
        device: 'en0',
        enabled: true,
        dns: [],
        search: [],
        dhcp: { dns: ['192.168.1.1'], search: ['home.arpa'] },
      },
      {
        name: 'Thunderbolt Bridge',
        device: 'bridge0',
        enabled: true,
        dns: ['192.168.7.1'],
        search: ['corp.example'],
      },
      { name: 'iPhone USB', device: 'en5', enabled: false, dns: [], search: [] },
    ];
    return h;
  }

  /** everything a user would compare before and after (deterministic, JSON) */
  snapshot(): unknown {
    return JSON.parse(
      JSON.stringify({
        routes: [...this.routes].sort((a, b) =>
          `${a.dst} ${a.netif} ${a.gateway} ${a.flags}`.localeCompare(
            `${b.dst} ${b.netif} ${b.gateway} ${b.flags}`,
          ),
        ),
        interfaces: [...this.interfaces.values()].sort((a, b) => a.name.localeCompare(b.name)),
        services: this.services,
        store: [...this.store].sort(),
        pf: {
          enabled: this.pf.enabled,
          main: this.pf.main,
          nat: this.pf.nat,
          anchors: [...this.pf.anchors].filter(([, r]) => r.length).sort(),
          anchorNat: [...this.pf.anchorNat].filter(([, r]) => r.length).sort(),
          anchorTables: [...this.pf.anchorTables]
            .filter(([, t]) => t.size)
            .map(([n, t]) => [n, [...t].sort()])
            .sort(),
          refs: [...this.pf.refs.keys()].sort(),
          plainRefs: this.pf.plainRefs,
          dummynet: this.pf.dummynet,
          anchorDummynet: [...this.pf.anchorDummynet].filter(([, r]) => r.length).sort(),
        },
        pipes: [...this.pipes].sort(([a], [b]) => a - b),
        launchd: [...this.launchd.keys()].sort(),
        sysctls: [...this.sysctls].sort(),
        files: [...this.files].sort(),
      }),
    );
  }

  // ---- what an engine (or the kernel) does ---------------------------------------------

  /** a process opened a utun: the first free unit (or `unit`) */
  createUtun(unit?: number): string {
    let n = unit ?? 0;
    while (unit === undefined && this.interfaces.has(`utun${n}`)) n++;
    const name = `utun${n}`;
    if (this.interfaces.has(name)) throw new Error(`${name} exists`);
    const index = Math.max(...[...this.interfaces.values()].map((i) => i.index)) + 1;
    this.interfaces.set(name, {
      name,
      index,
      mtu: 1500,
      up: true,
      inet: [],
      inet6: [{ address: `fe80::${n + 1}`, prefixlen: 64 }],
    });
    return name;
  }

  /** the socket holding a utun closed: the interface and every route through it go */
  destroyUtun(name: string): void {
    this.interfaces.delete(name);
    this.routes = this.routes.filter((r) => r.netif !== name);
  }

  /**
   * someone ran `pfctl -e` (a firewall app, a boot script): PF runs under a reference without a
   * token — XNU's DIOCSTART counts it only when it starts PF or every reference has a token
   */
  pfctlEnable(): void {
    if (!this.pf.enabled || this.pf.plainRefs === 0) this.pf.plainRefs++;
    this.pf.enabled = true;
  }

  /**
   * A restart. What the kernel held is gone: PF's rules, anchors and enable references, the
   * utuns and every route added at run time, the dynamic store's keys, launchd's jobs. What is
   * on disk stays: the services' DNS settings, plists, the state directory (real files). Then
   * startup: macOS loads /etc/pf.conf (without enabling PF), and launchd loads every plist in
   * /Library/LaunchDaemons and runs the RunAtLoad ones. launchd orders none of this, so
   * `pfConfLoad` says whether the system's load comes before or after those jobs. Jobs are
   * interpreted, not executed: `/bin/sh -c <script> <arg>` only as the boot kill switch's
   * script (test -f, then pfctl), `/sbin/pfctl …` as a pfctl command line; any other job (the
   * daemon, which a test starts itself) is loaded and not run. A job's stderr is appended to
   * its StandardErrorPath (a real file), as launchd does.
   */
  reboot(o: { pfConfLoad: 'before' | 'after' }): void {
    for (const n of [...this.interfaces.keys()])
      if (n.startsWith('utun')) this.interfaces.delete(n);
    this.routes = this.routes.filter((r) => r.system);
    this.store.clear();
    this.launchd.clear();
    this.pf = {
      enabled: false,
      main: [],
      nat: [],
      anchors: new Map(),
      anchorNat: new Map(),
      anchorTables: new Map(),
      refs: new Map(),
      plainRefs: 0,
      stateFlushes: 0,
      dummynet: [],
      anchorDummynet: new Map(),
    };
    this.pipes.clear();
    this.pfStates.clear();
    const systemLoad = () => {
      this.pf.main = pfMainRules(this.pfConf);
      this.pf.nat = pfMainNat(this.pfConf);
      this.pf.dummynet = pfMainDummynet(this.pfConf);
    };
    if (o.pfConfLoad === 'before') systemLoad();
    for (const [path, text] of [...this.files].sort()) {
      const m = /^\/Library\/LaunchDaemons\/([A-Za-z0-9_.-]+)\.plist$/.exec(path);
      if (!m) continue;
      this.launchd.set(m[1]!, { plist: path });
      if (!/<key>RunAtLoad<\/key>\s*<true\/>/.test(text)) continue;
      const argv = plistProgramArguments(text) ?? [];
      const err = /<key>StandardErrorPath<\/key>\s*<string>([^<]+)<\/string>/.exec(text)?.[1];
      let r: ExecResult | undefined;
      if (
        argv[0] === '/bin/sh' &&
        argv[1] === '-c' &&
        argv[2] === 'test -f "$0" || exit 0; exec /sbin/pfctl -E -f "$0"' &&
        argv.length === 4
      )
        r = existsSync(argv[3]!) ? this.pfctl(['-E', '-f', argv[3]!], undefined, () => {}) : ok();
      else if (argv[0] === '/sbin/pfctl') r = this.pfctl(argv.slice(1), undefined, () => {});
      if (r && err) appendFileSync(err, r.stderr);
    }
    if (o.pfConfLoad === 'after') systemLoad();
  }

  /** someone ran `pfctl -f /etc/pf.conf` (the system's ruleset without our hook) */
  pfctlReload(): void {
    this.pf.main = pfMainRules(this.pfConf);
    this.pf.nat = pfMainNat(this.pfConf);
    this.pf.dummynet = pfMainDummynet(this.pfConf);
  }

  // ---- Exec ------------------------------------------------------------------------------

  async read(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.run('read', cmd, args, opts);
  }

  async mutate(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.mutations++;
    return this.run('mutate', cmd, args, opts);
  }

  /** a write the caller makes itself (the boot kill switch's files): a fault on it fails as a full disk would; triggers fire after it */
  record(display: string): boolean {
    this.log.push({ kind: 'mutate', line: display });
    this.mutations++;
    for (const f of this.faults)
      if (f.match.test(display)) {
        const n = (this.faultCounts.get(f) ?? 0) + 1;
        this.faultCounts.set(f, n);
        if (f.nth === 'every' || n === (f.nth ?? 1))
          throw new Error(`ENOSPC: no space left on device (${display})`);
      }
    for (const t of this.triggers)
      if (t.match.test(display)) {
        const n = (this.triggerCounts.get(t) ?? 0) + 1;
        this.triggerCounts.set(t, n);
        if (n === (t.nth ?? 1)) t.run(this);
      }
    return true;
  }

  private run(kind: 'read' | 'mutate', cmd: string, args: string[], opts: ExecOptions): ExecResult {
    const line = [cmd, ...args].join(' ');
    this.log.push(opts.input === undefined ? { kind, line } : { kind, line, input: opts.input });
    let r: ExecResult | undefined;
    if (kind === 'mutate')
      for (const f of this.faults)
        if (f.match.test(line)) {
          const n = (this.faultCounts.get(f) ?? 0) + 1;
          this.faultCounts.set(f, n);
          if (f.nth === 'every' || n === (f.nth ?? 1)) r = this.injected(cmd, args);
        }
    if (this.root === false || (this.root instanceof RegExp && this.root.test(line)))
      r ??= this.refused(kind, cmd, args);
    r ??= this.dispatch(kind, cmd, args, opts.input);
    if (kind === 'mutate')
      for (const t of this.triggers)
        if (t.match.test(line)) {
          const n = (this.triggerCounts.get(t) ?? 0) + 1;
          this.triggerCounts.set(t, n);
          if (n === (t.nth ?? 1)) t.run(this);
        }
    if (r.code !== 0 && !opts.allowFail) {
      // as ProcessExec classifies a failed command (util/exec.ts)
      const msg = (r.stderr || r.stdout).trim();
      throw new AwgError(
        /Operation not permitted|Permission denied|EPERM|EACCES/.test(msg)
          ? 'permission'
          : 'driver',
        `${line} failed (exit ${r.code}): ${msg}`,
      );
    }
    return r;
  }

  /** what an unprivileged user gets (undefined: allowed) */
  private refused(kind: 'read' | 'mutate', cmd: string, args: string[]): ExecResult | undefined {
    // /dev/pf is root-only (crw------- root): pfctl fails at open(), reads too
    if (cmd === 'pfctl') return fail('pfctl: /dev/pf: Permission denied\n');
    // dnctl.c do_cmd: socket(AF_INET, SOCK_RAW, IPPROTO_RAW) first, reads too; err(EX_UNAVAILABLE)
    if (cmd === 'dnctl') return fail('dnctl: socket: Operation not permitted\n', 69);
    if (kind === 'read') return undefined;
    switch (cmd) {
      case 'route':
        // network_cmds route.c: errx(EX_NOPERM, ...) before any socket is written
        return fail('route: must be root to alter routing table\n', 77);
      case 'ifconfig': {
        const op =
          args[1] === 'mtu'
            ? 'SIOCSIFMTU'
            : args.includes('-alias')
              ? args[1] === 'inet6'
                ? 'SIOCDIFADDR_IN6'
                : 'SIOCDIFADDR'
              : args[1] === 'inet6'
                ? 'SIOCAIFADDR_IN6'
                : args[1] === 'inet'
                  ? 'SIOCAIFADDR'
                  : 'SIOCSIFFLAGS';
        return fail(`ifconfig: ioctl (${op}): Operation not permitted\n`);
      }
      case 'networksetup':
        // assumed (no capture): the authorization failure networksetup reports on stdout
        return { stdout: '** Error: Command requires admin privileges.\n', stderr: '', code: 14 };
      case 'scutil':
        return ok('  set: Permission denied\n');
      case 'tee':
      case 'rm':
        return fail(`${cmd}: ${args.at(-1)}: Permission denied\n`);
      case 'launchctl':
        return fail(
          `${args[0] === 'bootout' ? 'Boot-out' : 'Bootstrap'} failed: 1: Operation not permitted\n`,
          1,
        );
      default:
        return undefined;
    }
  }

  /** a realistic failure of this command, without its effect */
  private injected(cmd: string, args: string[]): ExecResult {
    switch (cmd) {
      case 'route':
        return ok(
          `${args[1]} net ${args.at(-1)}: gateway ${args.at(-1)}: Network is unreachable\n`,
          'route: writing to routing socket: Network is unreachable\n',
        );
      case 'pfctl':
        return fail('pfctl: DIOCBEGIN: Device busy\n');
      case 'networksetup':
        return ok('** Error: The parameters were not valid.\n');
      case 'dnctl':
        return fail('dnctl: setsockopt(IP_DUMMYNET_CONFIGURE): Cannot allocate memory\n');
      default:
        return fail(`${cmd}: injected failure\n`);
    }
  }

  private dispatch(
    kind: 'read' | 'mutate',
    cmd: string,
    args: string[],
    input?: string,
  ): ExecResult {
    const need = (k: 'read' | 'mutate') => {
      if (kind !== k)
        throw new Error(
          `macos-host: ${cmd} ${args.join(' ')} issued as ${kind}, it ${k === 'read' ? 'only reads' : 'changes the system'}`,
        );
    };
    switch (cmd) {
      case 'netstat':
        need('read');
        return this.netstat(args);
      case 'route':
        if (args.length === 3 && args[0] === '-n' && args[1] === 'get')
          return (need('read'), this.routeGet(args[2]!));
        need('mutate');
        return this.route(args);
      case 'sysctl':
        return this.sysctl(args, need);
      case 'ifconfig':
        if (args.length === 0) return (need('read'), ok(this.ifconfigText()));
        need('mutate');
        return this.ifconfig(args);
      case 'pfctl':
        return this.pfctl(args, input, need);
      case 'dnctl':
        return this.dnctl(args, need);
      case 'cat':
        need('read');
        if (args.length === 1 && args[0] === '/etc/pf.conf') return ok(this.pfConf);
        if (args.length === 1 && args[0]!.startsWith('/Library/LaunchDaemons/')) {
          const f = this.files.get(args[0]!);
          return f === undefined ? fail(`cat: ${args[0]}: No such file or directory\n`) : ok(f);
        }
        break;
      case 'tee':
        need('mutate');
        if (
          args.length === 1 &&
          args[0]!.startsWith('/Library/LaunchDaemons/') &&
          input !== undefined
        ) {
          this.files.set(args[0]!, input);
          return ok(input);
        }
        break;
      case 'rm':
        need('mutate');
        if (
          args.length === 2 &&
          args[0] === '-f' &&
          args[1]!.startsWith('/Library/LaunchDaemons/')
        ) {
          this.files.delete(args[1]!);
          return ok();
        }
        break;
      case 'launchctl':
        return this.launchctl(args, need);
      case 'networksetup':
        return this.networksetup(args, need);
      case 'scutil':
        if (args.length === 0 && input !== undefined) return this.scutil(input, kind);
        if (args.length === 1 && args[0] === '--dns') return (need('read'), ok(this.scutilDns()));
        break;
      case 'dscacheutil':
        need('mutate');
        if (args.join(' ') === '-flushcache') return (this.dnsFlushes++, ok());
        break;
      case 'killall':
        need('mutate');
        if (args.join(' ') === '-HUP mDNSResponder') return ok();
        break;
    }
    throw new Error(`macos-host: unknown command: ${cmd} ${args.join(' ')}`);
  }

  // ---- netstat / route -------------------------------------------------------------------

  private netstat(args: string[]): ExecResult {
    // 0: both families
    const only = new Map<string, 0 | 4 | 6>([
      ['-rn', 0],
      ['-rn -f inet', 4],
      ['-rn -f inet6', 6],
    ]).get(args.join(' '));
    if (only === undefined) throw new Error(`macos-host: netstat ${args.join(' ')}`);
    const row = (r: MRoute) =>
      `${netstatDst(r).padEnd(18)} ${r.gateway.padEnd(18)} ${r.flags.padEnd(12)} ${r.netif.padStart(5)}${r.expire === undefined ? '' : ` ${r.expire.padStart(6)}`}`;
    // the radix tree's walk: by destination, the more specific mask first
    const key = (r: MRoute) => {
      const [a, l] = r.dst.split('/') as [string, string];
      return [...ipaddr.parse(a).toByteArray(), 255 - Number(l)];
    };
    const order = (a: MRoute, b: MRoute) => {
      const ka = key(a);
      const kb = key(b);
      for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
      return 0;
    };
    const byFamily = (f: 4 | 6) => this.routes.filter((r) => r.family === f).sort(order);
    const v4 = byFamily(4).map(row);
    const v6 = byFamily(6).map(
      (r) =>
        `${netstatDst(r).padEnd(39)} ${r.gateway.padEnd(39)} ${r.flags.padEnd(12)} ${r.netif.padStart(5)}`,
    );
    const sec4 = [
      'Internet:',
      'Destination        Gateway            Flags        Netif Expire',
      ...v4,
      '',
    ];
    const sec6 = [
      'Internet6:',
      'Destination                             Gateway                                 Flags         Netif Expire',
      ...v6,
      '',
    ];
    return ok(
      ['Routing tables', '', ...(only === 6 ? [] : sec4), ...(only === 4 ? [] : sec6)].join('\n'),
    );
  }

  /**
   * The route a socket's packet to `dst` takes: unbound (unscoped), or bound to `ifscope`
   * (IP_BOUND_IF), after xnu bsd/net/route.c rt_lookup_common: the unscoped longest match is
   * kept for a bound socket only when it leaves by that interface; otherwise the longest match
   * among the routes scoped to it; the unscoped match still wins over a scoped default, and an
   * unscoped host route over a scoped net route; last, the unscoped default if it leaves by
   * that interface. Undefined: no route (the connect fails, EHOSTUNREACH). Not modelled: the
   * primary interface's implicit scope of unbound lookups, loopback's exceptions, link-layer
   * (ARP/ND, flag L) entries (as `route get` here).
   */
  lookup(dst: string, ifscope?: string): MRoute | undefined {
    const family = ipaddr.parse(dst).kind() === 'ipv4' ? 4 : 6;
    const len = (r: MRoute) => Number(r.dst.split('/')[1]);
    const longest = (rs: MRoute[]) => rs.sort((a, b) => len(b) - len(a))[0];
    const matching = this.routes.filter(
      (r) => r.family === family && !r.flags.includes('L') && inPrefix(dst, r.dst),
    );
    const unscoped = longest(matching.filter((r) => !r.flags.includes('I')));
    if (!ifscope) return unscoped;
    const rn0 = unscoped && unscoped.netif === ifscope ? unscoped : undefined;
    const scoped = longest(matching.filter((r) => r.flags.includes('I') && r.netif === ifscope));
    const isDefault = (r: MRoute) => len(r) === 0;
    const isHost = (r: MRoute) => len(r) === (family === 4 ? 32 : 128);
    if (
      scoped &&
      !(rn0 && ((isDefault(scoped) && !isDefault(rn0)) || (!isHost(scoped) && isHost(rn0))))
    )
      return scoped;
    if (rn0) return rn0;
    const def = this.routes.find(
      (r) => r.family === family && isDefault(r) && !r.flags.includes('I'),
    );
    return def && def.netif === ifscope ? def : undefined;
  }

  /** `route -n get <dst>`: the longest matching unscoped route, in the layout of the route-get captures */
  private routeGet(dstArg: string): ExecResult {
    const addr = dstArg === 'default' ? '0.0.0.0' : dstArg;
    if (!ipaddr.isValid(addr)) return ok('', `route: bad address: ${dstArg}\n`);
    const family = ipaddr.parse(addr).kind() === 'ipv4' ? 4 : 6;
    const best = this.lookup(addr);
    if (!best) return ok('', 'route: writing to routing socket: not in table\n');
    const [net, len] = best.dst.split('/') as [string, string];
    const mask =
      family === 4
        ? ipaddr.IPv4.subnetMaskFromPrefixLength(Number(len)).toString()
        : ipaddr.IPv6.subnetMaskFromPrefixLength(Number(len)).toString();
    const names = [...best.flags]
      .map(
        (c) =>
          ({
            U: 'UP',
            G: 'GATEWAY',
            H: 'HOST',
            S: 'STATIC',
            c: 'PRCLONING',
            g: 'GLOBAL',
            C: 'CLONING',
            B: 'BLACKHOLE',
            R: 'REJECT',
            m: 'MULTICAST',
          })[c],
      )
      .filter(Boolean);
    names.splice(names.includes('GATEWAY') ? 2 : 1, 0, 'DONE');
    return ok(
      [
        `   route to: ${dstArg}`,
        `destination: ${net === '0.0.0.0' || net === '::' ? 'default' : net}`,
        ...(best.flags.includes('H') ? [] : [`       mask: ${len === '0' ? 'default' : mask}`]),
        ...(best.gateway.startsWith('link#') ? [] : [`    gateway: ${best.gateway}`]),
        `  interface: ${best.netif}`,
        `      flags: <${names.join(',')}>`,
        ' recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire',
        `       0         0         0         0         0         0      ${String(this.interfaces.get(best.netif)?.mtu ?? 1500).padStart(4)}         0`,
        '',
      ].join('\n'),
    );
  }

  private route(args: string[]): ExecResult {
    const a = [...args];
    if (a.shift() !== '-n') throw new Error(`macos-host: route without -n: ${args.join(' ')}`);
    const op = a.shift();
    const fam = a.shift();
    const kindArg = a.shift();
    const dstArg = a.shift();
    if (
      !op ||
      !['add', 'delete', 'change'].includes(op) ||
      (fam !== '-inet' && fam !== '-inet6') ||
      (kindArg !== '-net' && kindArg !== '-host') ||
      !dstArg
    )
      throw new Error(`macos-host: route ${args.join(' ')}`);
    const family = fam === '-inet6' ? 6 : 4;
    const dst = canon(kindArg === '-host' ? `${dstArg}/${family === 4 ? 32 : 128}` : dstArg);
    // `-ifscope <if>` (route.c K_IFSCOPE: if_nametoindex, else errx(1, "bad interface name"))
    let scope: string | undefined;
    if (a.at(-2) === '-ifscope') {
      scope = a.pop()!;
      a.pop();
      if (!this.interfaces.has(scope)) return fail('route: bad interface name\n');
    }
    let gateway: string;
    let netif: string;
    let flags: string;
    if (a[0] === '-interface' && a.length === 2) {
      const i = this.interfaces.get(a[1]!);
      if (!i) return ok('', `route: bad address: ${a[1]}\n`);
      gateway = a[1]!;
      netif = a[1]!;
      flags = kindArg === '-host' ? 'UHS' : 'USc';
    } else if (a.length === 2 && (a[1] === '-blackhole' || a[1] === '-reject')) {
      gateway = a[0]!;
      netif = 'lo0';
      flags = a[1] === '-blackhole' ? 'UGSB' : 'UGSR';
    } else if (a.length === 1 && ipaddr.isValid(a[0]!.replace(/%\w+$/, ''))) {
      gateway = a[0]!;
      // a scoped link-local gateway (fe80::1%en0) names its interface; others go via a connected route
      const zone = /%(\w+)$/.exec(gateway)?.[1];
      const via =
        zone && this.interfaces.has(zone)
          ? { netif: zone }
          : this.routes.find(
              (r) =>
                r.family === family && r.gateway.startsWith('link#') && inPrefix(gateway, r.dst),
            );
      if (!via)
        return ok(
          `${op} ${kindArg.slice(1)} ${dstArg}: gateway ${gateway}: Network is unreachable\n`,
          'route: writing to routing socket: Network is unreachable\n',
        );
      netif = via.netif;
      flags = kindArg === '-host' ? 'UGHS' : 'UGSc';
    } else throw new Error(`macos-host: route ${args.join(' ')}`);
    if (scope) flags += 'I';
    const what = `${op} ${kindArg.slice(1)} ${dstArg}: gateway ${gateway}`;
    // the radix key holds the scope: an unscoped and a scoped route of one prefix are two entries
    const inScope = (r: MRoute) =>
      scope ? r.flags.includes('I') && r.netif === scope : !r.flags.includes('I');
    const idx = this.routes.findIndex((r) => r.family === family && r.dst === dst && inScope(r));
    switch (op) {
      case 'add':
        if (idx >= 0)
          return ok(`${what}: File exists\n`, 'route: writing to routing socket: File exists\n');
        this.routes.push({ family, dst, gateway, flags, netif });
        return ok(`${what}\n`);
      case 'change':
        if (idx < 0)
          return ok(`${what}: not in table\n`, 'route: writing to routing socket: not in table\n');
        this.routes[idx] = { family, dst, gateway, flags, netif };
        return ok(`${what}\n`);
      default: {
        // a delete names its gateway: another owner's same-prefix route is not hit
        const j = this.routes.findIndex(
          (r) => r.family === family && r.dst === dst && r.gateway === gateway && inScope(r),
        );
        if (j < 0)
          return ok(`${what}: not in table\n`, 'route: writing to routing socket: not in table\n');
        this.routes.splice(j, 1);
        return ok(`${what}\n`);
      }
    }
  }

  // ---- ifconfig --------------------------------------------------------------------------

  /** `ifconfig` in the layout of ifconfig/ifconfig-10.14.6-jc.txt and the utun captures */
  private ifconfigText(): string {
    const hex = (len: number) =>
      `0x${(len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0).toString(16).padStart(8, '0')}`;
    const FLAG_BITS: [number, string][] = [
      [0x1, 'UP'],
      [0x2, 'BROADCAST'],
      [0x8, 'LOOPBACK'],
      [0x10, 'POINTOPOINT'],
      [0x20, 'SMART'],
      [0x40, 'RUNNING'],
      [0x800, 'SIMPLEX'],
      [0x8000, 'MULTICAST'],
    ];
    const out: string[] = [];
    for (const i of [...this.interfaces.values()].sort((a, b) => a.index - b.index)) {
      const p2p = i.name.startsWith('utun');
      const lo = i.name === 'lo0';
      const bits = (i.up ? 0x1 : 0) | 0x40 | 0x8000 | (lo ? 0x8 : p2p ? 0x10 : 0x2 | 0x20 | 0x800);
      out.push(
        `${i.name}: flags=${bits.toString(16)}<${FLAG_BITS.filter(([b]) => bits & b)
          .map(([, n]) => n)
          .join(',')}> mtu ${i.mtu}`,
      );
      out.push(
        lo
          ? '\toptions=1203<RXCSUM,TXCSUM,TXSTATUS,SW_TIMESTAMP>'
          : p2p
            ? '\toptions=6460<TSO4,TSO6,CHANNEL_IO,PARTIAL_CSUM,ZEROINVERT_CSUM>'
            : '\toptions=400<CHANNEL_IO>',
      );
      if (!lo && !p2p) out.push(`\tether f0:18:98:03:d9:${i.index.toString(16).padStart(2, '0')} `);
      const scoped = i.inet6.filter((a) => a.address.startsWith('fe80'));
      const global = i.inet6.filter((a) => !a.address.startsWith('fe80'));
      for (const a of lo ? [] : scoped)
        out.push(
          `\tinet6 ${a.address}%${i.name} prefixlen ${a.prefixlen} scopeid 0x${i.index.toString(16)} `,
        );
      for (const a of i.inet) {
        const bcast = ipaddr.IPv4.broadcastAddressFromCIDR(
          `${a.address}/${a.prefixlen}`,
        ).toString();
        out.push(
          p2p
            ? `\tinet ${a.address} --> ${a.address} netmask ${hex(a.prefixlen)} `
            : lo
              ? `\tinet ${a.address} netmask ${hex(a.prefixlen)} `
              : `\tinet ${a.address} netmask ${hex(a.prefixlen)} broadcast ${bcast}`,
        );
      }
      for (const a of global)
        out.push(
          `\tinet6 ${a.address} prefixlen ${a.prefixlen} ${lo || p2p ? '' : 'autoconf secured '}`,
        );
      for (const a of lo ? scoped : [])
        out.push(
          `\tinet6 ${a.address}%${i.name} prefixlen ${a.prefixlen} scopeid 0x${i.index.toString(16)} `,
        );
      out.push('\tnd6 options=201<PERFORMNUD,DAD>');
      if (!lo && !p2p) out.push('\tmedia: autoselect', `\tstatus: ${i.up ? 'active' : 'inactive'}`);
    }
    return `${out.join('\n')}\n`;
  }

  private ifconfig(args: string[]): ExecResult {
    const [name, ...rest] = args;
    const i = name ? this.interfaces.get(name) : undefined;
    if (!i) return fail(`ifconfig: interface ${name} does not exist\n`);
    const s = rest.join(' ');
    let m: RegExpExecArray | null;
    if ((m = /^mtu (\d+)$/.exec(s))) i.mtu = Number(m[1]);
    else if (s === 'up' || s === 'down') i.up = s === 'up';
    else if ((m = /^inet (\S+) (\S+) netmask 0x([0-9a-f]{8}) alias$/.exec(s)) && m[1] === m[2]) {
      const len = Number.parseInt(m[3]!, 16).toString(2).replace(/0+$/, '').length;
      if (!i.inet.some((a) => a.address === m![1])) i.inet.push({ address: m[1]!, prefixlen: len });
    } else if ((m = /^inet6 (\S+) prefixlen (\d+) alias$/.exec(s))) {
      if (!i.inet6.some((a) => a.address === m![1]))
        i.inet6.push({ address: m[1]!, prefixlen: Number(m[2]) });
    } else if ((m = /^inet (\S+) -alias$/.exec(s))) {
      const n = i.inet.length;
      i.inet = i.inet.filter((a) => a.address !== m![1]);
      if (i.inet.length === n)
        return fail(`ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n`);
    } else if ((m = /^inet6 (\S+) -alias$/.exec(s))) {
      const n = i.inet6.length;
      i.inet6 = i.inet6.filter((a) => a.address !== m![1]);
      if (i.inet6.length === n)
        return fail(`ifconfig: ioctl (SIOCDIFADDR_IN6): Can't assign requested address\n`);
    } else if (s === 'destroy' && name!.startsWith('utun'))
      return fail('ifconfig: SIOCIFDESTROY: Invalid argument\n');
    else throw new Error(`macos-host: ifconfig ${args.join(' ')}`);
    return ok();
  }

  // ---- pfctl -----------------------------------------------------------------------------

  private pfctl(
    args: string[],
    input: string | undefined,
    need: (k: 'read' | 'mutate') => void,
  ): ExecResult {
    const s = args.join(' ');
    const altq = 'No ALTQ support in kernel\nALTQ related functions disabled\n';
    let m: RegExpExecArray | null;
    if (s === '-sr') return (need('read'), ok(this.pf.main.map((r) => `${r}\n`).join(''), altq));
    if (s === '-sn') return (need('read'), ok(this.pf.nat.map((r) => `${r}\n`).join(''), altq));
    if (s === '-s dummynet')
      return (need('read'), ok(this.pf.dummynet.map((r) => `${r}\n`).join(''), altq));
    if (s === '-s info') {
      need('read');
      const status = this.pf.enabled
        ? 'Status: Enabled for 0 days 00:00:00           Debug: Urgent'
        : 'Status: Disabled                              Debug: Urgent';
      return ok(
        `${status}\n\nState Table                          Total             Rate\n  current entries                        0               \n`,
      );
    }
    if (s === '-s References') {
      need('read');
      const rows = [...this.pf.refs]
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
        [...this.pf.anchors.keys()]
          .filter((a) => a.startsWith(`${m![1]}/`))
          .map((a) => `  ${a}\n`)
          .join(''),
      );
    }
    if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -sr$/.exec(s))) {
      need('read');
      return ok((this.pf.anchors.get(m[1]!) ?? []).map((r) => `${r}\n`).join(''), altq);
    }
    if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -sn$/.exec(s))) {
      need('read');
      return ok((this.pf.anchorNat.get(m[1]!) ?? []).map((r) => `${r}\n`).join(''), altq);
    }
    if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -s dummynet$/.exec(s))) {
      need('read');
      return ok((this.pf.anchorDummynet.get(m[1]!) ?? []).map((r) => `${r}\n`).join(''), altq);
    }
    need('mutate');
    if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -f -$/.exec(s))) {
      const r = pfAnchorRules(input ?? '');
      if (r.error)
        return fail(`${r.error}\npfctl: Syntax error in config file: pf rules not loaded\n`);
      // one transaction: the anchor's filter, translation and dummynet rules and its tables are replaced
      this.pf.anchors.set(m[1]!, r.rules);
      this.pf.anchorNat.set(m[1]!, r.nat);
      this.pf.anchorDummynet.set(m[1]!, r.dummynet);
      this.pf.anchorTables.set(m[1]!, r.tables);
      return ok('', altq);
    }
    if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -F dummynet$/.exec(s))) {
      this.pf.anchorDummynet.set(m[1]!, []);
      return ok('', `${altq}dummynet cleared\n`);
    }
    if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -F rules$/.exec(s))) {
      this.pf.anchors.set(m[1]!, []);
      return ok('', `${altq}rules cleared\n`);
    }
    if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -F nat$/.exec(s))) {
      this.pf.anchorNat.set(m[1]!, []);
      return ok('', `${altq}nat cleared\n`);
    }
    if ((m = /^-a (com\.awg\/[A-Za-z0-9_.-]+) -F Tables$/.exec(s))) {
      const n = this.pf.anchorTables.get(m[1]!)?.size ?? 0;
      this.pf.anchorTables.set(m[1]!, new Map());
      return ok('', `${altq}${n} tables deleted.\n`);
    }
    if (s === '-f -' || s === '-f /etc/pf.conf') {
      const text = s === '-f -' ? (input ?? '') : this.pfConf;
      this.pf.main = pfMainRules(text);
      this.pf.nat = pfMainNat(text);
      this.pf.dummynet = pfMainDummynet(text);
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
      this.pf.main = pfMainRules(text);
      this.pf.nat = pfMainNat(text);
      this.pf.dummynet = pfMainDummynet(text);
      for (const l of text.split('\n')) {
        const a = /^load anchor "(com\.awg\/[A-Za-z0-9_.-]+)" from "([^"]+)"$/.exec(l.trim());
        if (!a) continue;
        const r = pfAnchorRules(readFileSync(a[2]!, 'utf8'));
        if (r.error)
          return fail(`${r.error}\npfctl: Syntax error in config file: pf rules not loaded\n`);
        this.pf.anchors.set(a[1]!, r.rules);
        this.pf.anchorNat.set(a[1]!, r.nat);
        this.pf.anchorDummynet.set(a[1]!, r.dummynet);
        this.pf.anchorTables.set(a[1]!, r.tables);
      }
      const token = String(this.nextToken++);
      this.pf.refs.set(token, this.nextPid++);
      this.pf.enabled = true;
      return ok(
        '',
        `pfctl: Use of -f option, could result in flushing of rules\npresent in the main ruleset added by the system at startup.\nSee /etc/pf.conf for further details.\n\n${altq}pf enabled\nToken : ${token}\n`,
      );
    }
    if (s === '-E') {
      const token = String(this.nextToken++);
      this.pf.refs.set(token, this.nextPid++);
      this.pf.enabled = true;
      return ok('', `${altq}pf enabled\nToken : ${token}\n`);
    }
    if ((m = /^-X (\d+)$/.exec(s))) {
      if (!this.pf.enabled) return fail('pfctl: pf not enabled\n');
      if (!this.pf.refs.delete(m[1]!)) return fail('pfctl: pf: token invalid\n');
      const remaining = this.pf.refs.size + this.pf.plainRefs;
      if (remaining === 0) {
        this.pf.enabled = false;
        return ok('', 'pf disabled\n');
      }
      return ok(
        '',
        `disable request successful. ${remaining} more pf enable reference(s) remaining, pf still enabled.\n`,
      );
    }
    if (s === '-F states') {
      this.pf.stateFlushes++;
      this.pfStates.clear();
      return ok('', `${altq}0 states cleared\n`);
    }
    throw new Error(`macos-host: pfctl ${s}`);
  }

  // ---- dnctl ----------------------------------------------------------------------------

  /**
   * `dnctl list`, `dnctl pipe N config …`, `dnctl pipe delete N`, as dnctl.c parses them and
   * xnu's config_pipe/delete_pipe act: a config creates the pipe or reconfigures it, every
   * parameter not given back to its default; a delete of a missing pipe is EINVAL.
   */
  private dnctl(args: string[], need: (k: 'read' | 'mutate') => void): ExecResult {
    const s = args.join(' ');
    if (s === 'list' || s === 'show') {
      need('read');
      return ok(
        [...this.pipes]
          .sort(([a], [b]) => a - b)
          .map(([n, p]) => dnctlPipeText(n, p))
          .join(''),
      );
    }
    need('mutate');
    let m: RegExpExecArray | null;
    if ((m = /^pipe delete (\d+)$/.exec(s))) {
      if (!this.pipes.delete(Number(m[1])))
        return fail(`dnctl: rule ${m[1]}: setsockopt(IP_DUMMYNET_DEL): Invalid argument\n`);
      return ok();
    }
    if ((m = /^pipe (\d+) config(.*)$/.exec(s))) {
      const nr = Number(m[1]);
      if (nr === 0) return fail('dnctl: pipe_nr must be > 0\n', 65);
      const p: MPipe = { bandwidth: 0, delayMs: 0, queue: { slots: 50 }, plr: 0 };
      const opts = m[2]!.trim().split(/\s+/).filter(Boolean);
      for (let i = 0; i < opts.length; i += 2) {
        const [k, v] = [opts[i]!, opts[i + 1]];
        if (v === undefined) return fail(`dnctl: ${k} needs argument\n`, 64);
        let q: RegExpExecArray | null;
        if (k === 'bw' && (q = /^(\d+)(K|k|M)?(bit\/s|Byte\/s|B\/s)?$/.exec(v))) {
          const mult = q[2] ? (q[2] === 'M' ? 1e6 : 1e3) : 1;
          const bits = Number(q[1]) * mult * (q[3] && q[3] !== 'bit/s' ? 8 : 1);
          if (bits > 2_147_483_647) return fail('dnctl: bandwidth too large\n', 65);
          p.bandwidth = bits;
        } else if (k === 'queue' && (q = /^(\d+)(Kbytes|B|bytes)?$/.exec(v))) {
          const n = Number(q[1]);
          if (q[2] === 'Kbytes') p.queue = { bytes: n * 1024 };
          else if (q[2]) p.queue = { bytes: n };
          else p.queue = { slots: n };
          if ('bytes' in p.queue && p.queue.bytes > 1024 * 1024)
            return fail('dnctl: queue size must be < 1MB\n', 65);
          if ('slots' in p.queue && p.queue.slots > 100)
            return fail('dnctl: 2 <= queue size <= 100\n', 65);
        } else if (k === 'delay' && /^\d+$/.test(v)) p.delayMs = Number(v);
        else if (k === 'plr' && /^\d*\.?\d+$/.test(v)) p.plr = Math.min(1, Number(v));
        else return fail(`dnctl: unrecognised option \`\`${k}''\n`, 65);
      }
      this.pipes.set(nr, p);
      return ok();
    }
    throw new Error(`macos-host: dnctl ${s}`);
  }

  /** `sysctl [-n] name`, `sysctl -w name=value` (sysctl-forwarding-read-and-write.txt) */
  private sysctl(args: string[], need: (k: 'read' | 'mutate') => void): ExecResult {
    const unknown = (n: string) => fail(`sysctl: unknown oid '${n}'\n`);
    if (args[0] === '-w' && args.length === 2) {
      need('mutate');
      const [n, v] = args[1]!.split('=') as [string, string | undefined];
      const old = this.sysctls.get(n);
      if (old === undefined || v === undefined) return unknown(n);
      this.sysctls.set(n, v);
      return ok(`${n}: ${old} -> ${v}\n`);
    }
    const quiet = args[0] === '-n';
    const names = quiet ? args.slice(1) : args;
    if (!names.length || names.some((n) => n.startsWith('-')))
      throw new Error(`macos-host: sysctl ${args.join(' ')}`);
    need('read');
    const out: string[] = [];
    for (const n of names) {
      const v = this.sysctls.get(n);
      if (v === undefined) return unknown(n);
      out.push(quiet ? v : `${n}: ${v}`);
    }
    return ok(`${out.join('\n')}\n`);
  }

  // ---- launchd ---------------------------------------------------------------------------

  /** the job died (crash, kill -9): launchd keeps it loaded, not running */
  crashJob(label: string, status = 9): void {
    const j = this.launchd.get(label);
    if (j) {
      delete j.pid;
      j.lastExit = status;
    }
  }

  private launchctl(args: string[], need: (k: 'read' | 'mutate') => void): ExecResult {
    const s = args.join(' ');
    let m: RegExpExecArray | null;
    if ((m = /^print system\/([A-Za-z0-9_.-]+)$/.exec(s))) {
      need('read');
      const j = this.launchd.get(m[1]!);
      // launchctl-print-not-found-stderr-macos27.txt, system domain
      if (!j)
        return fail(`Bad request.\nCould not find service "${m[1]}" in domain for system\n`, 113);
      // the layout of launchctl-print-gui-running-keepalive-macos27.txt
      return ok(
        [
          `system/${m[1]} = {`,
          '\tactive count = 1',
          `\tpath = ${j.plist}`,
          '\ttype = LaunchDaemon',
          `\tstate = ${j.pid ? 'running' : 'not running'}`,
          '',
          '\tprogram = /usr/local/bin/node',
          '\targuments = {',
          '\t\t/usr/local/bin/node',
          '\t}',
          '',
          ...(j.pid ? [`\tpid = ${j.pid}`] : []),
          ...(j.lastExit !== undefined
            ? [`\tlast exit code = ${j.lastExit}`]
            : ['\tlast exit code = (never exited)']),
          '\tproperties = keepalive | runatload',
          '}',
          '',
        ].join('\n'),
      );
    }
    if (s === 'print-disabled system') return (need('read'), ok('\tdisabled services = {\n\t}\n'));
    need('mutate');
    if ((m = /^bootstrap system (\/Library\/LaunchDaemons\/([A-Za-z0-9_.-]+)\.plist)$/.exec(s))) {
      if (!this.files.has(m[1]!))
        return fail('Bootstrap failed: 2: No such file or directory\n', 5);
      if (this.launchd.has(m[2]!)) return fail('Bootstrap failed: 5: Input/output error\n', 5);
      this.launchd.set(m[2]!, { plist: m[1]!, pid: this.nextPid++ });
      return ok();
    }
    if ((m = /^bootout system\/([A-Za-z0-9_.-]+)$/.exec(s))) {
      if (!this.launchd.delete(m[1]!)) return fail('Boot-out failed: 3: No such process\n', 3);
      return ok();
    }
    throw new Error(`macos-host: launchctl ${s}`);
  }

  // ---- networksetup / scutil -------------------------------------------------------------

  private networksetup(args: string[], need: (k: 'read' | 'mutate') => void): ExecResult {
    const [verb, svcName, ...vals] = args;
    if (verb === '-listallnetworkservices') {
      need('read');
      return ok(
        [
          'An asterisk (*) denotes that a network service is disabled.',
          ...this.services.map((s) => `${s.enabled ? '' : '*'}${s.name}`),
          '',
        ].join('\n'),
      );
    }
    if (verb === '-listnetworkserviceorder') {
      need('read');
      // networksetup-listnetworkserviceorder-15.7.1.txt; a disabled service is numbered (*)
      return ok(
        [
          'An asterisk (*) denotes that a network service is disabled.',
          ...this.services.map(
            (s, i) =>
              `(${s.enabled ? i + 1 : '*'}) ${s.name}\n(Hardware Port: ${s.name}, Device: ${s.device})\n`,
          ),
          '',
        ].join('\n'),
      );
    }
    const svc = this.services.find((s) => s.name === svcName);
    // networksetup reports errors on stdout, exit 4 (dns/networksetup-error-unrecognized-service-crc.txt)
    if (!svc)
      return {
        stdout: `${svcName} is not a recognized network service.\n** Error: The parameters were not valid.\n`,
        stderr: '',
        code: 4,
      };
    switch (verb) {
      case '-getdnsservers':
        need('read');
        return ok(
          svc.dns.length
            ? `${svc.dns.join('\n')}\n`
            : `There aren't any DNS Servers set on ${svc.name}. \n`,
        );
      case '-getsearchdomains':
        need('read');
        return ok(
          svc.search.length
            ? `${svc.search.join('\n')}\n`
            : `There aren't any Search Domains set on ${svc.name}. \n`,
        );
      case '-setdnsservers':
        need('mutate');
        svc.dns = vals.length === 1 && vals[0] === 'Empty' ? [] : vals;
        return ok();
      case '-setsearchdomains':
        need('mutate');
        svc.search = vals.length === 1 && vals[0] === 'Empty' ? [] : vals;
        return ok();
    }
    throw new Error(`macos-host: networksetup ${args.join(' ')}`);
  }

  /**
   * `scutil --dns` as configd would build it (layout of the 10.15.3 split-tunnel capture):
   * supplemental resolvers from the dynamic store first, then the primary service's (the
   * first enabled service whose device is up with an IPv4 address) manual DNS, else what DHCP
   * gave it, then the mDNS resolvers; the scoped section repeats the primary's.
   */
  private scutilDns(): string {
    const out: string[] = ['DNS configuration', ''];
    let n = 0;
    const block = (lines: string[]) =>
      out.push(`resolver #${++n}`, ...lines.map((l) => `  ${l}`), '');
    for (const [, v] of [...this.store].sort())
      for (const d of v.SupplementalMatchDomains)
        block([
          `domain   : ${d}`,
          ...v.ServerAddresses.map((a, i) => `nameserver[${i}] : ${a}`),
          'flags    : Supplemental, Request A records',
          'reach    : 0x00000002 (Reachable)',
          `order    : ${101400 + n * 200}`,
        ]);
    const primary = this.services.find(
      (s) =>
        s.enabled &&
        this.interfaces.get(s.device)?.up &&
        this.interfaces.get(s.device)!.inet.length,
    );
    const iface = primary && this.interfaces.get(primary.device)!;
    const eff =
      primary &&
      (primary.dns.length
        ? { dns: primary.dns, search: primary.search }
        : (primary.dhcp ?? { dns: [], search: [] }));
    const main =
      eff && iface && eff.dns.length
        ? [
            ...eff.search.map((d, i) => `search domain[${i}] : ${d}`),
            ...eff.dns.map((a, i) => `nameserver[${i}] : ${a}`),
            `if_index : ${iface.index} (${iface.name})`,
            'flags    : Request A records',
            'reach    : 0x00020002 (Reachable,Directly Reachable Address)',
          ]
        : undefined;
    if (main) block([...main, 'order    : 200000']);
    for (const [d, order] of [
      ['local', 300000],
      ['254.169.in-addr.arpa', 300200],
      ['8.e.f.ip6.arpa', 300400],
    ] as const)
      block([
        `domain   : ${d}`,
        'options  : mdns',
        'timeout  : 5',
        'flags    : Request A records',
        'reach    : 0x00000000 (Not Reachable)',
        `order    : ${order}`,
      ]);
    out.push('DNS configuration (for scoped queries)', '');
    n = 0;
    if (main) block([...main.slice(0, -2), 'flags    : Scoped, Request A records', main.at(-1)!]);
    return `${out.join('\n')}\n`;
  }

  private scutil(script: string, kind: 'read' | 'mutate'): ExecResult {
    let d:
      | { ServerAddresses: string[]; SupplementalMatchDomains: string[]; SearchDomains: string[] }
      | undefined;
    let out = '';
    for (const raw of script.split('\n')) {
      const l = raw.trim();
      let m: RegExpExecArray | null;
      if (!l || l === 'quit') continue;
      if (l === 'd.init')
        d = { ServerAddresses: [], SupplementalMatchDomains: [], SearchDomains: [] };
      else if (
        (m = /^d\.add (ServerAddresses|SupplementalMatchDomains|SearchDomains) \* (.+)$/.exec(l)) &&
        d
      )
        d[m[1] as 'ServerAddresses'] = m[2]!.split(' ');
      else if (
        (m = /^set (State:\/Network\/Service\/[^ ]+\/DNS)$/.exec(l)) &&
        d &&
        kind === 'mutate'
      )
        this.store.set(m[1]!, d);
      else if ((m = /^remove (State:\/Network\/Service\/[^ ]+\/DNS)$/.exec(l)) && kind === 'mutate')
        this.store.delete(m[1]!);
      else if ((m = /^show (State:\/Network\/Service\/[^ ]+\/DNS)$/.exec(l))) {
        const v = this.store.get(m[1]!);
        if (!v) out += '  No such key\n';
        else {
          out += '<dictionary> {\n';
          for (const k of [
            'SearchDomains',
            'ServerAddresses',
            'SupplementalMatchDomains',
          ] as const) {
            if (!v[k].length) continue;
            out += `  ${k} : <array> {\n${v[k].map((x, i) => `    ${i} : ${x}\n`).join('')}  }\n`;
          }
          out += '}\n';
        }
      } else throw new Error(`macos-host: scutil (${kind}) line the model does not know: ${l}`);
    }
    return ok(out);
  }
}
