/**
 * Step 23, end to end: a fleet cannot be stranded by a valid, wrong revision.
 *
 * Namespace `rp` is the VPN peer and the git server: `git daemon` listens on its tunnel
 * address only (git://10.200.184.2:9418), so a host reaches the repository through its
 * tunnel or not at all. `HOST_COUNT` host namespaces (`r0`, `r1`, …) each follow their own
 * checkout of the repository with `awg daemon --host … --locked` and the kill switch on, and
 * pull with `awg sync` (what awg-sync.timer runs) through the tunnel. Each host's private key
 * is a file of its own, named by a per-host overlay.
 *
 * - every host converges the first revision (the baseline) and pings the peer;
 * - a commit with a wrong peer public key: every host applies it, fails the check
 *   (`fleet.verify.within`), reverts to the first revision within the bound, reports it
 *   (`awg status` text and JSON, `awg_revision_rejected{rev}`, the observation record),
 *   and keeps running the good revision while HEAD is at the rejected one; the capture on host
 *   0's underlay sees nothing but WireGuard to the peer's endpoint from the bad commit's pull
 *   until the revert is done (the kill switch stays closed);
 * - a commit that leaves the hosts' files as the rejected one had them (another file) is
 *   rejected too, without being applied;
 * - a fixed commit after it is pulled through the tunnel again, applied and passes the check.
 *
 * Written for the waves of part 2 to extend: HOST_COUNT hosts, one helper per step.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusDocument } from '../../src/daemon/status-document.js';
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
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';
import { eventually } from './daemon-support.js';

const skip = requireNetnsPrereqs(['nft', 'git', 'curl', 'tcpdump']);

/** hosts following the repository (part 2's waves raise it) */
const HOST_COUNT = Number(process.env.AWG_ROLLOUT_HOSTS ?? 2);
/** fleet.verify.within of the test's config */
const WITHIN_S = 6;

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'ops',
  GIT_AUTHOR_EMAIL: 'ops@example.org',
  GIT_COMMITTER_NAME: 'ops',
  GIT_COMMITTER_EMAIL: 'ops@example.org',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8' }).trim();

const PEER_EP = '10.200.183.2';
const PEER_TUN = '10.200.184.2';
const GIT_URL = `git://${PEER_TUN}/origin.git`;
const METRICS = '127.0.0.1:19587';
const hostTun = (i: number) => `10.200.184.${10 + i}`;
/** host i's underlay: 10.200.(190+i).1 (host) ↔ .2 (peer) */
const under = (i: number) => [`10.200.${190 + i}.1`, `10.200.${190 + i}.2`] as const;
const hostName = (i: number) => `rollout-${i}`;

interface Host {
  i: number;
  ns: string;
  e: AwgEnv;
  checkout: string;
  socket: string;
  keys: { privateKey: string; publicKey: string };
  keyFile: string;
  /** the host end of its underlay veth */
  uplink: string;
  daemon?: NsProcess;
}

