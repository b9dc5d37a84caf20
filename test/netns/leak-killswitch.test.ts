/**
 * Leak test of the kill switch on the wire (issue #6, step 5): tcpdump on the client's
 * underlay while a tunnelled app (`awg exec --tunnel vpn`) and an unmatched process keep
 * sending TCP, UDP, DNS over UDP and TCP, and TCP to 853, through four phases:
 *   1. tunnel up;  2. peer down (its engine and link gone);  3. daemon SIGKILLed;
 *   4. daemon restarted (the capture spans the restart window), tunnel traffic flows again.
 * With `killSwitch: on` every client frame on the underlay must be encrypted WireGuard to the
 * endpoint (or DHCP / neighbour discovery), and the unmatched process gets nothing through;
 * an app of a `fallback: allow-direct` rule, switched to direct by the daemon while the peer is
 * down, is stopped by the kill switch too.
 * With `allowLan` the documented exception applies: private destinations are reachable
 * outside the tunnel, so the unmatched process reaches its (RFC 1918) server directly, while
 * the tunnelled app's server and its payloads never appear on the underlay.
 * The kill switch also holds before the first handshake (peer absent) and with the TUN deleted
 * while the daemon is down (the tunnel table's unreachable route).
 * A control run without the kill switch shows the classifier flags the unmatched traffic.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAwgEnv,
  makeAwgEnv,
  ensureDist,
  nftTable,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import { nsExec, requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import {
  CLIENT_TUN,
  CLIENT_UL,
  LAN_RESOLVER,
  OTHER_RESOLVER,
  SERVER_RAW_TARGET,
  SERVER_TUN_TARGET,
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
  type Topo,
} from './leak-support.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'tcpdump']);

const ALLOW_DIRECT = `  - name: fallback-direct
    match: { name: awgt-no-such-exe }
    target: vpn
    fallback: allow-direct
`;

describe.skipIf(skip)('leak: kill switch on the underlay', () => {
  let t: Topo | undefined;
  let e: AwgEnv | undefined;
  let d: Daemon | undefined;
  let apps: App[] = [];
  /** the servers' logs outlive a test: every test's tags are its own */
  let run = 0;
  const tagOf = (s: string) => `r${run}-${s}`;
  const hitsOf = (s: string) => hits(t!).filter((h) => h.tag.startsWith(tagOf(s)));

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    t = await buildTopo('lk');
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

  const tunHitsFrom = (tag: string, from: string) => hitsOf(tag).filter((h) => h.r === from);

  /** capture while `during` runs; assert the wire verdict */
  async function phase(
    name: string,
    during: () => Promise<void>,
    o: Parameters<typeof classify>[1] = {},
  ) {
    const cap = await capture(t!, e!.dir);
    try {
      await during();
    } catch (err) {
      const tail = (x: string) => x.slice(-3000);
      throw new Error(
        `${name}: ${(err as Error).message}\n--- apps\n${apps.map((a) => tail(a.proc.output())).join('\n---\n')}\n--- daemon\n${tail(d?.proc.output() ?? '')}\n--- hits\n${JSON.stringify(hits(t!).slice(-20))}\n${await diag(t!)}`,
      );
    } finally {
      const pk = parsePcap(await cap.stop(), t!.clientMac);
      const v = classify(pk, o);
      expect(
        v.leaks,
        `${name}: client frames outside the tunnel on the underlay:\n${v.leaks.slice(0, 30).join('\n')}\n${await diag(t!)}`,
      ).toEqual([]);
      // the capture saw the tunnel itself (it is not an empty file)
      if (name !== 'daemon killed')
        expect(v.wireguard, `${name}: no WireGuard datagrams captured`).toBeGreaterThan(0);
    }
  }

  async function up(ks: string, rules?: string): Promise<void> {
    run++;
    e = makeAwgEnv();
    const cfg = writeConfig(
      e,
      'client.yaml',
      clientConfig(t!, { killSwitch: ks, ...(rules ? { rules } : {}) }),
    );
    d = startDaemon(t!.client, e, cfg);
    await d.waitEvent(converged);
  }

  it('killSwitch on: zero packets outside the tunnel with the tunnel up, the peer down, the daemon killed and restarted', async () => {
    const topo = t!;
    await up('on', ALLOW_DIRECT);
    const tun = execApp(
      topo,
      e!,
      ['--tunnel', 'vpn'],
      tagOf('tunapp'),
      SERVER_TUN_TARGET,
      OTHER_RESOLVER,
    );
    const raw = rawApp(topo, tagOf('rawapp'), SERVER_RAW_TARGET, LAN_RESOLVER);
    // a rule with `fallback: allow-direct`: while the tunnel is down it goes "direct", which the
    // kill switch must still stop
    const ad = execApp(
      topo,
      e!,
      ['--rule', 'fallback-direct'],
      tagOf('adapp'),
      SERVER_TUN_TARGET,
      OTHER_RESOLVER,
    );
    apps.push(tun, raw, ad);
    const secrets = [tagOf('tunapp'), tagOf('rawapp'), tagOf('adapp')];

    // 1. tunnel up
    await phase(
      'tunnel up',
      async () => {
        await eventually(
          () => tunHitsFrom('tunapp', CLIENT_TUN).length >= 5,
          'the tunnelled app reaches its server through the tunnel',
        );
        await raw.moreRounds(20);
      },
      { secrets },
    );
    expect(tunHitsFrom('tunapp', CLIENT_UL)).toEqual([]);
    expect(hitsOf('rawapp')).toEqual([]);
    expect(raw.oks()).toEqual([]);

    // 2. peer down: its engine and link are gone; the client keeps trying
    await phase(
      'peer down',
      async () => {
        const r = await awgCli(topo.peer, topo.pe, ['down']);
        expect(r.code, r.out).toBe(0);
        const before = hits(topo).length;
        const mark = d!.events().length;
        // the daemon sees the tunnel down and switches the allow-direct rule to direct
        await d!.waitEvent((ev) => ev.type === 'tunnel' && ev.state === 'down', mark, 120_000);
        await d!.waitEvent(converged, mark, 60_000);
        await tun.moreRounds(40);
        await ad.moreRounds(20);
        expect(hits(topo).slice(before)).toEqual([]);
      },
      { secrets },
    );
    await startPeer(topo);
    const back = tunHitsFrom('tunapp', CLIENT_TUN).length;
    await eventually(
      () => tunHitsFrom('tunapp', CLIENT_TUN).length > back + 3,
      'tunnel traffic after the peer returned',
      90_000,
    );

    // 3. daemon SIGKILLed: the nft table outlives it
    await phase(
      'daemon killed',
      async () => {
        d!.proc.child.kill('SIGKILL');
        await d!.proc.exited;
        d = undefined;
        expect(await nftTable(topo.client, 'awg')).toBeDefined();
        await tun.moreRounds(40);
        await raw.moreRounds(10);
      },
      { secrets },
    );

    // 4. restart: the capture spans the whole restart window
    await phase(
      'restart',
      async () => {
        const before = tunHitsFrom('tunapp', CLIENT_TUN).length;
        const cfg = writeConfig(
          e!,
          'client.yaml',
          clientConfig(topo, { killSwitch: 'on', rules: ALLOW_DIRECT }),
        );
        d = startDaemon(topo.client, e!, cfg);
        await d.waitEvent(converged);
        await eventually(
          () => tunHitsFrom('tunapp', CLIENT_TUN).length > before + 3,
          'tunnel traffic after the restart',
          90_000,
        );
        await raw.moreRounds(10);
      },
      { secrets },
    );
    expect(tunHitsFrom('tunapp', CLIENT_UL)).toEqual([]);
    expect(hitsOf('rawapp')).toEqual([]);
    expect(raw.oks()).toEqual([]);
    expect(hitsOf('adapp').filter((h) => h.r !== CLIENT_TUN)).toEqual([]);
    expect(hitsOf('adapp').length).toBeGreaterThan(0);
  }, 400_000);

  it('killSwitch allowLan: the unmatched process reaches the LAN directly (documented); the tunnelled app never appears on the underlay', async () => {
    const topo = t!;
    await up('{enabled: true, allowLan: true}');
    const tun = execApp(
      topo,
      e!,
      ['--tunnel', 'vpn'],
      tagOf('tunapp'),
      SERVER_TUN_TARGET,
      OTHER_RESOLVER,
    );
    const raw = rawApp(topo, tagOf('rawapp'), SERVER_RAW_TARGET, LAN_RESOLVER);
    apps.push(tun, raw);
    // the tunnelled app's destinations and payloads are never on the underlay
    const o = {
      allowLan: true,
      never: [SERVER_TUN_TARGET, OTHER_RESOLVER],
      secrets: [tagOf('tunapp')],
    };

    await phase(
      'tunnel up (allowLan)',
      async () => {
        await eventually(
          () => tunHitsFrom('tunapp', CLIENT_TUN).length >= 5,
          'the tunnelled app reaches its server through the tunnel',
        );
        await eventually(
          () => hitsOf('rawapp').some((h) => h.r === CLIENT_UL),
          'the unmatched process reaches the LAN server directly',
        );
      },
      o,
    );
    await phase(
      'peer down (allowLan)',
      async () => {
        const r = await awgCli(topo.peer, topo.pe, ['down']);
        expect(r.code, r.out).toBe(0);
        await tun.moreRounds(130);
      },
      o,
    );
    await startPeer(topo);
    const back = tunHitsFrom('tunapp', CLIENT_TUN).length;
    await eventually(
      () => tunHitsFrom('tunapp', CLIENT_TUN).length > back + 3,
      'tunnel traffic after the peer returned',
      90_000,
    );
    await phase(
      'daemon killed',
      async () => {
        d!.proc.child.kill('SIGKILL');
        await d!.proc.exited;
        d = undefined;
        await tun.moreRounds(40);
      },
      o,
    );
    expect(tunHitsFrom('tunapp', CLIENT_UL)).toEqual([]);
    // the unmatched process's own DNS went to the LAN resolver (allowed: no leak protection)
    expect(raw.oks('dns-udp').length).toBeGreaterThan(0);
  }, 400_000);

  it('killSwitch on: zero leaks before the first handshake (peer absent from the start) and with the TUN deleted while the daemon is down', async () => {
    const topo = t!;
    const r0 = await awgCli(topo.peer, topo.pe, ['down']);
    expect(r0.code, r0.out).toBe(0);
    try {
      await up('on');
      const tun = execApp(
        topo,
        e!,
        ['--tunnel', 'vpn'],
        tagOf('tunapp'),
        SERVER_TUN_TARGET,
        OTHER_RESOLVER,
      );
      const raw = rawApp(topo, tagOf('rawapp'), SERVER_RAW_TARGET, LAN_RESOLVER);
      apps.push(tun, raw);
      const o = { secrets: [tagOf('tunapp'), tagOf('rawapp')] };
      await phase(
        'before the first handshake',
        async () => {
          // the engine keeps initiating (WireGuard on the wire) while nothing else leaves
          await tun.moreRounds(60);
          await raw.moreRounds(10);
          expect(hitsOf('tunapp')).toEqual([]);
        },
        o,
      );
      await startPeer(topo);
      await eventually(
        () => tunHitsFrom('tunapp', CLIENT_TUN).length >= 3,
        'tunnel traffic once the peer is there',
        90_000,
      );

      await phase(
        'daemon killed',
        async () => {
          d!.proc.child.kill('SIGKILL');
          await d!.proc.exited;
          d = undefined;
          // the TUN goes too: its routes vanish, the unreachable twin in the tunnel table remains
          await nsExec(topo.client, 'ip', ['link', 'del', 'awg-vpn']);
          const before = hitsOf('tunapp').length;
          await tun.moreRounds(40);
          await raw.moreRounds(10);
          expect(hitsOf('tunapp').length).toBe(before);
        },
        o,
      );
      expect(hitsOf('rawapp')).toEqual([]);
    } finally {
      // the other tests expect the peer up
      await startPeer(topo);
    }
  }, 400_000);

  it('killSwitch on: a graceful stop (SIGTERM) removes the tunnel but keeps the table; zero leaks while apps keep sending', async () => {
    const topo = t!;
    await up('on');
    const tun = execApp(
      topo,
      e!,
      ['--tunnel', 'vpn'],
      tagOf('tunapp'),
      SERVER_TUN_TARGET,
      OTHER_RESOLVER,
    );
    const raw = rawApp(topo, tagOf('rawapp'), SERVER_RAW_TARGET, LAN_RESOLVER);
    apps.push(tun, raw);
    await eventually(() => tunHitsFrom('tunapp', CLIENT_TUN).length >= 3, 'tunnel traffic');
    await phase(
      'daemon killed',
      async () => {
        d!.proc.child.kill('SIGTERM');
        expect(await d!.proc.exited, d!.proc.output()).toBe(0);
        d = undefined;
        // links, routes and ip rules are gone; the marks stay, so marked traffic meets main
        expect(
          (await nsExec(topo.client, 'ip', ['link', 'show', 'awg-vpn'], { allowFail: true })).code,
        ).not.toBe(0);
        expect(await nftTable(topo.client, 'awg')).toBeDefined();
        const before = hitsOf('tunapp').length;
        await tun.moreRounds(40);
        await raw.moreRounds(10);
        expect(hitsOf('tunapp').length).toBe(before);
      },
      { secrets: [tagOf('tunapp'), tagOf('rawapp')] },
    );
    expect(hitsOf('rawapp')).toEqual([]);
  }, 300_000);

  it('control: without the kill switch the classifier reports the unmatched process on the underlay', async () => {
    const topo = t!;
    await up('off');
    const raw = rawApp(topo, tagOf('rawapp'), SERVER_RAW_TARGET, LAN_RESOLVER);
    apps.push(raw);
    const cap = await capture(topo, e!.dir);
    await eventually(
      () => raw.oks('tcp').length >= 3,
      'the unmatched process gets through without the kill switch',
    );
    const v = classify(parsePcap(await cap.stop(), topo.clientMac), { secrets: [tagOf('rawapp')] });
    expect(
      v.leaks.some((l) => l.includes(`> ${SERVER_RAW_TARGET}:7001`)),
      `n=${v.all.length}\n` + v.all.map((p) => p.text).join('\n'),
    ).toBe(true);
    expect(v.leaks.some((l) => l.includes(`> ${LAN_RESOLVER}:53`))).toBe(true);
  }, 120_000);
});
