/**
 * Booted Debian 12 hosts for the tests of what only a real host has: systemd as PID 1,
 * systemd-resolved, NetworkManager, the .deb and its units, reboots.
 *
 * Topology (every address in the test ranges, every namespace made here):
 *
 *   lab netns (the user's router and the VPN server)        ct netns (fresh per boot)
 *   ┌───────────────────────────────────────────────┐       ┌──────────────────────────┐
 *   │ br0 10.200.231.1/24: dnsmasq DHCP + the LAN's  │ veth  │ eth0 (NetworkManager,    │
 *   │   resolver (lan.test), HTTP :8080              ├───────┤   DHCP) — systemd-nspawn │
 *   │ wireguard-go peer, UDP 51820 on 10.200.231.1   │       │   -b of a Debian 12 root │
 *   │   tunnel 10.200.232.1/24, fd00:200::232:1/112:  │       └──────────────────────────┘
 *   │   the tunnel's resolver (everything answers    │
 *   │   10.200.232.1) and HTTP :8080                 │
 *   └───────────────────────────────────────────────┘
 *
 * The capture (capture.ts) runs on br0, which outlives the host's veth across reboots: it
 * sees every frame the host sends, from the first of a boot.
 *
 * Booting (systemd-nspawn on a machine whose PID 1 is not systemd, with hybrid cgroups):
 * - `--register=no --keep-unit`: there is no machined; nspawn runs from a cgroup of its own
 *   in both the named systemd and the unified hierarchy, removed after the boot.
 * - SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1: cgroup v2 inside (what Debian 12 hosts have).
 * - SYSTEMD_NSPAWN_API_VFS_WRITABLE=network: /proc/sys/net writable (awg's sysctls).
 * - `--capability=CAP_NET_ADMIN`: not granted by `--network-namespace-path` alone.
 * - `--system-call-filter=bpf`: without it systemd ignores DevicePolicy= (awg's units).
 * - a fresh network namespace per boot: links, nft tables and addresses survive a "reboot"
 *   in a namespace that is reused, which no real reboot keeps.
 * - a reboot inside makes nspawn exit 133; poweroff: SIGRTMIN+4 to the container's PID 1.
 * Commands inside run in transient scopes (`systemd-run --scope`, entered with
 * `nsenter -t PID1 -a`): what they start belongs to the host's systemd, as what a user starts
 * from a login shell does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  run,
  type NsProcess,
  type RunOptions,
} from '../helpers/netns.js';
import { wgKeyPair } from '../helpers/awg.js';
import { startWireguardGo, wgGoAddress, wgSetconf, type WgGo } from '../netns/interop-wg.js';
import type { ExecResult } from '../../src/util/exec.js';
import { ensureRoot } from './root.js';

export const LAN = {
  router: '10.200.231.1',
  prefix: 24,
  dhcp: ['10.200.231.100', '10.200.231.150'] as const,
  /** the host's MAC on every boot (its veth is made anew each time) */
  hostMac: '02:00:0a:c8:e7:02',
};
export const VPN = {
  peer: '10.200.232.1',
  host: '10.200.232.2',
  peer6: 'fd00:200::232:1',
  host6: 'fd00:200::232:2',
  port: 51820,
};
export const HTTP_PORT = 8080;

const HOSTS_DIR = process.env.AWG_HOST_WORK || '/var/tmp/awg-hosts';

export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  ms = 60_000,
  every = 100,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** lines of `p`'s output that arrived after `from` characters; waits for one matching `re` */
async function waitLine(p: NsProcess, re: RegExp, what: string, ms = 20_000): Promise<void> {
  await until(
    what,
    async () => {
      if (re.test(p.output())) return true;
      if (p.child.exitCode !== null) throw new Error(`${what}: exited: ${p.output()}`);
      return false;
    },
    ms,
    20,
  );
}

const HTTP_SERVER = String.raw`
const http = require('http');
const [addr, port, name] = process.argv.slice(1);
http.createServer((q, s) => { s.end(name + ' ' + q.url + '\n'); })
  .listen(Number(port), addr, () => console.log('listening ' + addr));
`;

export class Lab {
  readonly keys = { host: wgKeyPair(), peer: wgKeyPair() };
  private procs: NsProcess[] = [];
  private wg?: WgGo;
  readonly dir: string;

  private constructor(
    readonly tag: string,
    readonly ns: string,
  ) {
    this.dir = join(HOSTS_DIR, ns);
    mkdirSync(this.dir, { recursive: true });
  }