describe.skipIf(skip)(`fleet rollout: ${HOST_COUNT} hosts reject a wrong revision`, () => {
  let peerNs: string;
  let pe: AwgEnv;
  let work: AwgEnv;
  let origin: string;
  let author: string;
  let gitDaemon: NsProcess | undefined;
  let peerKey: { privateKey: string; publicKey: string };
  const hosts: Host[] = [];
  let baseline = '';

  const commit = (msg: string): string => {
    git(author, 'add', '-A');
    git(author, 'commit', '-q', '-m', msg);
    git(author, 'push', '-q', 'origin', 'HEAD:main');
    return git(author, 'rev-parse', 'HEAD');
  };
  const baseConfig = (o: { peerKey: string; mtu?: number }) => `version: 1
tunnels:
  vpn:
    type: wireguard
${o.mtu ? `    mtu: ${o.mtu}\n` : ''}    peers:
      - publicKey: "${o.peerKey}"
        endpoint: ${PEER_EP}:51820
        allowedIPs: [10.200.184.0/24]
        persistentKeepalive: 5
killSwitch: on
fleet:
  verify: { within: ${WITHIN_S}s, tunnels: all, reach: [git] }
overlays:
${hosts.map((h) => `  - when: { hosts: ["${hostName(h.i)}"] }\n    file: hosts/${h.i}.yaml\n`).join('')}`;
  const writeBase = (o: { peerKey: string; mtu?: number }) =>
    writeFileSync(join(author, 'awg.yaml'), baseConfig(o));

  const sync = (h: Host) =>
    awg(h.ns, h.e, ['sync', '--path', h.checkout, '--branch', 'main'], { timeoutMs: 30_000 });
  const cli = (h: Host, args: string[]) =>
    awg(h.ns, h.e, [...args, '--socket', h.socket], { noStateDir: true });
  const daemonStatus = async (h: Host) => {
    const r = await cli(h, ['status', '--json']);
    const s = StatusDocument.parse(r.json());
    if (s.source !== 'daemon') throw new Error('not the daemon view');
    return s;
  };
  const ping = async (h: Host) =>
    (await nsExec(h.ns, 'ping', ['-c', '1', '-W', '1', PEER_TUN], { allowFail: true })).code === 0;

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    peerNs = await createNetns('rp');
    pe = makeAwgEnv();
    work = makeAwgEnv();
    await run('ip', ['-n', peerNs, 'addr', 'add', `${PEER_EP}/32`, 'dev', 'lo']);
    for (let i = 0; i < HOST_COUNT; i++) {
      const ns = await createNetns(`r${i}`);
      const [hostAddr, peerAddr] = under(i);
      const { ifA } = await vethPair(ns, peerNs, {
        addrA: `${hostAddr}/24`,
        addrB: `${peerAddr}/24`,
      });
      await run('ip', ['-n', ns, 'route', 'add', 'default', 'via', peerAddr]);
      const e = makeAwgEnv();
      const keys = wgKeyPair();
      const keyFile = join(e.dir, 'vpn.key');
      writeFileSync(keyFile, keys.privateKey + '\n', { mode: 0o600 });
      hosts.push({
        i,
        ns,
        e,
        checkout: join(e.dir, 'repo'),
        socket: join(e.dir, 'awg.sock'),
        keys,
        keyFile,
        uplink: ifA,
      });
    }
    // the peer: one WireGuard interface for every host; the git server on its tunnel address
    peerKey = wgKeyPair();
    const peerCfg = writeConfig(
      pe,
      'peer.yaml',
      `version: 1
tunnels:
  srv:
    type: wireguard
    privateKey: "${peerKey.privateKey}"
    addresses: [${PEER_TUN}/24]
    listenPort: 51820
    peers:
${hosts.map((h) => `      - publicKey: "${h.keys.publicKey}"\n        allowedIPs: [${hostTun(h.i)}/32]\n`).join('')}`,
    );
    const pr = await awg(peerNs, pe, ['apply', '-f', peerCfg]);
    expect(pr.code, show(pr)).toBe(0);

    origin = join(work.dir, 'origin.git');
    git(work.dir, 'init', '-q', '--bare', '-b', 'main', origin);
    author = join(work.dir, 'author');
    git(work.dir, 'clone', '-q', origin, author);
    mkdirSync(join(author, 'hosts'));
    for (const h of hosts)
      writeFileSync(
        join(author, `hosts/${h.i}.yaml`),
        `tunnels:\n  vpn:\n    privateKey: { file: ${h.keyFile} }\n    addresses: [${hostTun(h.i)}/24]\n`,
      );
    writeBase({ peerKey: peerKey.publicKey });
    baseline = commit('fleet: baseline');
    gitDaemon = nsSpawn(
      peerNs,
      'git',
      [
        'daemon',
        '--reuseaddr',
        '--export-all',
        `--base-path=${work.dir}`,
        `--listen=${PEER_TUN}`,
        '--port=9418',
        work.dir,
      ],
      { env: GIT_ENV },
    );
    await eventually(
      async () =>
        (await nsExec(peerNs, 'git', ['ls-remote', GIT_URL], { allowFail: true, env: GIT_ENV }))
          .code === 0,
      'the git daemon answers on the tunnel address',
      10_000,
    );

    for (const h of hosts) {
      // the first clone as `awg service install --git` would make it; later pulls go through the tunnel
      git(h.e.dir, 'clone', '-q', '--branch', 'main', origin, h.checkout);
      git(h.checkout, 'remote', 'set-url', 'origin', GIT_URL);
      const argv = awgArgv(
        h.ns,
        h.e,
        [
          'daemon',
          '--config',
          join(h.checkout, 'awg.yaml'),
          '--host',
          hostName(h.i),
          '--locked',
          '--state-dir',
          h.e.stateDir,
          '--socket',
          h.socket,
          '--metrics',
          METRICS,
        ],
        { noStateDir: true },
      );
      h.daemon = nsSpawn(h.ns, argv[3]!, argv.slice(4), { env: { ...h.e.env, ...GIT_ENV } });
    }
  }, 120_000);

  afterAll(async () => {
    await gitDaemon?.kill(2000);
    for (const h of hosts) {
      await h.daemon?.kill(5000);
      await awg(h.ns, h.e, ['down', '--direct']).catch(() => undefined);
      await destroyNetns(h.ns);
      cleanupAwgEnv(h.e);
    }
    if (peerNs) {
      await awg(peerNs, pe, ['down']).catch(() => undefined);
      await destroyNetns(peerNs);
    }
    cleanupAwgEnv(pe);
    cleanupAwgEnv(work);
  });

  it('every host converges the baseline and reaches the peer and the repository through its tunnel', async () => {
    for (const h of hosts) {
      await eventually(
        async () =>
          (await daemonStatus(h).catch(() => undefined))?.configState?.revision === baseline,
        `host ${h.i} runs the baseline`,
        60_000,
      );
      await eventually(() => ping(h), `host ${h.i} pings the peer through its tunnel`, 30_000);
      // the kill switch is on: the repository answers through the tunnel only
      const s = await sync(h);
      expect(s.code, show(s)).toBe(0);
    }
  });

  it('a wrong peer key is applied, reverted within the bound with nothing outside the tunnel, and rejected', async () => {
    const h0 = hosts[0]!;
    const wrong = wgKeyPair().publicKey;
    writeBase({ peerKey: wrong });
    const bad = commit('rotate the peer key (wrongly)');
    const veth = h0.uplink;
    const pcap = join(work.dir, 'revert.pcap');
    const dump = nsSpawn(h0.ns, 'tcpdump', ['-i', veth, '-Q', 'out', '-n', '-U', '-w', pcap, 'ip']);
    await eventually(async () => dump.output().includes('listening on'), 'tcpdump listens', 10_000);

    const pulled = new Map<Host, number>();
    for (const h of hosts) {
      const s = await sync(h);
      expect(s.code, show(s)).toBe(0);
      expect(git(h.checkout, 'rev-parse', 'HEAD')).toBe(bad);
      pulled.set(h, Date.now());
    }
    const figures: string[] = [];
    for (const h of hosts) {
      await eventually(
        async () => {
          const c = (await daemonStatus(h)).configState;
          return c?.rejected?.some((r) => r.revision === bad) === true && c.revision === baseline;
        },
        `host ${h.i} rejects ${bad} and runs the baseline again`,
        (WITHIN_S + 30) * 1000,
      );
      const s = await daemonStatus(h);
      const rejectedAt = Date.parse(s.configState!.rejected!.find((r) => r.revision === bad)!.at);
      const decided = rejectedAt - pulled.get(h)!;
      // the revert run is the last run (nothing else changes the host meanwhile)
      const revertMs = s.lastReconcile?.durationMs ?? NaN;
      figures.push(
        `host ${h.i}: rejected ${(decided / 1000).toFixed(1)} s after the pull, revert run ${revertMs} ms`,
      );
      // the bound, plus the apply before it and the status polls around it
      expect(decided).toBeLessThan((WITHIN_S + 15) * 1000);
      await eventually(() => ping(h), `host ${h.i} reaches the peer again`, 20_000);
    }
    await dump.kill(2000);
    const leaks = (
      await run('tcpdump', [
        '-r',
        pcap,
        '-n',
        `ip and not (udp and dst host ${PEER_EP} and dst port 51820)`,
      ])
    ).stdout
      .split('\n')
      .filter((l) => l.trim());
    expect(leaks, `packets outside the tunnel on ${veth} (the host's underlay)`).toEqual([]);
    // the probe saw the host's traffic: its handshake attempts with the wrong key, then the good one
    const wg = (await run('tcpdump', ['-r', pcap, '-n', `udp and dst port 51820`])).stdout;
    expect(wg.split('\n').filter((l) => l.trim()).length).toBeGreaterThan(0);
    console.log(`fleet-rollout (within ${WITHIN_S} s): ${figures.join('; ')}`);

    for (const h of hosts) {
      const s = await daemonStatus(h);
      expect(s.configState).toMatchObject({
        revision: baseline,
        checkoutRevision: bad,
        valid: true,
      });
      const r = s.configState?.rejected?.find((x) => x.revision === bad);
      expect(r?.reason).toMatch(/tunnel\(s\) vpn not up|git \(10\.200\.184\.2:9418\) not reached/);
      const text = await cli(h, ['status']);
      expect(text.stdout).toContain(`revision ${bad.slice(0, 12)} REJECTED`);
      const m = (await nsExec(h.ns, 'curl', ['-sf', `http://${METRICS}/metrics`])).stdout;
      expect(m).toContain(`awg_revision_rejected{rev="${bad}"} 1`);
      expect(m).toContain('awg_config_behind 1');
      const obs = join(h.e.dir, 'observed.json');
      const o = await cli(h, ['status', '--json', '--observed-out', obs]);
      expect(o.code, show(o)).toBe(0);
      const rec = JSON.parse(readFileSync(obs, 'utf8'));
      expect(rec.revision).toBe(baseline);
      expect(rec.rejected.map((x: { revision: string }) => x.revision)).toEqual([bad]);
    }
  });

  it("a commit that leaves the hosts' files as the rejected one had them is rejected without an apply", async () => {
    writeFileSync(join(author, 'README'), 'the peer key rotation is on its way\n');
    const same = commit('docs only');
    for (const h of hosts) {
      const s = await sync(h);
      expect(s.code, show(s)).toBe(0);
    }
    for (const h of hosts) {
      await eventually(
        async () =>
          (await daemonStatus(h)).configState?.rejected?.some((r) => r.revision === same) === true,
        `host ${h.i} holds ${same} back`,
        20_000,
      );
      const c = (await daemonStatus(h)).configState;
      expect(c).toMatchObject({ revision: baseline, checkoutRevision: same });
      expect(c?.verifying).toBeUndefined();
      expect(await ping(h)).toBe(true);
    }
  });

  it('a fixed commit after it is pulled through the tunnel, applied and passes the check', async () => {
    writeBase({ peerKey: peerKey.publicKey, mtu: 1380 });
    const fixed = commit('fix the peer key; mtu 1380');
    for (const h of hosts) {
      const s = await sync(h);
      expect(s.code, show(s)).toBe(0);
    }
    for (const h of hosts) {
      await eventually(
        async () => {
          const c = (await daemonStatus(h)).configState;
          return c?.revision === fixed && !c.verifying;
        },
        `host ${h.i} runs the fix and its check passed`,
        (WITHIN_S + 30) * 1000,
      );
      const s = await daemonStatus(h);
      expect(s.configState?.rejected?.map((r) => r.revision)).not.toContain(fixed);
      expect(await ping(h)).toBe(true);
    }
  });
});
