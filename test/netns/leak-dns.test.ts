/**
 * DNS leak tests on the wire (issue #6, step 5). Apps run in a private mount namespace whose
 * /etc/resolv.conf (a bind-mounted temp file) names the on-link LAN resolver 10.200.1.1, as a
 * home router does; they send DNS over UDP and TCP to it and connect to its port 853.
 * - `dns.leakProtection` + kill switch: a tunnelled app (a rule's cgroup via `awg exec --rule`,
 *   and `awg exec --tunnel`) resolves through the tunnel's resolver (per-app DNAT), an
 *   unmatched process's queries are dropped; no port-53/853 packet on the underlay.
 * - leak protection without the kill switch: the unmatched process still reaches the server
 *   directly (the path is open), but its DNS is dropped.
 * - kill switch with allowLan, no leak protection: a tunnelled app's queries to the LAN
 *   resolver must still not leave on the underlay.
 * - control: with neither, the unmatched process's DNS is on the underlay and the check sees it.
 * - `dns.system: default-tunnel`: the daemon (in a private mount namespace) rewrites
 *   /etc/resolv.conf; after a SIGKILL, `awg down` restores it byte-exactly.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, ensureDist, writeConfig, type AwgEnv } from '../helpers/awg.js';
import { requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import {
  CLIENT_TUN,
  CLIENT_UL,
  LAN_RESOLVER,
  SERVER_RAW_TARGET,
  SERVER_TUN_TARGET,
  TUNNEL_RESOLVER,
  awgCli,
  buildTopo,
  capture,
  classify,
  clientConfig,
  converged,
  destroyTopo,
  diag,
  eventually,
  execApp,
  hits,
  parsePcap,
  rawApp,
  startDaemon,
  startPeer,
  type App,
  type Daemon,
  type Pkt,
  type Topo,
} from './leak-support.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'tcpdump', 'unshare', 'mount']);

const RULES = `  - name: browser
    match: { name: awgt-no-such-exe }
    target: vpn
`;
/** no final newline and odd spacing: a restore must give back these exact bytes */
const ORIGINAL = `# resolv.conf of the test host (not the real one)\nnameserver ${LAN_RESOLVER}\nsearch lan.test\noptions edns0 trust-ad`;
const DNS_KINDS = 'dns-udp,dns-tcp,dot,udp';

const isDns = (ports: number[]) => (p: Pkt) =>
  p.out && (p.proto === 6 || p.proto === 17) && ports.includes(p.dport ?? 0);

