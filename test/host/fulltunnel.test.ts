/**
 * The repository's full-tunnel example on a booted Debian 12 host, installed from the .deb as
 * the README says: DNS through the tunnel where systemd-resolved owns it, the boot kill switch
 * from the first frame of a reboot, and `apt remove` leaving nothing of ours.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/awg.js';
import { Capture } from './capture.js';
import { ensureDeb, requireHostPrereqs } from './deb.js';
import { HTTP_PORT, Host, LAN, Lab, VPN, until } from './lab.js';

const skip = requireHostPrereqs();
const CONFIG = '/etc/awg/config.yaml';

/**
 * An app that talks from early in every boot (ordered with NetworkManager): each 200 ms a
 * lookup of a fresh name through the system resolver and an HTTP request to the LAN. With the
 * kill switch closed none of it may reach the wire; without it the capture sees it (the
 * control at the end).
 */
const CHATTY = `[Unit]
Description=an app that talks from early in the boot
After=network-pre.target
[Service]
ExecStart=/bin/sh -c 'i=0; while :; do i=$((i+1)); getent hosts chatty-$i.example.org; curl -s --max-time 1 http://${LAN.router}:${HTTP_PORT}/chatty-$i; sleep 0.2; done'
[Install]
WantedBy=multi-user.target
`;

/** what a host shows of its network and resolver: equal before install and after removal */
async function hostState(host: Host): Promise<Record<string, string>> {
  const out = async (argv: string[]) => (await host.run(argv, { allowFail: true })).stdout;
  return {
    // the veth's peer index changes with every boot's fresh namespace
    links: (await out(['ip', '-br', 'link'])).replace(/@if\d+/g, '').replace(/\s+/g, ' '),
    rules4: await out(['ip', '-4', 'rule']),
    rules6: await out(['ip', '-6', 'rule']),
    routes4: await out(['ip', '-4', 'route', 'show', 'table', 'all']),
    nft: await out(['nft', 'list', 'ruleset']),
    // resolved's settings (its status also shows runtime state: the server last used)
    resolved: (
      await Promise.all(
        ['dns', 'domain', 'default-route', 'dnssec', 'dnsovertls', 'llmnr'].map((k) =>
          out(['resolvectl', k]),
        ),
      )
    ).join(''),
    resolvConf: await out(['readlink', '/etc/resolv.conf']),
  };
}

