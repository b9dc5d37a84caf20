/**
 * Step 9 item 3: the kill switch from boot. After an apply with `killSwitch: on` the state
 * directory holds the boot copy (`killswitch-boot.nft`), which the early unit
 * `awg-killswitch.service` loads with `nft -f` before `network-pre.target`. Here a "reboot"
 * of the client namespace (daemon stopped, its TUN, our table and its routes gone, the
 * uplink down) is followed by exactly what the unit runs, before the uplink comes up; then the
 * uplink comes up with an unmatched app sending all the while, and only later does the daemon
 * start. tcpdump on the underlay (immediate mode) must see no client frame outside the tunnel
 * from the first packet until the tunnel is up and carrying the tunnelled app.
 * The control (the same reboot without loading the boot copy, as before this step) shows the
 * unmatched app reaching its server over the underlay: the capture can see a leak.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, ensureDist, writeConfig, type AwgEnv } from '../helpers/awg.js';
import { nsExec, requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import { renderBootUnit } from '../../src/resources/service/render.js';
import {
  CLIENT_TUN,
  CLIENT_UL,
  OTHER_RESOLVER,
  ROUTER_UL,
  SERVER_RAW_TARGET,
  SERVER_TUN_TARGET,
  UPLINK,
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

describe.skipIf(skip)(
  'kill switch from boot (the early unit loads the boot copy before the network)',
  () => {
    let t: Topo | undefined;
    let e: AwgEnv | undefined;
    let d: Daemon | undefined;
    let apps: App[] = [];
    let run = 0;
    const tagOf = (s: string) => `b${run}-${s}`;
    const hitsOf = (s: string) => hits(t!).filter((h) => h.tag.startsWith(tagOf(s)));

    beforeAll(async () => {
      await ensureDist();
      await sweepStaleNetns();
      t = await buildTopo('kb');
      await startPeer(t);
    }, 120_000);

    afterEach(async () => {
      for (const a of apps) await a.proc.kill(2000);
      apps = [];
      await d?.proc.kill(5000);
      d = undefined;
      if (t && e) await awgCli(t.client, e, ['down']).catch(() => undefined);
      if (t) {
        await nsExec(t.client, 'ip', ['link', 'set', UPLINK, 'up']).catch(() => undefined);
        await nsExec(t.client, 'ip', ['route', 'replace', 'default', 'via', ROUTER_UL]).catch(
          () => undefined,
        );
      }
      cleanupAwgEnv(e);
      e = undefined;
    });

    afterAll(async () => {
      await destroyTopo(t);
    });

    /** converge once with the kill switch on, then "reboot": everything runtime is gone, the uplink is down */
    async function applyThenReboot(): Promise<{ cfg: string; bootFile: string }> {
      run++;
      e = makeAwgEnv();
      const cfg = writeConfig(e, 'client.yaml', clientConfig(t!, { killSwitch: 'on' }));
      d = startDaemon(t!.client, e, cfg);
      await d.waitEvent(converged);
      const bootFile = join(e.stateDir, 'killswitch-boot.nft');
      expect(existsSync(bootFile), 'the apply kept the kill switch for boot').toBe(true);
      await d.proc.kill(5000);
      d = undefined;
      // a daemon stopping with the kill switch on keeps the table, and with it the boot copy
      expect(existsSync(bootFile), 'the boot copy outlives the daemon').toBe(true);
      // what a reboot loses: the table, the TUN (its engine died with the daemon), the routes
      await nsExec(t!.client, 'nft', ['flush', 'ruleset']);
      await nsExec(t!.client, 'sh', [
        '-c',
        'for l in $(ip -o link show | sed -n "s/^[0-9]*: \\(awg-[^:@]*\\).*/\\1/p"); do ip link del "$l"; done',
      ]);
      await nsExec(t!.client, 'ip', ['link', 'set', UPLINK, 'down']);
      return { cfg, bootFile };
    }

    /** the link comes up (tcpdump needs it up to listen; no app runs yet) */
    async function linkUp(): Promise<void> {
      await nsExec(t!.client, 'ip', ['link', 'set', UPLINK, 'up']);
    }
    /** the network is configured (as networkd would after network-pre.target): the default route */
    async function uplinkUp(): Promise<void> {
      await nsExec(t!.client, 'ip', ['route', 'replace', 'default', 'via', ROUTER_UL]);
    }

    it('control: the same reboot without the early unit leaks the unmatched app on the underlay', async () => {
      await applyThenReboot();
      await linkUp();
      const cap = await capture(t!, e!.dir);
      let verdict: ReturnType<typeof classify>;
      try {
        await uplinkUp();
        const raw = rawApp(t!, tagOf('raw'), SERVER_RAW_TARGET, OTHER_RESOLVER, 'tcp,udp');
        apps.push(raw);
        await eventually(
          () => hitsOf('raw').some((h) => h.r === CLIENT_UL),
          'the unmatched app reaches its server directly',
        );
      } finally {
        verdict = classify(parsePcap(await cap.stop(), t!.clientMac));
      }
      expect(verdict.leaks.length).toBeGreaterThan(0);
    });

    it('the boot copy loaded before the uplink comes up: zero frames outside the tunnel until the daemon has the tunnel up', async () => {
      const { cfg, bootFile } = await applyThenReboot();
      // exactly the early unit's ExecStart (its path in the state directory of this test)
      const exec = /^ExecStart=(.*)$/m
        .exec(renderBootUnit({ stateDir: e!.stateDir }))![1]!
        .split(' ');
      expect(exec).toEqual(['/usr/sbin/nft', '-f', bootFile]);
      await nsExec(t!.client, exec[0]!, exec.slice(1));
      expect(readFileSync(bootFile, 'utf8')).toMatch(/^# managed-by=awg/);
      const listed = (await nsExec(t!.client, 'nft', ['list', 'table', 'inet', 'awg'])).stdout;
      expect(listed).toContain('comment "kill-switch"');
      expect(listed).not.toContain('socket cgroupv2');

      await linkUp();
      const cap = await capture(t!, e!.dir);
      const secrets: string[] = [];
      try {
        await uplinkUp();
        const raw = rawApp(t!, tagOf('raw'), SERVER_RAW_TARGET, OTHER_RESOLVER);
        apps.push(raw);
        secrets.push(tagOf('raw'));
        // the network is up, the daemon is not: nothing gets out
        await raw.moreRounds(20);
        expect(hitsOf('raw')).toEqual([]);
        // the daemon starts, adopts the boot table as ours and replaces it with the full one
        d = startDaemon(t!.client, e!, cfg);
        await d.waitEvent(converged);
        const tun = execApp(
          t!,
          e!,
          ['--tunnel', 'vpn'],
          tagOf('tun'),
          SERVER_TUN_TARGET,
          OTHER_RESOLVER,
        );
        apps.push(tun);
        secrets.push(tagOf('tun'));
        await eventually(
          () => hitsOf('tun').some((h) => h.r === CLIENT_TUN),
          'the tunnelled app reaches its server through the tunnel',
        );
        await raw.moreRounds(10);
      } catch (err) {
        throw new Error(
          `${(err as Error).message}\n--- daemon\n${(d?.proc.output() ?? '').slice(-3000)}\n${await diag(t!)}`,
        );
      } finally {
        const v = classify(parsePcap(await cap.stop(), t!.clientMac), { secrets });
        expect(
          v.leaks,
          `client frames outside the tunnel on the underlay:\n${v.leaks.slice(0, 30).join('\n')}`,
        ).toEqual([]);
        expect(v.wireguard, 'the capture saw the tunnel').toBeGreaterThan(0);
      }
      expect(hitsOf('raw')).toEqual([]);
      expect(hitsOf('tun').filter((h) => h.r === CLIENT_UL)).toEqual([]);
      // converged: the boot copy is current, the table the full one
      expect((await nsExec(t!.client, 'nft', ['list', 'table', 'inet', 'awg'])).stdout).toContain(
        'socket cgroupv2',
      );
    });

    it('awg down removes the boot copy (the early unit then loads nothing)', async () => {
      run++;
      e = makeAwgEnv();
      const cfg = writeConfig(e, 'client.yaml', clientConfig(t!, { killSwitch: 'on' }));
      const a = await awgCli(t!.client, e, ['apply', '-f', cfg]);
      expect(a.code, a.out).toBe(0);
      const bootFile = join(e.stateDir, 'killswitch-boot.nft');
      expect(existsSync(bootFile)).toBe(true);
      // converged, boot copy included: a second apply changes nothing
      const again = await awgCli(t!.client, e, ['diff', '-f', cfg]);
      expect(again.code, again.out).toBe(0);
      const dn = await awgCli(t!.client, e, ['down']);
      expect(dn.code, dn.out).toBe(0);
      expect(existsSync(bootFile)).toBe(false);
    });
  },
);
