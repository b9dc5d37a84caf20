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
 *
 * Layout: this file is the host (its state, hooks, the Exec and the dispatch of a command line
 * to its tool); the state's types are in state.ts; each tool's handler, a function of the host,
 * is in its own file: routes.ts (netstat, route), ifconfig.ts, sysctl.ts, pf.ts (pfctl and
 * pf.conf), dnctl.ts, launchd.ts (launchctl), dns.ts (networksetup, scutil); failures.ts holds
 * what the tools answer a user or an injected fault; laptop.ts the captures and the laptop.
 */
import { appendFileSync, existsSync } from 'node:fs';
import type { Exec, ExecOptions, ExecResult } from '../../../src/util/exec.js';
import { AwgError } from '../../../src/errors.js';
import { plistProgramArguments } from '../../../src/platform/darwin/plist.js';
import { networksetup, scutil, scutilDns } from './dns.js';
import { dnctl } from './dnctl.js';
import { injected, refused } from './failures.js';
import { ifconfig, ifconfigText } from './ifconfig.js';
import { addIpv6Uplink, furnishLaptop } from './laptop.js';
import { launchctl } from './launchd.js';
import { DEFAULT_PF_CONF, pfctl, pfMainDummynet, pfMainNat, pfMainRules } from './pf.js';
import { PfStateTable } from './pf-states.js';
import { lookupRoute, netstat, route, routeGet } from './routes.js';
import {
  fail,
  ok,
  type Fault,
  type MInterface,
  type MPf,
  type MPipe,
  type MRoute,
  type MService,
  type Trigger,
} from './state.js';
import { sysctl } from './sysctl.js';

export { capture, LAPTOP_NETSTAT } from './laptop.js';
export { DEFAULT_PF_CONF } from './pf.js';
export type { Fault, MInterface, MPf, MPipe, MRoute, MService, Trigger } from './state.js';

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
  /** the next `pfctl -E` token, and the next pid of a process the model starts (pf.ts, launchd.ts) */
  nextToken = 15053025338191571182n;
  nextPid = 4000;
  dnsFlushes = 0;

  /**
   * The laptop's uplink given IPv6: a global address on en0, the v6 default via the router's
   * link-local address and the LAN's /64 on-link. Returns the host.
   */
  withIpv6Uplink(): this {
    addIpv6Uplink(this);
    return this;
  }

  /** A MacBook on Wi-Fi, from the captures (laptop.ts) */
  static laptop(): MacHost {
    const h = new MacHost();
    furnishLaptop(h);
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
        r = existsSync(argv[3]!) ? pfctl(this, ['-E', '-f', argv[3]!], undefined, () => {}) : ok();
      else if (argv[0] === '/sbin/pfctl') r = pfctl(this, argv.slice(1), undefined, () => {});
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

  /** the job died (crash, kill -9): launchd keeps it loaded, not running */
  crashJob(label: string, status = 9): void {
    const j = this.launchd.get(label);
    if (j) {
      delete j.pid;
      j.lastExit = status;
    }
  }

  /** the route a socket's packet to `dst` takes, unbound or bound to `ifscope` (routes.ts) */
  lookup(dst: string, ifscope?: string): MRoute | undefined {
    return lookupRoute(this, dst, ifscope);
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
          if (f.nth === 'every' || n === (f.nth ?? 1)) r = injected(cmd, args);
        }
    if (this.root === false || (this.root instanceof RegExp && this.root.test(line)))
      r ??= refused(kind, cmd, args);
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
        return netstat(this, args);
      case 'route':
        if (args.length === 3 && args[0] === '-n' && args[1] === 'get')
          return (need('read'), routeGet(this, args[2]!));
        need('mutate');
        return route(this, args);
      case 'sysctl':
        return sysctl(this, args, need);
      case 'ifconfig':
        if (args.length === 0) return (need('read'), ok(ifconfigText(this)));
        need('mutate');
        return ifconfig(this, args);
      case 'pfctl':
        return pfctl(this, args, input, need);
      case 'dnctl':
        return dnctl(this, args, need);
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
        return launchctl(this, args, need);
      case 'networksetup':
        return networksetup(this, args, need);
      case 'scutil':
        if (args.length === 0 && input !== undefined) return scutil(this, input, kind);
        if (args.length === 1 && args[0] === '--dns') return (need('read'), ok(scutilDns(this)));
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
}
