/**
 * systemd-resolved and NetworkManager on a booted Debian 12 host (systemd 252), with awg from
 * the .deb running as awg.service and the repository's full-tunnel example
 * (`dns.system: default-tunnel`):
 * - the default tunnel's link gets the tunnel's resolver, `~.` and default-route yes, and
 *   names are answered through the tunnel (the tunnel's resolver answers every name with the
 *   peer's address; the LAN's knows only lan.test);
 * - a name under the LAN link's own search domain (given by NetworkManager), which resolved
 *   still sends to the LAN's resolver, never leaves by the LAN (the capture on the lab bridge
 *   sees no port-53 frame of the host);
 * - `nmcli con up` and a resolved that restarted without its saved link state do not leave
 *   ours undone: the daemon runs on the system-bus signal (a run woken as `system`), long
 *   before its drift timer (30 s);
 * - `awg down` leaves `resolvectl status` exactly as it was before awg ran.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/awg.js';
import { Capture } from './capture.js';
import { ensureDeb, requireHostPrereqs } from './deb.js';
import { Host, Lab, VPN, until } from './lab.js';

const skip = requireHostPrereqs();
const CONN = 'Wired connection 1';
/** the daemon's drift timer (loop DEFAULTS.driftMs): a re-assertion sooner than this came from a wake */
const DRIFT_MS = 30_000;