describe.skipIf(skip)('full tunnel on a booted Debian 12 host', () => {
  let lab: Lab;
  let host: Host;
  let before: Record<string, string>;
  beforeAll(async () => {
    const deb = await ensureDeb();
    lab = await Lab.create('ft');
    host = await Host.boot(lab);
    before = await hostState(host);
    await host.installDeb(deb);
  });
  afterAll(async () => {
    await host?.destroy();
    await lab?.destroy();
  });

  const viaTunnel = () => host.viaTunnel();

  it('applies the repository example as written: traffic and DNS through the tunnel', async () => {
    const example = readFileSync(join(REPO_ROOT, 'examples/wireguard-full-tunnel.yaml'), 'utf8');
    host.write(CONFIG, lab.fullTunnelConfig(example), 0o600);
    host.write('/etc/awg/keys/home.key', lab.keys.host.privateKey + '\n', 0o600);
    const r = await host.run(['awg', 'apply', '-f', CONFIG], { allowFail: true });
    expect(r.code, r.out).toBe(0);
    await until('the tunnel to carry traffic', viaTunnel, 30_000, 250);
    // a name no resolver has seen: answered by the tunnel's resolver (every name → its address)
    const q = await host.run(['getent', 'ahostsv4', 'probe-1.example.org'], { allowFail: true });
    expect(q.stdout, q.out).toContain(VPN.peer);
    expect(lab.queries('vpn')).toContain('probe-1.example.org');
    expect(lab.queries('lan')).not.toContain('probe-1.example.org');
    const d = await host.run(['awg', 'diff', '-f', CONFIG], { allowFail: true });
    expect(d.code, d.out).toBe(0);
  });

  it('reboot, systemctl restart, stop and start: the kill switch holds from the first frame, the tunnel comes back', async () => {
    host.write('/etc/systemd/system/chatty.service', CHATTY);
    await host.run(['systemctl', 'enable', 'chatty.service']);
    await host.run(['systemctl', 'enable', 'awg-killswitch.service', 'awg.service']);
    await host.run(['systemctl', 'start', 'awg.service']);
    const cap = await Capture.start(lab.ns);
    await host.reboot();
    await until('the tunnel after the reboot', viaTunnel, 60_000, 250);
    // restart and stop the daemon under the same capture: the kill switch stays closed
    await host.run(['systemctl', 'restart', 'awg.service']);
    await until('the tunnel after a restart', viaTunnel, 60_000, 250);
    await host.run(['systemctl', 'stop', 'awg.service']);
    expect(await viaTunnel()).toBe(false);
    const kept = await host.run(['nft', 'list', 'table', 'inet', 'awg'], { allowFail: true });
    expect(kept.code, 'the kill switch table after systemctl stop').toBe(0);
    await host.run(['systemctl', 'start', 'awg.service']);
    await until('the tunnel after a start', viaTunnel, 60_000, 250);
    const frames = await cap.stop();
    expect(frames.some((f) => f.allowed === 'dhcp')).toBe(true);
    expect(frames.some((f) => f.allowed === 'wireguard')).toBe(true);
    expect(frames.filter((f) => !f.allowed).map((f) => f.line)).toEqual([]);
    // the previous boot's stop of the daemon (at shutdown, with D-Bus and resolved stopping too)
    const stop = await host.journal(['-u', 'awg.service'], -1);
    expect(stop).toMatch(/Stopped awg\.service/);
    expect(stop).not.toMatch(/unknown state|Failed with result|status=\d*\/[A-Z]/);
  });

  it('awg apply run by a systemd service (as a timer runs it) leaves its tunnel up when the service ends', async () => {
    // the daemon stopped (the kill switch stays): apply alone starts a detached engine, which
    // systemd would kill with the service's cgroup unless it has a scope of its own
    await host.run(['systemctl', 'stop', 'awg.service']);
    const r = await host.enter(
      ['systemd-run', '--wait', '--pipe', '--collect', '--quiet', 'awg', 'apply', '-f', CONFIG],
      { allowFail: true, timeoutMs: 120_000 },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await until('the tunnel after the service ended', viaTunnel, 30_000, 250);
    const scopes = await host.run(['systemctl', 'list-units', '--type=scope', '--no-legend']);
    expect(scopes.stdout).toMatch(/awg engine home/);
  });

  it('apt remove: no link, rule, table or resolver setting of ours; the host resolves and connects directly again', async () => {
    const r = await host.run(['apt-get', 'remove', '-y', '-q', 'awg'], {
      env: { DEBIAN_FRONTEND: 'noninteractive' },
      timeoutMs: 300_000,
    });
    expect(r.code, r.out).toBe(0);
    const after = await hostState(host);
    expect(after).toEqual(before);
    const lan = await host.run([
      'curl',
      '-sS',
      '--max-time',
      '5',
      `http://${LAN.router}:${HTTP_PORT}/x`,
    ]);
    expect(lan.stdout).toBe('lan /x\n');
    const q = await host.run(['getent', 'ahostsv4', 'www.lan.test'], { allowFail: true });
    expect(q.stdout, q.out).toContain(LAN.router);
    // the control: without awg the same reboot puts the app's traffic on the wire
    const cap = await Capture.start(lab.ns);
    await host.reboot();
    const chatty = await cap.waitFor(
      'the app on the wire',
      (f) => /chatty-/.test(f.line) || /\.53: /.test(f.line),
    );
    await cap.stop();
    expect(chatty.allowed).toBeUndefined();
  });
});
