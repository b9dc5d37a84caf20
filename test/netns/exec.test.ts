/**
 * `awg exec` against an applied configuration in a test namespace:
 * - the command is in the rule's cgroup before its first instruction (it prints
 *   /proc/self/cgroup as the first thing it does); exit status passed on; clear errors;
 * - with a WireGuard tunnel applied, every UDP packet of the exec'd command carries a tunnel
 *   mark (the nft counter of the rule counts them) and none leaves unmarked, while the same
 *   sender started without awg exec goes out unmarked (the probe can fail).
 * The probe is our own nft table counting dport 9999 by mark in postrouting.
 */
import { spawn } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  awg,
  awgArgv,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  sweepStaleNetns,
  vethPair,
} from '../helpers/netns.js';
import { runProgram } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl']);

/**
 * the programs the rules match, named for this run (runProgram): never a real program of the
 * host (apt, firefox…) that a placer could move
 */
const APT = runProgram('awgt-apt');
const FIREFOX = runProgram('awgt-firefox');

const DIRECT_CONFIG = `version: 1
rules:
  - name: upd
    match: { name: ${APT} }
    target: direct
`;

function tunnelConfig(): string {
  const me = wgKeyPair();
  const peer = wgKeyPair();
  return `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.200.50.2/32]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [10.200.60.0/24]
rules:
  - name: ff
    match: { name: ${FIREFOX} }
    target: vpn
`;
}

const PROBE = `table inet awgtprobe {
  chain post {
    type filter hook postrouting priority 0; policy accept;
    udp dport 9999 meta mark & 0x0f000000 != 0x00000000 counter comment "marked"
    udp dport 9999 meta mark & 0x0f000000 == 0x00000000 counter comment "unmarked"
  }
}
`;

interface NftRule {
  rule?: { table: string; comment?: string; expr: { counter?: { packets: number } }[] };
}

async function counters(ns: string, table: string): Promise<Record<string, number>> {
  const j = JSON.parse(
    (await nsExec(ns, 'nft', ['-j', 'list', 'table', 'inet', table])).stdout,
  ) as { nftables: NftRule[] };
  const out: Record<string, number> = {};
  for (const o of j.nftables) {
    if (!o.rule?.comment) continue;
    const c = o.rule.expr.find((x) => x.counter)?.counter;
    if (c) out[o.rule.comment] = (out[o.rule.comment] ?? 0) + c.packets;
  }
  return out;
}

const SENDER = `const s=require('dgram').createSocket('udp4');let n=0;const go=()=>s.send('x',9999,'10.200.60.5',(e)=>{if(e){console.error(e.code);process.exit(3)}if(++n<5)go();else s.close()});go();`;

