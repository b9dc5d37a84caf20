/**
 * Endpoint host names under the kill switch and across restarts (issue 12, item 5): the
 * lookup order (system resolver, then a bypass-marked direct lookup at the host's own
 * resolvers, then the last good answer), the last good answers kept durably in the state
 * directory, the host's resolvers as they were before awg, and the kill switch's
 * `endpoint-dns` exemption in the model. The kernel side is in
 * test/netns/daemon-killswitch-hostname.test.ts.
 */
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { buildDesired } from '../../../src/model/desired.js';
import { renderResolvConf, parseNameservers } from '../../../src/resources/dns/parse.js';
import { DNS_STATE_KEY } from '../../../src/resources/dns/linux.js';
import {
  EndpointResolver,
  ENDPOINTS_STATE_KEY,
  endpointHosts,
  engineResolver,
  hostResolvers,
} from '../../../src/resources/endpoints.js';

/** a test file in a directory that may not exist yet */
function writeFileDurable(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
}
import { FileStateStore, MemoryStateStore } from '../../../src/util/state.js';
import { linuxDesired } from '../../helpers/desired.js';
import { probeLinuxFacts } from '../../../src/resources/facts.js';

const tmp = mkdtempSync(join(tmpdir(), 'awgt-endpoints-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const dir = () => join(tmp, `d${n++}`);

const fail = (msg: string) => async (): Promise<string[]> => {
  throw new Error(msg);
};
const MARK = 0x0f000000;

describe('lookup order', () => {
  it('the system resolver first (it honours /etc/hosts and nsswitch); no direct lookup then', async () => {
    const calls: string[] = [];
    const r = new EndpointResolver({
      system: async () => ['192.0.2.1'],
      direct: async () => (calls.push('direct'), ['192.0.2.9']),
    });
    expect(await r.resolve('vpn.test', { mark: MARK })).toEqual({
      addresses: ['192.0.2.1'],
      via: 'system',
    });
    expect(calls).toEqual([]);
  });

  it('when the system resolver fails (its queries are dropped): a direct lookup at the host resolvers with the mark', async () => {
    const seen: unknown[] = [];
    const r = new EndpointResolver({
      system: fail('EAI_AGAIN'),
      direct: async (h, servers, mark) => (seen.push([h, servers, mark]), ['192.0.2.9']),
    });
    r.setServers(['10.0.0.53', '10.0.0.54']);
    expect(await r.resolve('vpn.test', { mark: MARK })).toEqual({
      addresses: ['192.0.2.9'],
      via: 'direct',
    });
    expect(seen).toEqual([['vpn.test', ['10.0.0.53', '10.0.0.54'], MARK]]);
  });

  it('a system resolver that never answers is cut short', async () => {
    const r = new EndpointResolver({
      system: () => new Promise<string[]>(() => {}),
      systemTimeoutMs: 20,
      direct: async () => ['192.0.2.9'],
    });
    r.setServers(['10.0.0.53']);
    expect(await r.resolve('vpn.test', { mark: MARK })).toMatchObject({
      addresses: ['192.0.2.9'],
      via: 'direct',
    });
  });

  it('no mark (not allowed to set one) or no host resolvers: no direct lookup', async () => {
    let direct = 0;
    const r = new EndpointResolver({
      system: fail('EAI_AGAIN'),
      direct: async () => (direct++, ['192.0.2.9']),
    });
    expect((await r.resolve('vpn.test', { mark: MARK })).addresses).toEqual([]);
    r.setServers(['10.0.0.53']);
    expect((await r.resolve('vpn.test')).addresses).toEqual([]);
    expect(direct).toBe(0);
  });

  it('when both fail, the last good answer; a failure never takes it away', async () => {
    let sys: () => Promise<string[]> = async () => ['192.0.2.1', '2001:db8::1'];
    const r = new EndpointResolver({ system: () => sys(), direct: fail('no answer') });
    r.setServers(['10.0.0.53']);
    await r.resolve('vpn.test', { mark: MARK });
    sys = fail('EAI_AGAIN');
    const got = await r.resolve('vpn.test', { mark: MARK });
    expect(got).toMatchObject({ addresses: ['192.0.2.1', '2001:db8::1'], via: 'last-good' });
    expect(got.error).toContain('EAI_AGAIN');
    expect(got.error).toContain('no answer');
    expect(await r.resolveAll(['vpn.test', 'other.test'], { mark: MARK })).toEqual({
      'vpn.test': ['192.0.2.1', '2001:db8::1'],
      'other.test': [],
    });
  });

  it('answers that are not addresses are dropped', async () => {
    const r = new EndpointResolver({ system: async () => ['not-an-ip', '192.0.2.1'] });
    expect((await r.resolve('vpn.test')).addresses).toEqual(['192.0.2.1']);
  });

  it("the engine's resolver passes the device's mark and rejects when nothing is known", async () => {
    const marks: number[] = [];
    const r = new EndpointResolver({
      system: fail('x'),
      direct: async (_h, _s, m) => (marks.push(m), ['192.0.2.9']),
    });
    r.setServers(['10.0.0.53']);
    expect(await engineResolver(r).resolve('vpn.test', { mark: MARK })).toEqual(['192.0.2.9']);
    expect(marks).toEqual([MARK]);
    await expect(
      engineResolver(new EndpointResolver({ system: fail('EAI_NONAME') })).resolve('gone.test', {
        mark: 0,
      }),
    ).rejects.toThrow(/EAI_NONAME/);
  });
});

describe('last good answers survive a restart (the state directory)', () => {
  it('a new process starts from what the last one found, and asks the same resolvers', async () => {
    const d = dir();
    const first = new EndpointResolver({
      state: new FileStateStore(d),
      system: async () => ['192.0.2.1'],
    });
    first.setServers(['10.0.0.53']);
    await first.resolve('vpn.test');
    const saved = JSON.parse(readFileSync(join(d, `${ENDPOINTS_STATE_KEY}.json`), 'utf8'));
    expect(saved).toMatchObject({
      version: 1,
      resolvers: ['10.0.0.53'],
      hosts: { 'vpn.test': { addresses: ['192.0.2.1'] } },
    });
    expect(readdirSync(d)).toEqual([`${ENDPOINTS_STATE_KEY}.json`]); // no temp file left

    // after kill -9: the system resolver's queries are dropped by the kill switch
    const seen: string[][] = [];
    const second = new EndpointResolver({
      state: new FileStateStore(d),
      system: fail('EAI_AGAIN'),
      direct: async (_h, s) => (seen.push(s), Promise.reject(new Error('silent'))),
    });
    expect(await second.resolve('vpn.test', { mark: MARK })).toMatchObject({
      addresses: ['192.0.2.1'],
      via: 'last-good',
    });
    expect(seen).toEqual([['10.0.0.53']]);
  });

  it('a read-only user (a detached engine, diff) never writes', async () => {
    const d = dir();
    const r = new EndpointResolver({
      state: new FileStateStore(d),
      persist: false,
      system: async () => ['192.0.2.1'],
    });
    r.setServers(['10.0.0.53']);
    await r.resolve('vpn.test');
    expect(() => readdirSync(d)).toThrow(); // not even created
  });

  it('an unchanged answer is not written again', async () => {
    const writes: unknown[] = [];
    const state = new MemoryStateStore();
    const orig = state.set.bind(state);
    state.set = (k, v) => (writes.push(k), orig(k, v));
    const r = new EndpointResolver({ state, system: async () => ['192.0.2.1'] });
    for (let i = 0; i < 3; i++) await r.resolve('vpn.test');
    r.setServers([]);
    expect(writes).toHaveLength(1);
  });

  it('a torn or hostile file is ignored (reported), never a crash; the next answer replaces it', async () => {
    const d = dir();
    const path = join(d, `${ENDPOINTS_STATE_KEY}.json`);
    writeFileDurable(path, '{"version":1,"hosts":{"vpn.te');
    const aside: string[] = [];
    const r = new EndpointResolver({
      state: new FileStateStore(d, { onCorrupt: (c) => aside.push(c.reason) }),
      system: fail('x'),
    });
    expect((await r.resolve('vpn.test')).addresses).toEqual([]);
    // the state store moves the torn record aside and reports it (the CLI prints it, the daemon logs it)
    expect(aside).toEqual([expect.stringMatching(/not valid JSON/)]);
    expect(readdirSync(d).some((f) => f.startsWith(`${ENDPOINTS_STATE_KEY}.json.corrupt-`))).toBe(
      true,
    );
    writeFileDurable(
      path,
      JSON.stringify({
        version: 1,
        resolvers: ['010.0.0.1', 'fe80::1%eth0', 5],
        hosts: {
          'vpn.test': { addresses: ['192.0.2.1; rm -rf /'] },
          'ok.test': { addresses: ['192.0.2.2'] },
        },
      }),
    );
    const h = new EndpointResolver({ state: new FileStateStore(d), system: fail('x') });
    expect(h.servers).toEqual([]);
    expect(h.lastGood('vpn.test')).toBeUndefined();
    expect(h.lastGood('ok.test')).toEqual(['192.0.2.2']);
  });
});

describe('the facts probe', () => {
  it('finds the host resolvers, resolves host names (here through /etc/hosts); a torn state file is set aside and reported', async () => {
    const d = dir();
    const aside: string[] = [];
    const state = new FileStateStore(d, { onCorrupt: (c) => aside.push(c.file) });
    writeFileDurable(join(d, `${ENDPOINTS_STATE_KEY}.json`), '{"version":1,');
    writeFileDurable(join(d, 'resolv.conf'), 'nameserver 192.0.2.53\nnameserver 10.64.0.1\n');
    const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
    const c = Config.parse({
      version: 1,
      tunnels: {
        vpn: {
          type: 'wireguard',
          privateKey: KEY,
          addresses: ['10.9.0.2/32'],
          dns: ['10.64.0.1'],
          peers: [{ publicKey: KEY, endpoint: 'localhost:51820', allowedIPs: ['10.0.0.0/8'] }],
        },
      },
      killSwitch: 'on',
    });
    const facts = await probeLinuxFacts(c, undefined, {
      state,
      env: { AWG_RESOLV_CONF: join(d, 'resolv.conf') },
      persist: true,
    });
    expect(facts.hostResolvers).toEqual(['192.0.2.53']);
    expect(facts.resolved!.localhost).toContain('127.0.0.1');
    expect(aside).toEqual([expect.stringMatching(/resolved-endpoints\.json$/)]);
    expect(facts.probeWarnings).toBeUndefined();
    // replaced by the new answers: the next probe has nothing to report
    expect(
      JSON.parse(readFileSync(join(d, `${ENDPOINTS_STATE_KEY}.json`), 'utf8')).hosts.localhost
        .addresses,
    ).toContain('127.0.0.1');
    expect(
      (
        await probeLinuxFacts(c, undefined, {
          state,
          env: { AWG_RESOLV_CONF: join(d, 'resolv.conf') },
        })
      ).probeWarnings,
    ).toBeUndefined();
  });
});

describe("the host's own resolvers", () => {
  const env = (path: string) => ({ AWG_RESOLV_CONF: path });

  it('resolv.conf as it is, at most 3, only IP literals as inet_pton reads them, without the tunnels’', async () => {
    const d = dir();
    const f = join(d, 'resolv.conf');
    writeFileDurable(
      f,
      'search lan\nnameserver 010.0.0.1\nnameserver fe80::1%eth0\nnameserver 10.64.0.1\nnameserver 192.168.1.1 # router\nnameserver 2001:DB8::53\nnameserver 9.9.9.9\nnameserver 1.1.1.1\n',
    );
    expect(await hostResolvers({ env: env(f), exclude: ['10.64.0.1'] })).toEqual([
      '192.168.1.1',
      '2001:db8::53',
      '9.9.9.9',
    ]);
  });

  it('a resolv.conf awg rewrote (dns.system: default-tunnel): the original kept in the state directory', async () => {
    const d = dir();
    const f = join(d, 'resolv.conf');
    writeFileDurable(f, renderResolvConf({ scope: 'system', servers: ['10.64.0.1'], domains: [] }));
    const state = new MemoryStateStore();
    state.set(DNS_STATE_KEY, {
      path: f,
      kind: 'file',
      content: Buffer.from('nameserver 192.168.1.1\n').toString('base64'),
      mode: 0o644,
    });
    expect(await hostResolvers({ env: env(f), state })).toEqual(['192.168.1.1']);
    // the original was a symlink: its target
    writeFileDurable(join(d, 'real.conf'), 'nameserver 192.168.7.7\n');
    state.set(DNS_STATE_KEY, { path: f, kind: 'symlink', target: 'real.conf' });
    expect(await hostResolvers({ env: env(f), state })).toEqual(['192.168.7.7']);
    state.delete(DNS_STATE_KEY);
    expect(await hostResolvers({ env: env(f), state })).toEqual([]);
  });

  it("systemd-resolved's stub: the servers it forwards to (its own queries are dropped under the kill switch)", async () => {
    const d = dir();
    writeFileDurable(join(d, 'upstream.conf'), 'nameserver 192.168.1.1\nnameserver 10.64.0.1\n');
    writeFileDurable(join(d, 'stub.conf'), 'nameserver 127.0.0.53\noptions edns0 trust-ad\n');
    expect(
      await hostResolvers({
        env: env(join(d, 'stub.conf')),
        resolvedUpstream: join(d, 'upstream.conf'),
        exclude: ['10.64.0.1'],
      }),
    ).toEqual(['192.168.1.1']);
    symlinkSync('/run/systemd/resolve/stub-resolv.conf', join(d, 'link.conf'));
    expect(
      await hostResolvers({
        env: env(join(d, 'link.conf')),
        resolvedUpstream: join(d, 'upstream.conf'),
      }),
    ).toEqual(['192.168.1.1', '10.64.0.1']);
  });

  it('parseNameservers ignores everything but clean nameserver lines', () => {
    expect(
      parseNameservers(
        'nameserver 1.2.3.4 extra\n nameserver\t5.6.7.8\nnameserver 5.6.7.8\n#nameserver 9.9.9.9\nnameserver 1.2.3\n',
      ),
    ).toEqual(['5.6.7.8']);
  });
});

describe('the model: host-name endpoints and the endpoint-dns exemption', () => {
  const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
  const cfg = (endpoint: string, extra: Record<string, unknown> = {}) =>
    Config.parse({
      version: 1,
      tunnels: {
        vpn: {
          type: 'wireguard',
          privateKey: KEY,
          addresses: ['10.9.0.2/32'],
          dns: ['10.64.0.1'],
          peers: [{ publicKey: KEY, endpoint, allowedIPs: ['0.0.0.0/0'] }],
        },
      },
      killSwitch: 'on',
      ...extra,
    });
  const facts = {
    cgroupNftPrefix: '',
    resolved: { 'vpn.example.net': ['203.0.113.7'] },
    hostResolvers: ['192.168.1.1'],
  };

  it('a host-name endpoint: the resolved address and the host resolvers are admitted', () => {
    const m = buildDesired(cfg('vpn.example.net:51820'), { facts });
    expect(m.policy!.bypassResolvers).toEqual(['192.168.1.1']);
    expect(m.policy!.tunnels[0]!.endpoints).toEqual([
      { address: '203.0.113.7', port: 51820, protocol: 'udp' },
    ]);
    const fw = linuxDesired(cfg('vpn.example.net:51820'), { facts }).resources.find(
      (r) => r.kind === 'firewall',
    )!.spec as { ruleset: string };
    expect(fw.ruleset).toContain(
      'meta mark & 0x0f000000 == 0x0f000000 ip daddr 192.168.1.1 meta l4proto { tcp, udp } th dport 53 counter accept comment "endpoint-dns"',
    );
  });

  it('only literal endpoints: no exemption, whatever the facts say', () => {
    expect(
      buildDesired(cfg('203.0.113.7:51820'), { facts }).policy!.bypassResolvers,
    ).toBeUndefined();
  });

  it('without the kill switch or leak protection nothing is dropped, so nothing is rendered', () => {
    const fw = linuxDesired(cfg('vpn.example.net:51820', { killSwitch: 'off' }), {
      facts,
    }).resources.find((r) => r.kind === 'firewall')!.spec as { ruleset: string };
    expect(fw.ruleset).not.toContain('endpoint-dns');
  });

  it('endpointHosts: peer endpoints and proxy servers that are names, not literals', () => {
    const c = Config.parse({
      version: 1,
      tunnels: {
        a: {
          type: 'wireguard',
          privateKey: KEY,
          addresses: ['10.9.0.2/32'],
          peers: [
            { publicKey: KEY, endpoint: 'b.example:1', allowedIPs: ['10.0.0.0/8'] },
            {
              publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
              endpoint: '[2001:db8::1]:1',
              allowedIPs: ['10.1.0.0/16'],
            },
          ],
        },
        p: { type: 'socks5', server: 'proxy.example', port: 1080 },
        q: { type: 'socks5', server: '192.0.2.5', port: 1080 },
      },
    });
    expect(endpointHosts(c)).toEqual(['b.example', 'proxy.example']);
  });
});
