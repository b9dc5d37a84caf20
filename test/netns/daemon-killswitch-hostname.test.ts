/**
 * A host-name endpoint under the kill switch, across `kill -9` of the daemon, against the real
 * kernel (issue 12, item 5). The name is served by a DNS server in another namespace (not
 * /etc/hosts); the daemon runs in a private mount namespace whose /etc/resolv.conf points at
 * it, so the system resolver (getaddrinfo) really uses it.
 *
 *   client ──uplink── router ──── peer 10.200.2.2 (the endpoint, `awg apply`)
 *                          └────── server 10.200.4.54 (DNS: vpn-endpoint.awg.test → 10.200.2.2)
 *
 * - first start: the tunnel comes up (the engine resolves the name although the kill switch,
 *   installed before it, drops getaddrinfo's unmarked queries);
 * - `kill -9`, restart: the tunnel comes back; the name was looked up again through the
 *   bypass-marked direct path (the DNS server saw the query) and the table admits exactly
 *   that (`endpoint-dns`);
 * - `kill -9`, DNS server gone, restart: the tunnel comes back from the last good answer kept
 *   in the state directory.
 * - the same for a SOCKS5 proxy tunnel whose `server` is a host name (microsocks on the peer).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, ensureDist, nftTable, type AwgEnv } from '../helpers/awg.js';
import {
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import {
  CLIENT_TUN,
  ENDPOINT,
  PEER_TUN,
  SERVER_TUN_TARGET,
  WG_PORT,
  awgCli,
  buildTopo,
  converged,
  destroyTopo,
  eventually,
  hits,
  startDaemon,
  startPeer,
  waitOutput,
  type Daemon,
  type Topo,
} from './leak-support.js';
import { DNS_ZONE_SERVER } from './dns-zone-server.js';

const skip = requireNetnsPrereqs(['nft', 'unshare', 'mount', 'ping', 'microsocks']);

const DNS_ADDR = '10.200.4.54';
const NAME = 'vpn-endpoint.awg.test';
const PROXY_NAME = 'socks.awg.test';

/** the test DNS server (dns-zone-server.ts): A records by name from a zone file */
const DNS_SERVER = DNS_ZONE_SERVER;

function clientConfig(t: Topo): string {
  return `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${t.keys.client.privateKey}"
    addresses: [${CLIENT_TUN}/24]
    peers:
      - publicKey: "${t.keys.peer.publicKey}"
        endpoint: ${NAME}:${WG_PORT}
        allowedIPs: [10.200.50.0/24]
        persistentKeepalive: 2
killSwitch: on
`;
}