  /** the lab namespace with its bridge, DHCP, resolvers, HTTP servers and the WireGuard peer */
  static async create(tag: string): Promise<Lab> {
    const lab = new Lab(tag, await createNetns(`h${tag}-lab`));
    try {
      await lab.setUp();
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  private async setUp(): Promise<void> {
    const ns = this.ns;
    await run('ip', ['-n', ns, 'link', 'add', 'br0', 'type', 'bridge']);
    await run('ip', ['-n', ns, 'addr', 'add', `${LAN.router}/${LAN.prefix}`, 'dev', 'br0']);
    await run('ip', ['-n', ns, 'link', 'set', 'br0', 'up']);
    const lanLog = join(this.dir, 'dnsmasq-lan.log');
    this.procs.push(
      nsSpawn(ns, 'dnsmasq', [
        '-k',
        '--no-resolv',
        '--no-hosts',
        '--bind-interfaces',
        `--listen-address=${LAN.router}`,
        '--interface=br0',
        `--dhcp-range=${LAN.dhcp[0]},${LAN.dhcp[1]},1h`,
        `--dhcp-leasefile=${join(this.dir, 'leases')}`,
        `--pid-file=${join(this.dir, 'dnsmasq-lan.pid')}`,
        '--address=/lan.test/' + LAN.router,
        '--log-queries',
        '--log-dhcp',
        `--log-facility=${lanLog}`,
      ]),
    );
    // the peer: Debian's wireguard-go (a real one), its UAPI name unique host-wide
    const iface = `awghp${this.ns.slice(-6)}`;
    this.wg = await startWireguardGo(ns, iface);
    await wgSetconf(
      ns,
      iface,
      this.dir,
      `[Interface]\nPrivateKey = ${this.keys.peer.privateKey}\nListenPort = ${VPN.port}\n\n` +
        `[Peer]\nPublicKey = ${this.keys.host.publicKey}\nAllowedIPs = ${VPN.host}/32, ${VPN.host6}/128\n`,
    );
    await wgGoAddress(ns, iface, `${VPN.peer}/24`);
    await nsExec(ns, 'ip', ['-6', 'addr', 'add', `${VPN.peer6}/112`, 'dev', iface, 'nodad']);
    this.procs.push(
      nsSpawn(ns, 'dnsmasq', [
        '-k',
        '--no-resolv',
        '--no-hosts',
        '--bind-interfaces',
        `--listen-address=${VPN.peer}`,
        '--port=53',
        `--pid-file=${join(this.dir, 'dnsmasq-vpn.pid')}`,
        // every name answers with the tunnel side's address: a name resolved through the
        // tunnel is told apart from one the LAN's resolver answered (lan.test only)
        `--address=/#/${VPN.peer}`,
        '--log-queries',
        `--log-facility=${join(this.dir, 'dnsmasq-vpn.log')}`,
      ]),
    );
    for (const [addr, name] of [
      [LAN.router, 'lan'],
      [VPN.peer, 'vpn'],
    ] as const) {
      const p = nsSpawn(ns, process.execPath, ['-e', HTTP_SERVER, addr, String(HTTP_PORT), name]);
      this.procs.push(p);
      await waitLine(p, /listening/, `http server on ${addr}`);
    }
    await until('the resolvers to start', async () =>
      ['dnsmasq-lan.pid', 'dnsmasq-vpn.pid'].every((f) => existsSync(join(this.dir, f))),
    );
  }

  /** names each resolver was asked (dnsmasq's query log) */
  queries(which: 'lan' | 'vpn'): string[] {
    const f = join(this.dir, `dnsmasq-${which}.log`);
    if (!existsSync(f)) return [];
    return [...readFileSync(f, 'utf8').matchAll(/query\[\w+\] (\S+) from/g)].map((m) => m[1]!);
  }

  /** the latest handshake with the host, in seconds since the epoch (0: none yet) */
  async lastHandshake(): Promise<number> {
    const r = await nsExec(this.ns, 'wg', ['show', this.wg!.iface, 'latest-handshakes']);
    return Number(r.stdout.trim().split(/\s+/)[1] ?? 0);
  }

  /** the awg config of the repository's full-tunnel example, pointed at this lab */
  fullTunnelConfig(example: string): string {
    return example
      .replace('{ file: keys/home.key }', '{ file: /etc/awg/keys/home.key }')
      .replace('10.66.0.2/32', `${VPN.host}/32`)
      .replace('fd66::2/128', `${VPN.host6}/128`)
      .replace('dns: [10.66.0.1]', `dns: [${VPN.peer}]`)
      .replace(/publicKey: \S+/, `publicKey: ${this.keys.peer.publicKey}`)
      .replace('vpn.example.net:51820', `${LAN.router}:${VPN.port}`);
  }

  async destroy(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.kill(1000)));
    await this.wg?.stop().catch(() => {});
    await destroyNetns(this.ns);
    // a host's overlay still mounted (its destroy failed): unmounted before the directory goes
    for (const m of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const at = m.split(' ')[1];
      if (at?.startsWith(this.dir + '/')) await run('umount', ['-l', at], { allowFail: true });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface HostRun extends ExecResult {
  /** stdout and stderr, for assertion messages */
  out: string;
}

/** A booted Debian 12 host on the lab's bridge. */
export class Host {
  readonly root: string;
  private nspawn?: ChildProcess;
  private exited?: Promise<number>;
  private ct: string | undefined;
  pid1 = 0;
  boots = 0;
  console = '';
  private readonly cgroups: string[];

  private constructor(
    readonly lab: Lab,
    readonly name: string,
  ) {
    this.root = join(lab.dir, `${name}-root`);
    this.cgroups = ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified']
      .filter((d) => existsSync(d))
      .map((d) => join(d, `awgh-${lab.ns}-${name}`));
  }

  /**
   * The prepared root under an overlay of its own (what the host writes lands in its upper
   * directory and dies with it; the base is never written), booted; the caller destroys it.
   */
  static async boot(lab: Lab, name = 'host'): Promise<Host> {
    const base = await ensureRoot();
    const h = new Host(lab, name);
    for (const d of [h.root, `${h.root}.upper`, `${h.root}.work`])
      mkdirSync(d, { recursive: true });
    await run('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${base},upperdir=${h.root}.upper,workdir=${h.root}.work`,
      h.root,
    ]);
    try {
      await h.start();
    } catch (e) {
      await h.destroy();
      throw e;
    }
    return h;
  }

  /** path of `p` (absolute, inside the host) in the host's root */
  path(p: string): string {
    return join(this.root, p);
  }

  write(p: string, text: string, mode = 0o644): void {
    mkdirSync(join(this.path(p), '..'), { recursive: true });
    writeFileSync(this.path(p), text, { mode });
  }

  private async start(): Promise<void> {
    this.ct = await createNetns(`h${this.lab.tag}-ct`);
    const veth = `hv${this.ct.slice(-6)}`;
    await run('ip', [
      '-n',
      this.lab.ns,
      'link',
      'add',
      veth,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'address',
      LAN.hostMac,
      'netns',
      this.ct,
    ]);
    await run('ip', ['-n', this.lab.ns, 'link', 'set', veth, 'master', 'br0', 'up']);
    for (const d of this.cgroups) mkdirSync(d, { recursive: true });
    const join_ = this.cgroups.map((d) => `echo $$ > ${d}/cgroup.procs`).join('; ');
    const child = spawn(
      'sh',
      [
        '-c',
        `${join_}; exec systemd-nspawn --quiet --register=no --keep-unit -b -D "$0" -M "$1" ` +
          `--console=read-only --network-namespace-path="/run/netns/$2" ` +
          `--capability=CAP_NET_ADMIN --system-call-filter=bpf`,
        this.root,
        `awgh-${this.name}`,
        this.ct,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1',
          SYSTEMD_NSPAWN_API_VFS_WRITABLE: 'network',
        },
      },
    );
    this.nspawn = child;
    this.boots++;
    child.stdout.on('data', (d: Buffer) => (this.console += d.toString()));
    child.stderr.on('data', (d: Buffer) => (this.console += d.toString()));
    this.exited = new Promise((resolve) => {
      child.on('error', () => resolve(127));
      child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : 1)));
    });
    const nspawnPid = child.pid!;
    this.pid1 = await until(
      'the container PID 1 (systemd)',
      async () => {
        if (child.exitCode !== null) throw new Error(`systemd-nspawn exited: ${this.console}`);
        const kids = (await run('pgrep', ['-P', String(nspawnPid)], { allowFail: true })).stdout
          .split(/\s+/)
          .filter(Boolean)
          .map(Number);
        for (const k of kids) {
          const comm = readFileSync(`/proc/${k}/comm`, 'utf8').trim();
          if (comm === 'systemd') return k;
        }
        return undefined;
      },
      30_000,
      20,
    );
    // the manager's private socket appears during the boot: is-system-running --wait
    // then blocks until the boot has finished (running or degraded)
    const state = await until(
      'systemd inside to accept connections',
      async () => {
        const r = await this.enter(['systemctl', 'is-system-running', '--wait'], {
          allowFail: true,
          timeoutMs: 120_000,
        });
        const s = r.stdout.trim();
        return s === 'running' || s === 'degraded' ? s : undefined;
      },
      120_000,
      50,
    );
    if (state === 'degraded') {
      const failed = await this.enter(['systemctl', '--failed', '--no-legend'], {
        allowFail: true,
      });
      this.console += `\n[lab] boot ${this.boots} degraded: ${failed.stdout}`;
    }
    await this.enter(['nm-online', '-s', '-q', '-t', '90'], { timeoutMs: 100_000 });
  }

  /** a command in the host's namespaces, as a child of the test (setup and probes only) */
  enter(argv: string[], o: RunOptions = {}): Promise<ExecResult> {
    return run('nsenter', ['-t', String(this.pid1), '-a', '--', ...argv], o);
  }

  /**
   * `argv` in a transient scope of the host's systemd, as from a user's login shell: what it
   * starts and leaves running (awg's detached engines) stays when it exits, as in a session
   * scope (a transient *service* would have them killed with its cgroup when its main process
   * ends). Throws on a non-zero exit unless `allowFail`. The process keeps the capabilities
   * nsenter has (the test's), not the container's bounding set: services awg installs run with
   * the host's own (systemctl start).
   */
  async run(
    argv: string[],
    o: Omit<RunOptions, 'env'> & { env?: Record<string, string> } = {},
  ): Promise<HostRun> {
    const env = Object.entries(o.env ?? {}).flatMap(([k, v]) => ['-E', `${k}=${v}`]);
    const r = await run(
      'nsenter',
      [
        '-t',
        String(this.pid1),
        '-a',
        '--',
        'systemd-run',
        '--scope',
        '--collect',
        '--quiet',
        ...env,
        '--',
        ...argv,
      ],
      {
        timeoutMs: o.timeoutMs ?? 120_000,
        allowFail: true,
        ...(o.input !== undefined ? { input: o.input } : {}),
      },
    );
    const res = { ...r, out: `${r.stdout}${r.stderr}` };
    if (r.code !== 0 && !o.allowFail)
      throw new Error(`[host] ${argv.join(' ')} exited ${r.code}: ${res.out.trim()}`);
    return res;
  }

  /** true when an HTTP request from the host reaches the server behind the tunnel's peer */
  async viaTunnel(): Promise<boolean> {
    const r = await this.run(
      ['curl', '-sS', '--max-time', '5', `http://${VPN.peer}:${HTTP_PORT}/t`],
      { allowFail: true },
    );
    return r.stdout === 'vpn /t\n';
  }

  /** `sh -c script` in the host (run()) */
  sh(script: string, o: Omit<RunOptions, 'env'> = {}): Promise<HostRun> {
    return this.run(['sh', '-c', script], o);
  }

  /** `apt-get install` of a .deb file the way the README says (apt resolves its dependencies) */
  async installDeb(deb: string): Promise<HostRun> {
    const dst = `/root/${basename(deb)}`;
    copyFileSync(deb, this.path(dst));
    return this.run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', dst], {
      env: { DEBIAN_FRONTEND: 'noninteractive' },
      timeoutMs: 300_000,
    });
  }

  /** `systemctl reboot` inside; resolves once the next boot is up (a fresh network namespace) */
  async reboot(): Promise<void> {
    await this.enter(['systemctl', 'reboot'], { allowFail: true });
    const code = await this.exited!;
    if (code !== 133) throw new Error(`nspawn exited ${code} on reboot: ${this.console}`);
    await this.cleanupBoot();
    await this.start();
  }

  /** a clean poweroff (SIGRTMIN+4 to PID 1); resolves when nspawn has exited */
  async poweroff(): Promise<number> {
    if (!this.nspawn || this.nspawn.exitCode !== null) return this.nspawn?.exitCode ?? 0;
    process.kill(this.pid1, 'SIGRTMIN+4' as NodeJS.Signals);
    const t = setTimeout(() => this.nspawn?.kill('SIGKILL'), 60_000);
    const code = await this.exited!;
    clearTimeout(t);
    await this.cleanupBoot();
    return code;
  }

  /** journal of the host's boot `boot` (0 this one, -1 the previous), read from its root */
  async journal(args: string[], boot = 0): Promise<string> {
    const r = await run(
      'journalctl',
      [
        '-D',
        this.path('/var/log/journal'),
        '-b',
        String(boot),
        '--no-pager',
        '-o',
        'short',
        ...args,
      ],
      { allowFail: true, timeoutMs: 60_000 },
    );
    return r.stdout;
  }

  private async cleanupBoot(): Promise<void> {
    if (this.ct) await destroyNetns(this.ct);
    this.ct = undefined;
    for (const d of this.cgroups) {
      if (existsSync(d))
        await run('find', [d, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';'], {
          allowFail: true,
        });
    }
  }

  async destroy(): Promise<void> {
    await this.poweroff().catch(() => {
      this.nspawn?.kill('SIGKILL');
    });
    await this.cleanupBoot().catch(() => {});
    await run('umount', [this.root], { allowFail: true });
    for (const d of [this.root, `${this.root}.upper`, `${this.root}.work`])
      rmSync(d, { recursive: true, force: true });
  }
}
