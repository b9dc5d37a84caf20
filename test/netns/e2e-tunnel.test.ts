/**
 * Step 2 end-to-end with a WireGuard tunnel (userspace engine): the kernel holds exactly the
 * planned link, address, routes (+ unreachable twins) in table 52000+slot, ip rules with
 * protocol 167 at 5200+, nft table, sysctls and resolv.conf; a second apply is a no-op;
 * hand-made drift of a route, a rule and the nft table is named and repaired exactly; `down`
 * restores the snapshot (DNS file byte-exact, engine gone), foreign objects untouched; the
 * same against a real /etc/resolv.conf (bind-mounted in a private mount namespace).
 * No traffic needs to flow: the peer endpoint is an address in a namespace we own.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  awg,
  cleanupAwgEnv,
  engineGroup,
  ensureDist,
  expectedEngineNice,
  ipRoutes,
  ipRules,
  makeAwgEnv,
  nftTable,
  show,
  snapshotHost,
  sysctl,
  wgKeyPair,
  writeConfig,
  ORIGINAL_RESOLV,
  OWN_AUTOGROUP,
  type AwgEnv,
  type AwgRunOptions,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  vethPair,
} from '../helpers/netns.js';
import { runProgram } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'unshare', 'mount']);

/**
 * the programs the rules match, named for this run (runProgram): never a real program of the
 * host (apt, firefox…) that a placer could move
 */
const APT = runProgram('awgt-apt');
const FIREFOX = runProgram('awgt-firefox');

const TABLE = 52008; // slot 8 of the 0x0f000000 mask: mark 0x08000000
const MARK = 0x08000000;

function tunnelConfig(): string {
  const me = wgKeyPair();
  const peer = wgKeyPair();
  return `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.200.50.2/32]
    dns: [10.200.50.1]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [10.200.60.0/24, 10.200.61.0/24]
rules:
  - name: ff
    match: { name: ${FIREFOX} }
    target: vpn
  - name: upd
    match: { name: ${APT} }
    target: direct
default: vpn
dns: { system: default-tunnel }
killSwitch: { enabled: true, allowLan: true }
`;
}

interface PlanChange {
  kind: string;
  id: string;
  action: string;
  cause: string;
  after?: Record<string, unknown>;
}
interface PlanDoc {
  changes: PlanChange[];
  summary: Record<string, number>;
  foreign: { kind: string; id: string; relation: string }[];
}
interface ApplyDoc {
  outcome: string;
  mutations: number;
  changed: number;
  plan?: PlanDoc;
}

/** `ip -N` prints route types as RTN_* numbers */
const RTN: Record<string, string> = {
  '1': 'unicast',
  '6': 'blackhole',
  '7': 'unreachable',
  '9': 'throw',
};
const typeOf = (r: { type?: string }) =>
  r.type === undefined ? 'unicast' : (RTN[r.type] ?? r.type);

const hex = (n: number) => `0x${n.toString(16)}`;

/** every planned route and rule is in the kernel with our protocol, and nothing else is in our band */
async function expectKernelMatchesPlan(ns: string, plan: PlanDoc): Promise<void> {
  const routes = [...(await ipRoutes(ns, 4)), ...(await ipRoutes(ns, 6))];
  const ours = routes.filter((r) => Number(r.table) >= 52000 && Number(r.table) < 52100);
  const planned = plan.changes.filter((c) => c.kind === 'route').map((c) => c.after!);
  expect(planned.length).toBeGreaterThan(0);
  expect(ours).toHaveLength(planned.length);
  for (const p of planned) {
    const dst = p.dst === '0.0.0.0/0' || p.dst === '::/0' ? 'default' : String(p.dst);
    const hit = ours.find(
      (r) =>
        r.dst === dst &&
        Number(r.table) === p.table &&
        typeOf(r) === p.type &&
        (r.metric ?? 0) === p.metric,
    );
    expect(hit, `route ${JSON.stringify(p)} in ${JSON.stringify(ours)}`).toBeDefined();
    expect(hit!.protocol).toBe('167');
    if (p.type === 'unicast') expect(hit!.dev).toBe(p.dev);
  }
  const rules = [...(await ipRules(ns, 4)), ...(await ipRules(ns, 6))].filter(
    (r) => r.priority >= 5200 && r.priority < 5300,
  );
  const plannedRules = plan.changes.filter((c) => c.kind === 'rule').map((c) => c.after!);
  expect(rules).toHaveLength(plannedRules.length);
  for (const p of plannedRules) {
    const hit = rules.find((r) => r.priority === p.priority);
    expect(hit, `rule ${JSON.stringify(p)}`).toBeDefined();
    expect(hit!.protocol).toBe('167');
    expect(Number(hit!.table === 'main' ? 254 : hit!.table)).toBe(p.table);
    if (p.fwmark !== undefined) {
      // ip prints a mark of 0 as `0`, others in hex
      expect(Number(hit!.fwmark)).toBe(p.fwmark);
      expect(Number(hit!.fwmask)).toBe(p.fwmask);
    }
    if (p.suppressPrefixLength !== undefined)
      expect(hit!.suppress_prefixlen).toBe(p.suppressPrefixLength);
  }
}