describe.skipIf(skip)('awg exec', () => {
  let ns: string;
  let peerNs: string | undefined;
  let e: AwgEnv;
  beforeEach(async () => {
    await sweepStaleNetns();
    ns = await createNetns('exec');
    e = makeAwgEnv();
  });
  afterEach(async () => {
    if (ns) await awg(ns, e, ['down']).catch(() => undefined);
    if (ns) await destroyNetns(ns);
    if (peerNs) await destroyNetns(peerNs);
    peerNs = undefined;
    cleanupAwgEnv(e);
  });

  it('is in the rule cgroup before the command runs; passes the exit status on; clear errors', async () => {
    const sd = ['--state-dir', e.stateDir];
    const notApplied = await awg(ns, e, ['exec', '--rule', 'upd', ...sd, '--', 'true']);
    expect(notApplied.code, show(notApplied)).toBe(1);
    expect(notApplied.stderr).toMatch(/awg is not applied/);

    const a = await awg(ns, e, ['apply', '-f', writeConfig(e, 'c.yaml', DIRECT_CONFIG)]);
    expect(a.code, show(a)).toBe(0);

    const r = await awg(ns, e, ['exec', '--rule', 'upd', ...sd, '--', 'cat', '/proc/self/cgroup']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout.split('\n')).toContain(`0::/${e.cgroupRoot}/upd`);
    // control: without awg exec the same command is elsewhere
    const c = await nsExec(ns, 'cat', ['/proc/self/cgroup']);
    expect(c.stdout.split('\n')).not.toContain(`0::/${e.cgroupRoot}/upd`);

    // awg processes, run inside the rule cgroup, lists itself under that rule
    const cli = awgArgv(ns, e, ['processes', '--json', ...sd]).slice(3);
    const pr = await awg(ns, e, ['exec', '--rule', 'upd', ...sd, '--', ...cli]);
    expect(pr.code, show(pr)).toBe(0);
    const listed = JSON.parse(pr.stdout) as {
      pid: number;
      path: string;
      rule?: string;
      target?: string;
      route: string;
      cgroup: string;
    }[];
    const self = listed.filter((p) => p.cgroup === `/${e.cgroupRoot}/upd`);
    expect(self.length, pr.stdout).toBeGreaterThanOrEqual(1);
    expect(self[0]).toMatchObject({ rule: 'upd', target: 'direct', route: 'direct' });

    const x = await awg(ns, e, ['exec', '--rule', 'upd', ...sd, '--', 'sh', '-c', 'exit 7']);
    expect(x.code, show(x)).toBe(7);
    // a command killed by a signal kills awg with the same signal (the helper reports 128)
    const sig = await awg(ns, e, [
      'exec',
      '--rule',
      'upd',
      ...sd,
      '--',
      'sh',
      '-c',
      'kill -TERM $$',
    ]);
    expect(sig.code, show(sig)).toBe(128);
    const nf = await awg(ns, e, ['exec', '--rule', 'upd', ...sd, '--', 'awgt-no-such-command']);
    expect(nf.code).toBe(127);
    const unknownRule = await awg(ns, e, ['exec', '--rule', 'nope', ...sd, '--', 'true']);
    expect(unknownRule.stderr).toMatch(/no enabled rule named "nope" .*rules: upd/);
    const unknownTunnel = await awg(ns, e, ['exec', '--tunnel', 'work', ...sd, '--', 'true']);
    expect(unknownTunnel.code).toBe(1);
    expect(unknownTunnel.stderr).toMatch(/unknown tunnel "work"/);
    const two = await awg(ns, e, ['exec', '--rule', 'upd', '--direct', ...sd, '--', 'true']);
    expect(two.stderr).toMatch(/exactly one of/);
  });

  it('forwards SIGTERM to the command and passes its exit status on', async () => {
    const a = await awg(ns, e, ['apply', '-f', writeConfig(e, 'c.yaml', DIRECT_CONFIG)]);
    expect(a.code, show(a)).toBe(0);
    const argv = awgArgv(ns, e, [
      'exec',
      '--rule',
      'upd',
      '--state-dir',
      e.stateDir,
      '--',
      'sh',
      '-c',
      'trap "echo got-term; exit 5" TERM; echo ready; while :; do sleep 0.05; done',
    ]);
    const child = spawn(argv[0]!, argv.slice(1), { env: e.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    try {
      for (let i = 0; i < 1000 && !out.includes('ready'); i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(out).toContain('ready');
      // nsenter execs node: this pid is awg itself
      child.kill('SIGTERM');
      expect(await exited).toBe(5);
      expect(out).toContain('got-term');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it("with a tunnel applied, every packet of the exec'd command is marked; the same sender without exec is not", async () => {
    await ensureDist();
    peerNs = await createNetns('exec-peer');
    await vethPair(ns, peerNs, { addrA: '10.200.9.1/24', addrB: '10.200.9.2/24' });
    await nsExec(ns, 'ip', ['route', 'add', 'default', 'via', '10.200.9.2']);
    const a = await awg(ns, e, ['apply', '-f', writeConfig(e, 't.yaml', tunnelConfig())]);
    expect(a.code, show(a)).toBe(0);
    await nsExec(ns, 'nft', ['-f', '-'], { input: PROBE });

    const before = await counters(ns, 'awg');
    const r = await awg(ns, e, [
      'exec',
      '--rule',
      'ff',
      '--state-dir',
      e.stateDir,
      '--',
      process.execPath,
      '-e',
      SENDER,
    ]);
    expect(r.code, show(r)).toBe(0);
    const p1 = await counters(ns, 'awgtprobe');
    expect(p1).toEqual({ marked: 5, unmarked: 0 });
    const after = await counters(ns, 'awg');
    expect((after['app/ff'] ?? 0) - (before['app/ff'] ?? 0)).toBe(5);

    const ctl = await nsExec(ns, process.execPath, ['-e', SENDER], { allowFail: true });
    expect(ctl.code, ctl.stderr).toBe(0);
    expect(await counters(ns, 'awgtprobe')).toEqual({ marked: 5, unmarked: 5 });

    // --tunnel uses the model's _exec-<tunnel> cgroup: marked like a rule of that tunnel
    const beforeExec = await counters(ns, 'awg');
    const t = await awg(ns, e, [
      'exec',
      '--tunnel',
      'vpn',
      '--state-dir',
      e.stateDir,
      '--',
      process.execPath,
      '-e',
      SENDER,
    ]);
    expect(t.code, show(t)).toBe(0);
    expect(await counters(ns, 'awgtprobe')).toEqual({ marked: 10, unmarked: 5 });
    const afterExec = await counters(ns, 'awg');
    expect((afterExec['app/_exec-vpn'] ?? 0) - (beforeExec['app/_exec-vpn'] ?? 0)).toBe(5);
  });
});
