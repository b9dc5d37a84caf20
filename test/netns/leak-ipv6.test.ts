/**
 * IPv6 leak tests on the wire (issue #6, step 5, `ipv6: tunnel | block | allow`): the
 * topology with IPv6 (/112 subnets of fd00:200::/64), tcpdump on the client's underlay, a
 * tunnelled app (`awg exec --tunnel vpn`) and an unmatched process sending TCP and UDP over v6.
 * - `tunnel` + kill switch: the app's v6 reaches the server through the tunnel (source: the
 *   tunnel's v6 address); the underlay carries only WireGuard; the unmatched process is dropped;
 * - `allow` + kill switch: the app's v6 is routed direct (documented), so the kill switch
 *   stops it: no v6 from the client on the underlay but neighbour discovery;
 * - `block`, no kill switch: the app's v6 is dropped while the unmatched process's v6 goes
 *   direct (the control that shows the check sees v6 on the underlay).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, ensureDist, writeConfig, type AwgEnv } from '../helpers/awg.js';
import { requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import {
  OTHER_RESOLVER,
  V6,
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

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'tcpdump']);

/** a v6 packet from the client that is not neighbour discovery */
const v6Traffic = (p: Pkt) =>
  p.out &&
  p.kind === 'ipv6' &&
  !(p.proto === 58 && p.icmpType !== undefined && p.icmpType >= 133 && p.icmpType <= 136);

describe.skipIf(skip)('leak: IPv6 on the underlay', () => {
  let t: Topo | undefined;
  let e: AwgEnv | undefined;
  let d: Daemon | undefined;
  let apps: App[] = [];
  let run = 0;
  const tagOf = (s: string) => `r${run}-${s}`;
  const hitsOf = (s: string) => hits(t!).filter((h) => h.tag.startsWith(tagOf(s)));

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    t = await buildTopo('l6', { v6: true });
    await startPeer(t);
  }, 120_000);

  afterEach(async () => {
    for (const a of apps) await a.proc.kill(2000);
    apps = [];
    await d?.proc.kill(5000);
    d = undefined;
    if (t && e) await awgCli(t.client, e, ['down']).catch(() => undefined);
    cleanupAwgEnv(e);
    e = undefined;
  });

  afterAll(async () => {
    await destroyTopo(t);
  });

  async function up(killSwitch: string, ipv6: string): Promise<void> {
    run++;
    e = makeAwgEnv();
    d = startDaemon(
      t!.client,
      e,
      writeConfig(e, 'client.yaml', clientConfig(t!, { killSwitch, ipv6 })),
    );
    await d.waitEvent(converged);
  }

  function apps6(): { tun: App; raw: App; tun4: App } {
    const tun = execApp(
      t!,
      e!,
      ['--tunnel', 'vpn'],
      tagOf('tun6'),
      V6.serverTun,
      OTHER_RESOLVER,
      'udp,tcp',
    );
    const raw = rawApp(t!, tagOf('raw6'), V6.serverRaw, OTHER_RESOLVER, 'udp,tcp');
    // v4 from the same placement: proves the tunnel itself carries traffic meanwhile
    const tun4 = execApp(
      t!,
      e!,
      ['--tunnel', 'vpn'],
      tagOf('tun4'),
      '10.200.3.2',
      OTHER_RESOLVER,
      'udp',
    );
    apps.push(tun, raw, tun4);
    return { tun, raw, tun4 };
  }

  async function wire(during: () => Promise<void>): Promise<Pkt[]> {
    const cap = await capture(t!, e!.dir);
    try {
      await during();
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\n--- apps\n${apps.map((a) => a.proc.output().slice(-1500)).join('\n---\n')}\n--- hits\n${JSON.stringify(hits(t!).slice(-10))}\n${await diag(t!)}`,
      );
    }
    return parsePcap(await cap.stop(), t!.clientMac);
  }

  it("ipv6 tunnel + kill switch: the app's v6 goes through the tunnel, nothing but WireGuard on the underlay", async () => {
    await up('on', 'tunnel');
    const { tun, raw } = apps6();
    const pk = await wire(async () => {
      await eventually(
        () => tun.oks('tcp').length >= 3 && tun.oks('udp').length >= 3,
        'the app reaches the v6 server through the tunnel',
      );
      await raw.moreRounds(20);
    });
    const v = classify(pk, { secrets: [tagOf('tun6'), tagOf('raw6')] });
    expect(v.leaks, v.leaks.slice(0, 20).join('\n')).toEqual([]);
    expect(v.wireguard).toBeGreaterThan(0);
    expect(hitsOf('tun6').length).toBeGreaterThan(0);
    expect(
      hitsOf('tun6').every((h) => h.r === V6.clientTun),
      JSON.stringify(hitsOf('tun6').slice(0, 3)),
    ).toBe(true);
    expect(hitsOf('raw6')).toEqual([]);
  }, 300_000);

  it("ipv6 allow + kill switch: the app's v6 is routed direct and the kill switch stops it", async () => {
    await up('on', 'allow');
    const { tun, tun4 } = apps6();
    const pk = await wire(async () => {
      await eventually(() => tun4.oks('udp').length >= 3, "the app's v4 goes through the tunnel");
      await tun.moreRounds(30);
    });
    const v6 = pk.filter(v6Traffic).map((p) => p.text);
    expect(v6, v6.slice(0, 20).join('\n')).toEqual([]);
    expect(classify(pk, { secrets: [tagOf('tun6'), tagOf('raw6')] }).leaks).toEqual([]);
    expect(tun.oks()).toEqual([]);
    expect(hitsOf('tun6')).toEqual([]);
  }, 300_000);

  it("ipv6 block, no kill switch: the app's v6 is dropped; the unmatched process's v6 goes direct (control)", async () => {
    await up('off', 'block');
    const { tun, raw, tun4 } = apps6();
    const pk = await wire(async () => {
      await eventually(
        () => raw.oks('tcp').length >= 3,
        'the unmatched process reaches the v6 server directly',
      );
      await eventually(() => tun4.oks('udp').length >= 3, "the app's v4 goes through the tunnel");
      await tun.moreRounds(30);
    });
    const v6 = pk.filter(v6Traffic);
    expect(v6.some((p) => p.dst === V6.serverRaw)).toBe(true);
    expect(v6.filter((p) => p.dst === V6.serverTun).map((p) => p.text)).toEqual([]);
    expect(tun.oks()).toEqual([]);
    expect(hitsOf('tun6')).toEqual([]);
    expect(hitsOf('raw6').length).toBeGreaterThan(0);
    expect(hitsOf('raw6').every((h) => h.r === V6.clientUl)).toBe(true);
  }, 300_000);
});