describe.skipIf(skip)('leak: DNS on the underlay', () => {
  let t: Topo | undefined;
  let e: AwgEnv | undefined;
  let d: Daemon | undefined;
  let apps: App[] = [];
  let resolv = '';
  /** the servers' logs outlive a test: every test's tags are its own */
  let run = 0;
  const tagOf = (s: string) => `r${run}-${s}`;
  const hitsOf = (s: string) => hits(t!).filter((h) => h.tag.startsWith(tagOf(s)));

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    t = await buildTopo('ld');
    await startPeer(t);
  }, 120_000);

  afterEach(async () => {
    for (const a of apps) await a.proc.kill(2000);
    apps = [];
    await d?.proc.kill(5000);
    d = undefined;
    if (t && e) await awgCli(t.client, e, ['down'], { resolvConf: resolv }).catch(() => undefined);
    cleanupAwgEnv(e);
    e = undefined;
  });

  afterAll(async () => {
    await destroyTopo(t);
  });

  async function up(
    yaml: Parameters<typeof clientConfig>[1],
    daemonInMountNs = false,
  ): Promise<void> {
    run++;
    e = makeAwgEnv();
    resolv = join(e.dir, 'resolv.host');
    writeFileSync(resolv, ORIGINAL);
    const cfg = writeConfig(e, 'client.yaml', clientConfig(t!, yaml));
    d = startDaemon(t!.client, e, cfg, daemonInMountNs ? { resolvConf: resolv } : {});
    await d.waitEvent(converged);
  }

  const app = (placement: string[] | 'raw', tag: string, target = SERVER_TUN_TARGET) => {
    const a =
      placement === 'raw'
        ? rawApp(t!, tagOf(tag), target, 'system', DNS_KINDS, { resolvConf: resolv })
        : execApp(t!, e!, placement, tagOf(tag), target, 'system', DNS_KINDS, {
            resolvConf: resolv,
          });
    apps.push(a);
    return a;
  };

  /** the app's DNS answers (the answer is the resolver that answered) */
  const answers = (a: App) =>
    a
      .oks()
      .filter((o) => o.ok.startsWith('dns'))
      .map((o) => `${o.ok}:${o.answer}`);

  /** capture while `during` runs: no client packet to `dnsPorts` on the underlay, and no leak */
  async function wire(
    during: () => Promise<void>,
    o: Parameters<typeof classify>[1] = {},
    dnsPorts = [53, 853],
  ) {
    const cap = await capture(t!, e!.dir);
    try {
      await during();
    } catch (err) {
      const tail = (x: string) => x.slice(-2000);
      throw new Error(
        `${(err as Error).message}\n--- apps\n${apps.map((a) => tail(a.proc.output())).join('\n---\n')}\n--- hits\n${JSON.stringify(hits(t!).slice(-20))}\n${await diag(t!)}`,
      );
    } finally {
      const pk = parsePcap(await cap.stop(), t!.clientMac);
      const dns = pk.filter(isDns(dnsPorts)).map((p) => p.text);
      const v = classify(pk, o);
      expect(dns, `port-53/853 packets from the client on the underlay\n${await diag(t!)}`).toEqual(
        [],
      );
      expect(
        v.leaks,
        `client frames outside the tunnel\n${v.leaks.slice(0, 30).join('\n')}`,
      ).toEqual([]);
    }
  }

  it('leakProtection + kill switch: a rule app resolves through the tunnel resolver, the unmatched process is dropped, nothing on the underlay', async () => {
    await up({ killSwitch: 'on', dns: '{leakProtection: true}', rules: RULES });
    const rule = app(['--rule', 'browser'], 'ruleapp');
    const raw = app('raw', 'rawapp', SERVER_RAW_TARGET);
    await wire(async () => {
      await eventually(
        () => rule.oks('dns-udp').length >= 3 && rule.oks('dns-tcp').length >= 3,
        'the rule app resolves (UDP and TCP)',
      );
      await raw.moreRounds(20);
      await rule.moreRounds(10);
    });
    // per-app DNS: the rule's cgroup is DNATed to the tunnel's resolver and reaches it through the tunnel
    expect(new Set(answers(rule))).toEqual(
      new Set([`dns-udp:${TUNNEL_RESOLVER}`, `dns-tcp:${TUNNEL_RESOLVER}`]),
    );
    const ruleDns = hitsOf('ruleapp').filter((h) => h.p.startsWith('dns'));
    expect(
      ruleDns.every((h) => h.l === TUNNEL_RESOLVER && h.r === CLIENT_TUN),
      JSON.stringify(ruleDns),
    ).toBe(true);
    // DoT to a resolver outside the tunnel is dropped by leak protection
    expect(rule.oks('dot')).toEqual([]);
    expect(raw.oks()).toEqual([]);
    expect(hitsOf('rawapp')).toEqual([]);
  }, 300_000);

  it("leakProtection + kill switch: `awg exec --tunnel vpn` (the tunnel's cgroup) resolves through the tunnel resolver too", async () => {
    await up({ killSwitch: 'on', dns: '{leakProtection: true}' });
    const tun = app(['--tunnel', 'vpn'], 'tunapp');
    await wire(async () => {
      await eventually(
        () => tun.oks('udp').length >= 3,
        'the exec --tunnel app reaches its server',
      );
      await tun.moreRounds(20);
    });
    const q = hitsOf('tunapp').filter((h) => h.p.startsWith('dns'));
    expect(
      answers(tun).length,
      `exec --tunnel app got no DNS answer (queries the servers saw: ${JSON.stringify(q.slice(0, 3))}); nft:\n${await diag(t!)}`,
    ).toBeGreaterThan(0);
    expect(new Set(answers(tun))).toEqual(
      new Set([`dns-udp:${TUNNEL_RESOLVER}`, `dns-tcp:${TUNNEL_RESOLVER}`]),
    );
  }, 300_000);

  it('leakProtection without the kill switch: the unmatched process reaches its server directly but its DNS is dropped', async () => {
    await up({ killSwitch: 'off', dns: '{leakProtection: true}', rules: RULES });
    const rule = app(['--rule', 'browser'], 'ruleapp');
    const raw = app('raw', 'rawapp', SERVER_RAW_TARGET);
    await wire(
      async () => {
        await eventually(
          () => raw.oks('udp').length >= 3,
          'the unmatched process reaches its server (the path is open)',
        );
        await eventually(
          () => rule.oks('dns-udp').length >= 3 && rule.oks('dns-tcp').length >= 3,
          'the rule app resolves',
        );
        await raw.moreRounds(20);
      },
      // without the kill switch direct traffic is expected; only DNS is judged here
      { allowLan: true, never: [LAN_RESOLVER, SERVER_TUN_TARGET] },
    );
    expect(hitsOf('rawapp').some((h) => h.r === CLIENT_UL)).toBe(true);
    expect(raw.oks().filter((o) => o.ok !== 'udp')).toEqual([]);
    expect(new Set(answers(rule))).toEqual(
      new Set([`dns-udp:${TUNNEL_RESOLVER}`, `dns-tcp:${TUNNEL_RESOLVER}`]),
    );
  }, 300_000);

  // allowLan admits private destinations outside the tunnel (documented), so DoT (853) to the
  // LAN resolver may leave; plain DNS (53) of a tunnelled app must not.
  for (const [label, placement, tag] of [
    ['a rule app', ['--rule', 'browser'], 'ruleapp'],
    ['`awg exec --tunnel vpn`', ['--tunnel', 'vpn'], 'tunapp'],
  ] as const) {
    it(`kill switch with allowLan, no leak protection: ${label} never sends port-53 queries to the LAN resolver over the underlay`, async () => {
      await up({ killSwitch: '{enabled: true, allowLan: true}', rules: RULES });
      const a = app([...placement], tag);
      await wire(
        async () => {
          await eventually(
            () => a.oks('udp').length >= 3,
            'the app reaches its server through the tunnel',
          );
          await a.moreRounds(20);
        },
        { allowLan: true, never: [SERVER_TUN_TARGET] },
        [53],
      );
      expect(new Set(answers(a))).toEqual(
        new Set([`dns-udp:${TUNNEL_RESOLVER}`, `dns-tcp:${TUNNEL_RESOLVER}`]),
      );
    }, 300_000);
  }

  // A tunnel without `dns:` has no resolver to DNAT to, and `lookup main suppress_prefixlength 0`
  // sends a tunnelled app's queries to an on-link resolver out of the uplink, which allowLan
  // would admit: the `rerouted` chain drops tunnel-marked port 53/853 leaving by a non-TUN device.
  it('kill switch with allowLan, tunnel without dns: a tunnelled app never sends port-53 queries to the LAN resolver over the underlay', async () => {
    await up({ killSwitch: '{enabled: true, allowLan: true}', noTunnelDns: true });
    const a = app(['--tunnel', 'vpn'], 'tunapp');
    await wire(
      async () => {
        await eventually(
          () => a.oks('udp').length >= 3,
          'the app reaches its server through the tunnel',
        );
        await a.moreRounds(20);
      },
      { allowLan: true, never: [SERVER_TUN_TARGET] },
      [53],
    );
  }, 300_000);

  it("control: without leak protection the unmatched process's DNS is on the underlay and the check sees it", async () => {
    await up({ killSwitch: 'off', rules: RULES });
    const raw = app('raw', 'rawapp', SERVER_RAW_TARGET);
    const cap = await capture(t!, e!.dir);
    await eventually(
      () => raw.oks('dns-udp').length >= 3 && raw.oks('dns-tcp').length >= 3,
      'the unmatched process resolves directly',
    );
    const dns = parsePcap(await cap.stop(), t!.clientMac).filter(isDns([53]));
    expect(dns.some((p) => p.proto === 17 && p.dst === LAN_RESOLVER)).toBe(true);
    expect(dns.some((p) => p.proto === 6 && p.dst === LAN_RESOLVER)).toBe(true);
    expect(new Set(answers(raw))).toEqual(
      new Set([`dns-udp:${LAN_RESOLVER}`, `dns-tcp:${LAN_RESOLVER}`]),
    );
  }, 300_000);

  it('dns.system default-tunnel: resolv.conf points at the tunnel; after a daemon SIGKILL `awg down` restores it byte-exactly', async () => {
    await up(
      { killSwitch: 'on', default: 'vpn', dns: '{system: default-tunnel, leakProtection: true}' },
      true,
    );
    const rewritten = readFileSync(resolv, 'utf8');
    expect(rewritten).toContain(`nameserver ${TUNNEL_RESOLVER}`);
    expect(rewritten).not.toContain(`nameserver ${LAN_RESOLVER}`);
    // full tunnel: a process that matches nothing follows `default` and resolves through the tunnel
    const raw = app('raw', 'rawapp');
    await wire(async () => {
      await eventually(
        () => raw.oks('dns-udp').length >= 3 && raw.oks('dns-tcp').length >= 3,
        'the unmatched process resolves through the tunnel',
      );
    });
    expect(new Set(answers(raw))).toEqual(
      new Set([`dns-udp:${TUNNEL_RESOLVER}`, `dns-tcp:${TUNNEL_RESOLVER}`]),
    );
    expect(hitsOf('rawapp').every((h) => h.r === CLIENT_TUN)).toBe(true);

    d!.proc.child.kill('SIGKILL');
    await d!.proc.exited;
    d = undefined;
    expect(readFileSync(resolv, 'utf8')).toBe(rewritten);
    const r = await awgCli(t!.client, e!, ['down'], { resolvConf: resolv });
    expect(r.code, r.out).toBe(0);
    expect(readFileSync(resolv).equals(Buffer.from(ORIGINAL))).toBe(true);
  }, 300_000);
});
