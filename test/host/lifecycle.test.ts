/**
 * awg under systemd and NetworkManager on a booted Debian 12 host, installed from the .deb:
 * the packaged unit started before its config waits for /etc/awg/config.yaml and applies it
 * when it appears; NetworkManager leaves awg's link unmanaged (the package's drop-in);
 * restarting NetworkManager and bringing its connection up again keep awg's tunnel, routes,
 * rules and per-link DNS; a reboot stops awg.service before D-Bus, resolved and NM, without a
 * failure; `awg doctor` names a wg-quick@ unit enabled on the host.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/awg.js';
import type { DoctorReport } from '../../src/model/doctor.js';
import { Capture } from './capture.js';
import { ensureDeb, requireHostPrereqs } from './deb.js';
import { HTTP_PORT, Host, Lab, VPN, until } from './lab.js';

const skip = requireHostPrereqs();
const CONFIG = '/etc/awg/config.yaml';
const LINK = 'awg-home';

describe.skipIf(skip)('awg under systemd and NetworkManager on a booted Debian 12 host', () => {
  let lab: Lab;
  let host: Host;
  beforeAll(async () => {
    const deb = await ensureDeb();
    lab = await Lab.create('lc');
    host = await Host.boot(lab);
    await host.installDeb(deb);
  }, 900_000);
  afterAll(async () => {
    await host?.destroy();
    await lab?.destroy();
  });

  const viaTunnel = () => host.viaTunnel();
  /** what a failure message needs: the daemon's status and the tail of its journal */
  const diag = async () => {
    const st = await host.run(['awg', 'status'], { allowFail: true });
    const j = (await host.journal(['-u', 'awg.service'])).split('\n').slice(-40).join('\n');
    return `--- awg status (exit ${st.code})\n${st.out}\n--- journal -u awg.service\n${j}`;
  };
  /** `until`, its timeout carrying diag() */
  const waitFor = <T>(what: string, fn: () => Promise<T | undefined | false>, ms: number) =>
    until(what, fn, ms, 250).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await diag()}`);
    });
  const journalSince = async (cursorLines: number) =>
    (await host.journal(['-u', 'awg.service'])).split('\n').slice(cursorLines).join('\n');
  /** what the host has of awg that NM could take away: links, rules, our routes, per-link DNS */
  const ours = async () => {
    const [rules, routes, dns] = await Promise.all([
      host.run(['ip', '-4', 'rule', 'show']),
      host.run(['ip', '-4', 'route', 'show', 'table', 'all', 'proto', '167']),
      host.run(['resolvectl', 'dns', LINK], { allowFail: true }),
    ]);
    return {
      rules: rules.stdout.split('\n').filter((l) => /proto(col)? 167|^52\d\d:/.test(l)),
      routes: routes.stdout.trim().split('\n').sort(),
      dns: dns.stdout.trim(),
    };
  };

  it('the packaged unit, started before its config exists, waits for it, then applies it; NM leaves the link unmanaged', async () => {
    expect(existsSync(host.path('/usr/lib/NetworkManager/conf.d/awg-unmanaged.conf'))).toBe(true);
    const conf = await host.run(['NetworkManager', '--print-config']);
    expect(conf.stdout).toMatch(/^unmanaged-devices=.*interface-name:awg-\*/m);

    await host.run(['systemctl', 'enable', '--now', 'awg.service']);
    await until(
      'the daemon to say what it waits for',
      async () =>
        (await host.journal(['-u', 'awg.service'])).includes(`waiting for the config ${CONFIG}`),
      60_000,
      250,
    );
    const waiting = await host.run(['awg', 'status'], { allowFail: true });
    expect(waiting.out).toMatch(/does not exist yet/);

    const example = readFileSync(join(REPO_ROOT, 'examples/wireguard-full-tunnel.yaml'), 'utf8');
    host.write('/etc/awg/keys/home.key', lab.keys.host.privateKey + '\n', 0o600);
    // dns.system keep: the tunnel's resolver on awg-home in resolved with default-route no (the
    // per-link DNS NetworkManager would wipe); default-tunnel is test/host/resolved.test.ts's
    const config = lab
      .fullTunnelConfig(example)
      .replace(/^( {2}system:) default-tunnel$/m, '$1 keep');
    expect(config).toMatch(/^ {2}system: keep$/m);
    host.write(CONFIG, config, 0o600);
    const st = await waitFor(
      'awg status: converged',
      async () => {
        const r = await host.run(['awg', 'status'], { allowFail: true });
        return r.code === 0 && r;
      },
      60_000,
    );
    expect(st.out).toMatch(/config: valid/);
    await waitFor('the tunnel to carry traffic', viaTunnel, 30_000);

    const dev = await host.run(['nmcli', '-t', '-f', 'DEVICE,STATE', 'device']);
    expect(dev.stdout.split('\n')).toContain(`${LINK}:unmanaged`);
  });

  it('systemctl restart NetworkManager and nmcli con up keep the tunnel, routes, rules and per-link DNS (awg diff exit 0)', async () => {
    const before = await ours();
    expect(before.dns).toContain(VPN.peer);
    const mark = (await host.journal(['-u', 'awg.service'])).split('\n').length;

    await host.run(['systemctl', 'restart', 'NetworkManager.service']);
    await host.run(['nm-online', '-s', '-q', '-t', '60']);
    const con = await host.run([
      'nmcli',
      '-t',
      '-f',
      'NAME,DEVICE',
      'connection',
      'show',
      '--active',
    ]);
    const eth = con.stdout.split('\n').find((l) => l.endsWith(':eth0'));
    expect(eth, con.out).toBeDefined();
    const name = eth!.slice(0, -':eth0'.length).replace(/\\:/g, ':');
    await host.run(['nmcli', 'connection', 'up', name]);
    await host.run(['nm-online', '-q', '-t', '60']);
    await waitFor('the tunnel to carry traffic', viaTunnel, 30_000);

    expect(await ours()).toEqual(before);
    const d = await host.run(['awg', 'diff', '-f', CONFIG], { allowFail: true });
    expect(d.code, d.out).toBe(0);
    const nm = await host.run(['nmcli', '-t', '-f', 'DEVICE,STATE', 'device']);
    expect(nm.stdout.split('\n')).toContain(`${LINK}:unmanaged`);
    // nothing of ours was taken away and put back behind the test's back
    expect(await journalSince(mark)).not.toMatch(/drift (found|repaired)/);
  });

  it("NetworkManager's connectivity check, a root process bound to eth0, does not leave outside the tunnel under the kill switch", async () => {
    const conf = '/etc/NetworkManager/conf.d/90-lfc-connectivity.conf';
    host.write(
      conf,
      `[connectivity]\nuri=http://${VPN.peer}:${HTTP_PORT}/nm-check\nresponse=vpn\n`,
    );
    await host.run(['nmcli', 'general', 'reload', 'conf']);
    const cap = await Capture.start(lab.ns);
    try {
      const r = await host.run(['nmcli', 'networking', 'connectivity', 'check']);
      // NM checks per device with its socket bound to the device (curl's `if!eth0`): the route
      // lookup skips the tunnel's table, the packet meets the kill switch on eth0 and is dropped;
      // NM then calls the connectivity "limited" (docs/platform-linux.md)
      expect(r.stdout.trim()).toBe('limited');
      await waitFor('the tunnel to carry traffic', viaTunnel, 30_000);
      expect(
        cap
          .fromHost()
          .filter((f) => !f.allowed)
          .map((f) => f.line),
      ).toEqual([]);
    } finally {
      await cap.stop();
      await host.run(['rm', '-f', conf]);
      await host.run(['nmcli', 'general', 'reload', 'conf']);
    }
  });

  it('systemctl reboot: awg.service stopped before D-Bus, resolved and NetworkManager, without a failure; it comes back', async () => {
    await host.reboot();
    await waitFor('the tunnel after the reboot', viaTunnel, 90_000);
    const stop = await host.journal(['-u', 'awg.service'], -1);
    expect(stop).toMatch(/Stopped awg\.service/);
    // the stop itself: it still reached resolved (the per-link DNS reverted), nothing failed
    const stopping = stop.slice(stop.indexOf('SIGTERM: stopping'));
    // (over resolved's D-Bus API; resolvectl where busctl is missing)
    expect(stopping).toMatch(
      /\[#\] (busctl call org\.freedesktop\.resolve1 .* RevertLink i \d+|resolvectl revert awg-home)/,
    );
    expect(stopping).not.toMatch(
      /"level":(50|60)|unknown state|Failed with result|status=\d*\/[A-Z]/,
    );
    expect(stop).toMatch(/stopped: removed \d+ object\(s\); the kill switch stays/);
    // the stop's order in the previous boot: awg before the services its teardown talks to
    // (each unit's last stop message, on the monotonic clock of that boot)
    const stopped = async (unit: string) => {
      const lines = (await host.journal(['-u', unit, '-o', 'short-monotonic'], -1))
        .split('\n')
        .filter((l) => /Stopped|Deactivated successfully/.test(l));
      const m = /^\[\s*([\d.]+)\]/.exec(lines.at(-1) ?? '');
      return m ? Number(m[1]) : undefined;
    };
    const awgAt = await stopped('awg.service');
    expect(awgAt).toBeDefined();
    const others = {
      'dbus.service': await stopped('dbus.service'),
      'systemd-resolved.service': await stopped('systemd-resolved.service'),
      'NetworkManager.service': await stopped('NetworkManager.service'),
    };
    expect(
      Object.values(others).filter((t) => t !== undefined).length,
      JSON.stringify(others),
    ).toBeGreaterThan(0);
    for (const [unit, t] of Object.entries(others))
      if (t !== undefined)
        expect(awgAt, `${unit} stopped at ${t}, awg.service at ${awgAt}`).toBeLessThanOrEqual(t);
  });

  it('awg doctor names a wg-quick@ unit enabled on the host, with what to do', async () => {
    // a stand-in of wireguard-tools' template (the host has none): enabling an instance is what counts
    host.write(
      '/etc/systemd/system/wg-quick@.service',
      '[Unit]\nDescription=WireGuard via wg-quick(8) for %I (stand-in)\n[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n',
    );
    await host.run(['systemctl', 'daemon-reload']);
    await host.run(['systemctl', 'enable', 'wg-quick@wg9.service']);
    const r = await host.run(['awg', 'doctor', '--json'], { allowFail: true });
    expect(r.code, r.out).toBe(2);
    const rep = JSON.parse(r.stdout) as DoctorReport;
    expect(rep.findings).toContainEqual(
      expect.objectContaining({
        id: 'wg-quick-unit',
        severity: 'warning',
        subject: 'wg-quick@wg9.service',
        fix: 'systemctl disable --now wg-quick@wg9.service; `awg import` converts its config',
      }),
    );
    // the rest of this host is as the package sets it up (`systemctl enable awg` enabled the
    // kill switch's boot unit too): nothing else, nothing skipped
    expect(rep.findings.map((f) => f.id)).toEqual(['wg-quick-unit']);
    expect(rep.skipped).toEqual([]);
    await host.run(['systemctl', 'disable', 'wg-quick@wg9.service']);
  });
});