describe.skipIf(skip)('kill switch + host-name endpoint across kill -9 of the daemon', () => {
  let t: Topo | undefined;
  let e: AwgEnv | undefined;
  let dns: NsProcess | undefined;
  let d: Daemon | undefined;
  let socks: NsProcess | undefined;
  let zone: string;
  let resolvConf: string;

  const pingThrough = async () =>
    (await nsExec(t!.client, 'ping', ['-c', '1', '-W', '1', PEER_TUN], { allowFail: true }))
      .code === 0;
  const queries = (name = NAME) =>
    (dns?.output() ?? '').split('\n').flatMap((l) => {
      try {
        const j = JSON.parse(l) as { q?: string; from?: string; via?: string };
        return j.q === name ? [j] : [];
      } catch {
        return [];
      }
    });
  const startDns = async () => {
    dns = nsSpawn(t!.server, process.execPath, ['-e', DNS_SERVER, DNS_ADDR, zone]);
    await waitOutput(dns, 'listening', 'DNS server');
  };

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    t = await buildTopo('dkh');
    await startPeer(t);
    await run('ip', ['-n', t.server, 'addr', 'add', `${DNS_ADDR}/32`, 'dev', 'awgt-s-r']);
    e = makeAwgEnv();
    zone = join(e.dir, 'zone.json');
    writeFileSync(zone, JSON.stringify({ [NAME]: ENDPOINT, [PROXY_NAME]: ENDPOINT }));
    resolvConf = join(e.dir, 'resolv.private');
    writeFileSync(resolvConf, `nameserver ${DNS_ADDR}\n`);
  }, 120_000);

  beforeEach(async () => {
    if (!dns) await startDns();
  });

  afterEach(async () => {
    d?.proc.child.kill('SIGKILL');
    await d?.proc.exited;
    d = undefined;
    if (t && e) await awgCli(t.client, e, ['down']).catch(() => undefined);
  });

  afterAll(async () => {
    await dns?.kill(1000);
    await socks?.kill(1000);
    await destroyTopo(t);
    cleanupAwgEnv(e);
  });

  const killDaemon = async () => {
    d!.proc.child.kill('SIGKILL');
    await d!.proc.exited;
    d = undefined;
  };
  /** the first reconcile of a daemon started over a kept table: only the engine is created */
  const onlyTheEngine = {
    outcome: 'converged',
    summary: { create: 1, update: 0, replace: 0, delete: 0 },
  };

  it('the tunnel comes back after kill -9 and a restart: by a marked lookup, then from the last good answer', async () => {
    const cfg = join(e!.dir, 'client.yaml');
    writeFileSync(cfg, clientConfig(t!));
    const o = { resolvConf };
    const diag = async (what: string) => {
      const table = await nftTable(t!.client, 'awg');
      return `${what}\n${d?.proc.output().slice(-4000)}\n---- nft\n${table}\n---- dns\n${dns?.output()}`;
    };

    // control: the name resolves through the system resolver inside the daemon's mount namespace
    const control = await nsExec(
      t!.client,
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind "$0" /etc/resolv.conf && getent ahostsv4 "$1"',
        resolvConf,
        NAME,
      ],
      { allowFail: true },
    );
    expect(control.stdout, control.stderr).toContain(ENDPOINT);

    d = startDaemon(t!.client, e!, cfg, o);
    await d.waitEvent(converged);
    await eventually(pingThrough, 'ping through the tunnel after the first start').catch(
      async (err: Error) => {
        throw new Error(`${err.message}\n${await diag('first start')}`);
      },
    );

    // kill -9: the kill switch holds, the engine died with the daemon
    d.proc.child.kill('SIGKILL');
    await d.proc.exited;
    d = undefined;
    expect(await nftTable(t!.client, 'awg')).toContain('"kill-switch"');
    expect(await pingThrough()).toBe(false);

    // restart: getaddrinfo's queries are dropped; the bypass-marked lookup reaches the server
    const before = queries().length;
    d = startDaemon(t!.client, e!, cfg, o);
    // the table already admits the endpoint and its answer is found again: only the engine
    // (which died with the daemon) is created; the kill switch is never rewritten
    expect(
      await d.waitEvent((ev) => ev.type === 'reconcile-finished'),
      await diag('restart'),
    ).toMatchObject({
      outcome: 'converged',
      summary: { create: 1, update: 0, replace: 0, delete: 0 },
    });
    await eventually(pingThrough, 'ping through the tunnel after kill -9 and a restart').catch(
      async (err: Error) => {
        throw new Error(`${err.message}\n${await diag('restart')}`);
      },
    );
    expect(queries().length, await diag('no direct query after the restart')).toBeGreaterThan(
      before,
    );
    const table = (await nftTable(t!.client, 'awg'))!;
    expect(table).toMatch(
      new RegExp(
        `ip daddr ${DNS_ADDR.replace(/\./g, '\\.')} meta l4proto \\{ tcp, udp \\} th dport 53 .*"endpoint-dns"`,
      ),
    );
    expect(table).toContain(`ip daddr ${ENDPOINT} udp dport ${WG_PORT}`);
    const saved = join(e!.stateDir, 'resolved-endpoints.json');
    expect(existsSync(saved)).toBe(true);
    expect(JSON.parse(readFileSync(saved, 'utf8'))).toMatchObject({
      version: 1,
      resolvers: [DNS_ADDR],
      hosts: { [NAME]: { addresses: [ENDPOINT] } },
    });

    // kill -9 again with the DNS server gone: the last good answer brings the tunnel back
    d.proc.child.kill('SIGKILL');
    await d.proc.exited;
    d = undefined;
    await dns!.kill(1000);
    dns = undefined;
    expect(await pingThrough()).toBe(false);
    d = startDaemon(t!.client, e!, cfg, o);
    expect(
      await d.waitEvent((ev) => ev.type === 'reconcile-finished'),
      await diag('restart without DNS'),
    ).toMatchObject({
      outcome: 'converged',
      summary: { create: 1, update: 0, replace: 0, delete: 0 },
    });
    await eventually(pingThrough, 'ping through the tunnel from the last good answer').catch(
      async (err: Error) => {
        throw new Error(`${err.message}\n${await diag('last good')}`);
      },
    );
    expect(await nftTable(t!.client, 'awg')).toContain(`ip daddr ${ENDPOINT} udp dport ${WG_PORT}`);
  }, 240_000);
  it('a SOCKS5 proxy named by a host name: the proxy tunnel comes back after kill -9 and a restart', async () => {
    socks ??= nsSpawn(t!.peer, 'microsocks', ['-i', ENDPOINT, '-p', '1080']);
    const cfg = join(e!.dir, 'proxy.yaml');
    writeFileSync(
      cfg,
      `version: 1
tunnels:
  px:
    type: socks5
    server: ${PROXY_NAME}
    port: 1080
killSwitch: on
`,
    );
    const o = { resolvConf };
    /** one TCP exchange of an app placed in the proxy tunnel: the echo came back, and the server saw the proxy's address */
    const throughProxy = async () => {
      const id = `px-${Math.random().toString(36).slice(2, 8)}`;
      const app = [
        `const s = require('net').connect(7001, '${SERVER_TUN_TARGET}', () => s.write('${id}'));`,
        `s.on('data', (d) => { console.log('echo ' + d); s.destroy(); });`,
        `s.on('error', (e) => console.log('ERR ' + e.code));`,
        'setTimeout(() => process.exit(0), 3000).unref();',
      ].join('\n');
      const r = await awgCli(
        t!.client,
        e!,
        ['exec', '--tunnel', 'px', '--', process.execPath, '-e', app],
        o,
      );
      return r.out.includes(`echo ${id}`) && hits(t!).some((h) => h.tag === id && h.r === ENDPOINT);
    };
    const diag = async (what: string) =>
      `${what}\n${d?.proc.output().slice(-4000)}\n---- nft\n${await nftTable(t!.client, 'awg')}\n---- dns\n${dns?.output()}`;

    d = startDaemon(t!.client, e!, cfg, o);
    await d.waitEvent(converged);
    await eventually(throughProxy, 'an app through the proxy after the first start').catch(
      async (err: Error) => {
        throw new Error(`${err.message}\n${await diag('first start')}`);
      },
    );

    await killDaemon();
    const before = queries(PROXY_NAME).length;
    d = startDaemon(t!.client, e!, cfg, o);
    expect(
      await d.waitEvent((ev) => ev.type === 'reconcile-finished'),
      await diag('restart'),
    ).toMatchObject(onlyTheEngine);
    await eventually(throughProxy, 'an app through the proxy after kill -9 and a restart').catch(
      async (err: Error) => {
        throw new Error(`${err.message}\n${await diag('restart')}`);
      },
    );
    expect(queries(PROXY_NAME).length, await diag('no direct query for the proxy')).toBeGreaterThan(
      before,
    );
    expect(await nftTable(t!.client, 'awg')).toContain(`ip daddr ${ENDPOINT} tcp dport 1080`);
  }, 180_000);
});