describe.skipIf(skip)('e2e: WireGuard tunnel apply, drift, down', () => {
  let ns: string;
  let peerNs: string;
  let e: AwgEnv;
  beforeEach(async () => {
    await ensureDist();
    await sweepStaleNetns();
    ns = await createNetns('e2e-tun');
    peerNs = await createNetns('e2e-tunp');
    await vethPair(ns, peerNs, { addrA: '10.200.9.1/24', addrB: '10.200.9.2/24' });
    e = makeAwgEnv();
  });
  afterEach(async () => {
    if (ns) await destroyNetns(ns);
    if (peerNs) await destroyNetns(peerNs);
    cleanupAwgEnv(e);
  });

  it('converges to the plan (routes, twins, rules, link, address, nft, sysctls, DNS); second apply: zero mutations', async () => {
    const cfg = writeConfig(e, 'wg.yaml', tunnelConfig());
    const d = await awg(ns, e, ['diff', '-f', cfg, '--json']);
    expect(d.code, show(d)).toBe(2);
    const plan = d.json<PlanDoc>();
    const ids = plan.changes.map((c) => c.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        'link/awg-vpn',
        'address/awg-vpn/10.200.50.2/32',
        'engine/vpn',
        `route/v4/table-${TABLE}/10.200.60.0/24/metric-0`,
        `route/v4/table-${TABLE}/10.200.60.0/24/metric-4294967295`,
        `route/v4/table-${TABLE}/10.200.61.0/24/metric-0`,
        `route/v4/table-${TABLE}/10.200.61.0/24/metric-4294967295`,
        `route/v4/table-${TABLE}/0.0.0.0/0/metric-4294967295`,
        'rule/v4/pref-5200',
        'rule/v4/pref-5208',
        'firewall/inet/awg',
        'sysctl/net.ipv4.conf.awg-vpn.rp_filter',
        'sysctl/net.ipv4.conf.all.src_valid_mark',
        'dns/system',
      ]),
    );

    const a = await awg(ns, e, ['apply', '-f', cfg]);
    expect(a.code, show(a)).toBe(0);
    await expectKernelMatchesPlan(ns, plan);
    // the unreachable twins
    const twins = (await ipRoutes(ns, 4)).filter(
      (r) => Number(r.table) === TABLE && typeOf(r) === 'unreachable',
    );
    expect(twins.map((r) => r.dst).sort()).toEqual(['10.200.60.0/24', '10.200.61.0/24']);
    const link = JSON.parse(
      (await nsExec(ns, 'ip', ['-j', '-d', 'link', 'show', 'dev', 'awg-vpn'])).stdout,
    ) as { ifalias?: string; mtu: number; flags: string[] }[];
    expect(link[0]).toMatchObject({ mtu: 1420 });
    expect(link[0]!.ifalias).toMatch(/^awg:managed owner=[0-9a-f]{12}$/);
    expect(link[0]!.flags).toContain('UP');
    expect((await nsExec(ns, 'ip', ['-4', 'addr', 'show', 'dev', 'awg-vpn'])).stdout).toContain(
      'inet 10.200.50.2/32',
    );
    expect(await sysctl(ns, 'net.ipv4.conf.awg-vpn.rp_filter')).toBe('2');
    expect(await sysctl(ns, 'net.ipv4.conf.all.src_valid_mark')).toBe('1');
    const table = (await nftTable(ns, 'awg'))!;
    expect(table).toMatch(/comment "managed-by=awg owner=[0-9a-f]{12}"/);
    expect(table).toContain('meta mark set meta mark & 0xf8ffffff | 0x08000000');
    expect(readFileSync(e.resolvConf, 'utf8')).toMatch(
      /^# managed by awg scope=system\n[\s\S]*nameserver 10\.200\.50\.1\n/,
    );
    // the engine answers on its (private) UAPI socket
    expect(existsSync(join(e.dir, 'uapi', 'awg-vpn.sock'))).toBe(true);
    // the detached engine leads a session of its own, whose autogroup runs at nice −10
    // (boost.ts applyEngineWeight); this process's group is untouched
    const g = await engineGroup(ns);
    expect(g.leader).toBe(true);
    if (OWN_AUTOGROUP !== null) {
      expect(g.nice).toBe(expectedEngineNice());
      expect(readFileSync('/proc/self/autogroup', 'latin1')).toBe(OWN_AUTOGROUP);
    }

    const again = await awg(ns, e, ['apply', '-f', cfg]);
    expect(again.code, show(again)).toBe(0);
    expect(again.mutations).toEqual([]);
    const j = await awg(ns, e, ['apply', '-f', cfg, '--json']);
    expect(j.json<ApplyDoc>()).toMatchObject({ outcome: 'unchanged', mutations: 0, changed: 0 });
    expect((await awg(ns, e, ['diff', '-f', cfg])).code).toBe(0);
  });

  it('drift of a route, a rule and the nft table: diff names each (cause drift); apply repairs exactly those', async () => {
    const cfg = writeConfig(e, 'wg.yaml', tunnelConfig());
    const initial = (await awg(ns, e, ['diff', '-f', cfg, '--json'])).json<PlanDoc>();
    const a = await awg(ns, e, ['apply', '-f', cfg]);
    expect(a.code, show(a)).toBe(0);

    await nsExec(ns, 'ip', [
      '-4',
      'route',
      'del',
      '10.200.60.0/24',
      'table',
      String(TABLE),
      'metric',
      '0',
      'proto',
      '167',
    ]);
    // flip our rule: same priority and protocol, another table
    await nsExec(ns, 'ip', ['-4', 'rule', 'del', 'priority', '5208', 'protocol', '167']);
    await nsExec(ns, 'ip', [
      '-4',
      'rule',
      'add',
      'priority',
      '5208',
      'fwmark',
      `${hex(MARK)}/0xf000000`,
      'table',
      '100',
      'protocol',
      '167',
    ]);
    await nsExec(ns, 'nft', ['flush', 'table', 'inet', 'awg']);
    const drifted = [
      'firewall/inet/awg',
      `route/v4/table-${TABLE}/10.200.60.0/24/metric-0`,
      'rule/v4/pref-5208',
    ];

    const d = await awg(ns, e, ['diff', '-f', cfg, '--json']);
    expect(d.code, show(d)).toBe(2);
    const plan = d.json<PlanDoc>();
    expect(plan.changes.map((c) => c.id).sort()).toEqual(drifted);
    expect(plan.changes.every((c) => c.cause === 'drift')).toBe(true);
    expect(plan.changes.find((c) => c.id === 'rule/v4/pref-5208')!.action).toBe('replace');

    const r = await awg(ns, e, ['apply', '-f', cfg]);
    expect(r.code, show(r)).toBe(0);
    // exactly: one route replace, rule del + add, one nft transaction
    expect(r.mutations).toEqual([
      expect.stringMatching(/^\[#\] nft -f - /),
      expect.stringMatching(
        /^\[#\] ip -4 route replace 10\.200\.60\.0\/24 dev awg-vpn table 52008 metric 0 proto 167$/,
      ),
      expect.stringMatching(/^\[#\] ip -4 rule del priority 5208 .*lookup 100 protocol 167$/),
      expect.stringMatching(/^\[#\] ip -4 rule add priority 5208 .*lookup 52008 protocol 167$/),
    ]);
    expect(r.stdout).toMatch(/Applied: 3 change\(s\), 4 mutation\(s\)/);
    const after = await awg(ns, e, ['diff', '-f', cfg, '--json']);
    expect(after.code, show(after)).toBe(0);
    await expectKernelMatchesPlan(ns, initial);
  });

  it('down returns to the snapshot (DNS byte-exact, engine gone); foreign objects identical; awg-foo is a conflict', async () => {
    await nsExec(ns, 'nft', ['-f', '-'], {
      input:
        'table ip foreign {\n  chain post {\n    type nat hook postrouting priority 100; policy accept;\n  }\n}\n',
    });
    await nsExec(ns, 'ip', [
      'rule',
      'add',
      'priority',
      '900',
      'to',
      '10.200.98.0/24',
      'table',
      '100',
    ]);
    await nsExec(ns, 'ip', ['route', 'add', 'unreachable', '10.200.98.0/24', 'table', '100']);
    await nsExec(ns, 'ip', ['tuntap', 'add', 'dev', 'awg-foo', 'mode', 'tun']);
    const before = await snapshotHost(ns, e);
    const cfg = writeConfig(e, 'wg.yaml', tunnelConfig());
    const a = await awg(ns, e, ['apply', '-f', cfg, '--json']);
    expect(a.code, a.stdout + a.stderr).toBe(0);
    expect(a.json<ApplyDoc>().plan!.foreign).toContainEqual(
      expect.objectContaining({ id: 'link/awg-foo', relation: 'conflict' }),
    );
    expect(readFileSync(e.resolvConf, 'utf8')).not.toBe(ORIGINAL_RESOLV);
    const enginePids = (await run('ip', ['netns', 'pids', ns])).stdout.trim();
    expect(enginePids).not.toBe('');

    const down = await awg(ns, e, ['down']);
    expect(down.code, show(down)).toBe(0);
    expect(down.mutations.some((m) => m.includes('[kill] engine vpn'))).toBe(true);
    expect(await snapshotHost(ns, e)).toEqual(before);
    expect(readFileSync(e.resolvConf, 'utf8')).toBe(ORIGINAL_RESOLV);
    // the engine process is gone (nothing runs in the namespace any more)
    expect((await run('ip', ['netns', 'pids', ns])).stdout.trim()).toBe('');
    const st = await awg(ns, e, ['status', '--json']);
    expect(st.json<{ state: string }>().state).toBe('down');
  });

  it('a foreign rule in our priority band (no protocol 167) is a conflict: apply refuses and changes nothing', async () => {
    await nsExec(ns, 'ip', ['-4', 'rule', 'add', 'priority', '5208', 'table', '100']);
    const before = await snapshotHost(ns, e);
    const cfg = writeConfig(e, 'wg.yaml', tunnelConfig());
    const d = await awg(ns, e, ['diff', '-f', cfg, '--json']);
    expect(d.json<PlanDoc>().foreign).toContainEqual(
      expect.objectContaining({ kind: 'rule', id: 'rule/v4/pref-5208', relation: 'conflict' }),
    );
    const r = await awg(ns, e, ['apply', '-f', cfg]);
    expect(r.code, show(r)).toBe(5);
    expect(r.stderr).toMatch(/awg: error \[conflict\]: refusing to adopt .*rule\/v4\/pref-5208/);
    expect(r.mutations).toEqual([]);
    expect(await snapshotHost(ns, e)).toEqual(before);
  });

  it('manages a real /etc/resolv.conf (bind-mounted in a private mount namespace) and restores it byte-exact', async () => {
    const fake = join(e.dir, 'etc-resolv.conf');
    const original = '# the real one (test copy)\nsearch example.test\nnameserver 10.200.0.53\n';
    writeFileSync(fake, original, { mode: 0o644 });
    const wrap: AwgRunOptions = {
      wrap: [
        'unshare',
        '-m',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        'mount --bind "$0" /etc/resolv.conf && exec "$@"',
        fake,
      ],
      extraEnv: { AWG_RESOLV_CONF: '' },
    };
    const hostResolv = readFileSync('/etc/resolv.conf');
    const cfg = writeConfig(e, 'wg.yaml', tunnelConfig());
    const a = await awg(ns, e, ['apply', '-f', cfg], wrap);
    expect(a.code, show(a)).toBe(0);
    expect(a.mutations.some((m) => m.includes('write /etc/resolv.conf'))).toBe(true);
    expect(readFileSync(fake, 'utf8')).toMatch(/nameserver 10\.200\.50\.1/);
    const again = await awg(ns, e, ['apply', '-f', cfg], wrap);
    expect(again.mutations, show(again)).toEqual([]);
    const down = await awg(ns, e, ['down'], wrap);
    expect(down.code, show(down)).toBe(0);
    expect(readFileSync(fake, 'utf8')).toBe(original);
    // the host's own resolver file never changed
    expect(readFileSync('/etc/resolv.conf')).toEqual(hostResolv);
  });

  // Regression (fixed in a80ac9d): one `dns/<link>` per tunnel on the static backend, which
  // holds one scope, never converged; per-link DNS is now emitted for systemd-resolved only.
  it('two tunnels with DNS servers converge with the static resolv.conf backend', async () => {
    const t = (name: string, n: number) => {
      const me = wgKeyPair();
      const peer = wgKeyPair();
      return `  ${name}:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.200.${n}.2/32]
    dns: [10.200.${n}.1]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.200.9.2:5182${n % 10}
        allowedIPs: [10.200.${n + 10}.0/24]
`;
    };
    const cfg = writeConfig(e, 'two.yaml', `version: 1\ntunnels:\n${t('a', 50)}${t('b', 51)}`);
    const r = await awg(ns, e, ['apply', '-f', cfg]);
    expect(r.code, show(r)).toBe(0);
  });
});