describe.skipIf(skip)('systemd-resolved on a booted Debian 12 host', () => {
  let lab: Lab;
  let host: Host;
  let before = '';

  const status = async () => (await host.run(['resolvectl', 'status', '--no-pager'])).stdout;
  /** awg-home's DNS settings as resolved holds them, one line each */
  const ours = async () => {
    const r = await host.sh(
      'resolvectl dns awg-home; resolvectl domain awg-home; resolvectl default-route awg-home',
      { allowFail: true },
    );
    return r.stdout;
  };
  const asserted = (s: string) =>
    s.includes(`awg-home): ${VPN.peer}`) &&
    s.includes('awg-home): ~.') &&
    /awg-home\): yes/.test(s);
  /** the awg.service journal lines of runs woken by the system bus */
  const systemRuns = async () =>
    (await host.journal(['-u', 'awg.service']))
      .split('\n')
      .filter((l) => /reconcile \S+ \(system\)/.test(l));

  beforeAll(async () => {
    const deb = await ensureDeb();
    lab = await Lab.create('dnsr');
    host = await Host.boot(lab);
    await host.installDeb(deb);
    before = await status();
    const example = readFileSync(join(REPO_ROOT, 'examples/wireguard-full-tunnel.yaml'), 'utf8');
    host.write('/etc/awg/keys/home.key', `${lab.keys.host.privateKey}\n`, 0o600);
    host.write('/etc/awg/awg.yaml', lab.fullTunnelConfig(example));
    // the packaged unit runs the daemon without a config: it takes one through its API
    await host.run(['systemctl', 'start', 'awg.service']);
    await host.run(['awg', 'apply', '-f', '/etc/awg/awg.yaml']);
    await until('the full tunnel to converge', async () => asserted(await ours()), 90_000, 250);
  }, 600_000);

  afterAll(async () => {
    await host?.destroy();
    await lab?.destroy();
  });

  it('applies dns.system: default-tunnel as written: servers, `~.`, default-route yes on awg-home', async () => {
    const s = await status();
    expect(s).toMatch(
      /Link \d+ \(awg-home\)[\s\S]*\+DefaultRoute[\s\S]*DNS Servers: 10\.200\.232\.1/,
    );
    expect(s).toMatch(/\(awg-home\)[\s\S]*DNS Domain: ~\./);
    // DNSSEC and DNS over TLS are not set per link (the global settings apply): resolved
    // saves what was set on a link in /run/systemd/resolve/netif/<ifindex>
    const idx = (await host.run(['cat', '/sys/class/net/awg-home/ifindex'])).stdout.trim();
    const saved = (await host.run(['cat', `/run/systemd/resolve/netif/${idx}`])).stdout;
    expect(saved).toContain(`SERVERS=${VPN.peer}`);
    expect(saved).toMatch(/^DEFAULT_ROUTE=yes$/m);
    expect(saved).not.toMatch(/^(DNSSEC|DNS_OVER_TLS|DNSSEC_NTA)=/m);
  });

  it('answers names through the tunnel; a LAN-domain name never reaches the LAN resolver', async () => {
    // NetworkManager gives the LAN link a search domain: resolved routes *.lan.test there
    await host.run(['nmcli', 'con', 'mod', CONN, 'ipv4.dns-search', 'lan.test']);
    await host.run(['nmcli', 'con', 'up', CONN]);
    await until('the LAN link to carry lan.test', async () =>
      (await host.run(['resolvectl', 'domain'])).stdout.includes('lan.test'),
    );
    await until('awg-home to be asserted after the reconnect', async () => asserted(await ours()));
    const lanBefore = lab.queries('lan').length;
    const c = await Capture.start(lab.ns);
    const q = await host.run(['resolvectl', 'query', '--cache=no', 'www.example.org']);
    expect(q.stdout).toContain(VPN.peer);
    const g = await host.run(['getent', 'ahostsv4', 'host.example.net']);
    expect(g.stdout).toContain(VPN.peer);
    expect(lab.queries('vpn')).toEqual(
      expect.arrayContaining(['www.example.org', 'host.example.net']),
    );
    // resolved sends this one to the LAN link's resolver (the longer routing domain wins over
    // `~.`): the firewall keeps it from leaving by the LAN, so it fails instead of leaking
    // dropped, so resolved would retry for two minutes: 15 s of it show nothing leaves
    const lan = await host.run(
      ['timeout', '15', 'resolvectl', 'query', '--cache=no', 'printer.lan.test'],
      { allowFail: true },
    );
    expect(lan.code).not.toBe(0);
    const frames = await c.stop();
    expect(frames.filter((f) => /\.53: /.test(f.line))).toEqual([]);
    expect(frames.filter((f) => !f.allowed)).toEqual([]);
    expect(lab.queries('lan').slice(lanBefore)).toEqual([]);
  });

  it('without the kill switch and leak protection, the LAN-domain query still never leaves by the LAN', async () => {
    const cfg = host.path('/etc/awg/awg.yaml');
    host.write(
      '/etc/awg/awg.yaml',
      readFileSync(cfg, 'utf8')
        .replace('killSwitch: on', 'killSwitch: off')
        .replace('leakProtection: true', 'leakProtection: false'),
    );
    await host.run(['awg', 'apply', '-f', '/etc/awg/awg.yaml']);
    await until(
      'the daemon to follow the config',
      async () => {
        const t = (await host.run(['nft', 'list', 'table', 'inet', 'awg'])).stdout;
        return !t.includes('"kill-switch"') && t.includes('"dns-outside-tunnel"');
      },
      60_000,
      250,
    );
    const lanBefore = lab.queries('lan').length;
    const c = await Capture.start(lab.ns);
    // dropped, so resolved would retry for two minutes: 15 s of it show nothing leaves
    const lan = await host.run(
      ['timeout', '15', 'resolvectl', 'query', '--cache=no', 'printer.lan.test'],
      { allowFail: true },
    );
    expect(lan.code).not.toBe(0);
    expect(
      (await host.run(['resolvectl', 'query', '--cache=no', 'www.example.com'])).stdout,
    ).toContain(VPN.peer);
    const frames = await c.stop();
    expect(frames.filter((f) => /\.53: /.test(f.line))).toEqual([]);
    expect(lab.queries('lan').slice(lanBefore)).toEqual([]);
    // resolved did send it towards the LAN's resolver: the guard (systemDnsInTunnel) dropped it
    const rerouted = (await host.run(['nft', 'list', 'chain', 'inet', 'awg', 'rerouted'])).stdout;
    const dropped = /counter packets (\d+) .* comment "dns-outside-tunnel"/.exec(rerouted);
    expect(Number(dropped?.[1] ?? 0)).toBeGreaterThan(0);
  });

  it('`nmcli con up` does not leave ours undone, and wakes the daemon on the signal', async () => {
    const runs = (await systemRuns()).length;
    const t0 = Date.now();
    await host.run(['nmcli', 'con', 'up', CONN]);
    await until('a run woken by the system bus', async () => (await systemRuns()).length > runs);
    expect(Date.now() - t0).toBeLessThan(DRIFT_MS);
    expect(asserted(await ours())).toBe(true);
  });

  it('a resolved that restarted without its saved link state gets ours back on NameOwnerChanged', async () => {
    const idx = (await host.run(['cat', '/sys/class/net/awg-home/ifindex'])).stdout.trim();
    // systemd 252 keeps runtime link settings in /run/systemd/resolve/netif across a restart;
    // without that file it comes back with nothing on our link
    await host.sh(
      `systemctl stop systemd-resolved && rm -f /run/systemd/resolve/netif/${idx} && systemctl start systemd-resolved`,
    );
    const t0 = Date.now();
    const runs = (await systemRuns()).length;
    await until('ours re-asserted', async () => asserted(await ours()), DRIFT_MS, 100);
    expect(Date.now() - t0).toBeLessThan(DRIFT_MS);
    await until('the run woken by the system bus', async () => (await systemRuns()).length > runs);
    // a plain restart keeps them (resolved's saved state), and a run confirms
    await host.run(['systemctl', 'restart', 'systemd-resolved']);
    await until('ours after a plain restart', async () => asserted(await ours()));
  });

  it('`awg down` leaves resolvectl status exactly as before awg ran', async () => {
    await host.run(['systemctl', 'stop', 'awg.service']);
    await host.run(['awg', 'down']);
    // NetworkManager's search domain of the LAN test above is the only other change: undo it
    await host.run(['nmcli', 'con', 'mod', CONN, 'ipv4.dns-search', '']);
    await host.run(['nmcli', 'con', 'up', CONN]);
    await until('resolved as before', async () => (await status()) === before, 30_000, 250);
    expect(await status()).toBe(before);
  });
});
