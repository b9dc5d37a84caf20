/**
 * Step 23, end to end: a fleet cannot be stranded by a valid, wrong revision, and a revision
 * reaches the fleet in waves.
 *
 * Namespace `rp` is the VPN peer and the git server: `git daemon` listens on its tunnel
 * address only (git://10.200.184.2:9418), so a host reaches the repository through its
 * tunnel or not at all. `HOST_COUNT` host namespaces (`r0`, `r1`, …; 5 unless
 * AWG_ROLLOUT_HOSTS says otherwise, at least 3) each follow their own checkout of the
 * repository with `awg daemon --host … --labels-file … --locked --allowed-signers …` and the
 * kill switch on, and pull with `awg sync --allowed-signers …` (what awg-sync.timer runs)
 * through the tunnel. Every commit is SSH-signed. Hosts 0 and 1 are labelled `ring: canary`,
 * the others `ring: main`. Each host's private key is a file of its own, named by a per-host
 * overlay. The hosts' steps run concurrently.
 *
 * - every host converges the first revision (the baseline) and pings the peer;
 * - a commit with a wrong peer public key and `fleet.waves` (the canary ring at once, the rest
 *   in percent waves an hour or two later): the canaries apply it, fail the check
 *   (`fleet.verify.within`), revert to the baseline within the bound and report it (`awg
 *   status` text and JSON, `awg_revision_rejected{rev}`, the observation record); the capture
 *   on each canary's underlay sees nothing but WireGuard to the peer's endpoint from the bad
 *   commit's pull until the revert is done (the kill switch stays closed); the other hosts
 *   never apply it: they run the baseline and show `waiting for wave N`;
 * - a commit that leaves the hosts' files as the rejected one had them (another file) is
 *   rejected by the canaries without being applied, and held by the others;
 * - a fixed commit after it (waves after 0 s, 5 s, 10 s) reaches all hosts in its waves, each
 *   no earlier than its wave is due, and passes the check;
 * - a further commit reaches the canaries only (the rest is an hour away); a commit adding
 *   `fleet.halt: true` (its waves all due at once) stops every host: the hosts that waited stay
 *   on the fixed commit, the canaries on the further one.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DaemonEvent } from '../../src/daemon/core.js';
import { hostSlot } from '../../src/daemon/rollout-waves.js';
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

const skip = requireNetnsPrereqs(['nft', 'git', 'curl', 'tcpdump', 'ssh-keygen']);

/** hosts following the repository: 0 … CANARIES-1 are the canary ring */
const HOST_COUNT = Number(process.env.AWG_ROLLOUT_HOSTS ?? 5);
const CANARIES = 2;
if (!(HOST_COUNT >= CANARIES + 1)) throw new Error(`AWG_ROLLOUT_HOSTS: at least ${CANARIES + 1}`);
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
  canary: boolean;
  /** the host end of its underlay veth */
  uplink: string;
  daemon?: NsProcess;
}

type RolloutEvent = Extract<DaemonEvent, { type: 'rollout' }>;

describe.skipIf(skip)(`fleet rollout: ${HOST_COUNT} hosts, waves, a wrong revision, halt`, () => {
  let peerNs: string;
  let pe: AwgEnv;
  let work: AwgEnv;
  let origin: string;
  let author: string;
  let signer: string;
  let allowed: string;
  let gitDaemon: NsProcess | undefined;
  let peerKey: { privateKey: string; publicKey: string };
  const hosts: Host[] = [];
  let baseline = '';
  /** the last commit every host applied (the fixed one) */
  let fixed = '';
  /** percent of the waves below: between the two lowest slots of the hosts outside the canary ring */
  let split = 0;

  const canaries = () => hosts.filter((h) => h.canary);
  const others = () => hosts.filter((h) => !h.canary);
  const each = <T>(hs: Host[], f: (h: Host) => Promise<T>) => Promise.all(hs.map(f));

  const commit = (msg: string): string => {
    git(author, 'add', '-A');
    git(
      author,
      '-c',
      'gpg.format=ssh',
      '-c',
      `user.signingkey=${signer}`,
      'commit',
      '-q',
      '-S',
      '-m',
      msg,
    );
    git(author, 'push', '-q', 'origin', 'HEAD:main');
    return git(author, 'rev-parse', 'HEAD');
  };
  const committedAt = (rev: string) => Number(git(author, 'log', '-1', '--format=%ct', rev)) * 1000;
  /** the canary ring at once, then `split` %, then everyone else */
  const waves = (after2: string, after3: string, halt = false) => `  waves:
    - { name: canary, labels: { ring: canary } }
    - { percent: ${split}, after: ${after2} }
    - { percent: 100, after: ${after3} }
${halt ? '  halt: true\n' : ''}`;
  const baseConfig = (o: { peerKey: string; mtu?: number; fleet?: string }) => `version: 1
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
${o.fleet ?? ''}overlays:
${hosts.map((h) => `  - when: { hosts: ["${hostName(h.i)}"] }\n    file: hosts/${h.i}.yaml\n`).join('')}`;
  const writeBase = (o: { peerKey: string; mtu?: number; fleet?: string }) =>
    writeFileSync(join(author, 'awg.yaml'), baseConfig(o));

  const sync = (h: Host) =>
    awg(
      h.ns,
      h.e,
      ['sync', '--path', h.checkout, '--branch', 'main', '--allowed-signers', allowed],
      { timeoutMs: 30_000 },
    );
  /** every host pulls `rev` through its tunnel, concurrently */
  const syncAll = (rev: string) =>
    each(hosts, async (h) => {
      const s = await sync(h);
      expect(s.code, show(s)).toBe(0);
      expect(git(h.checkout, 'rev-parse', 'HEAD')).toBe(rev);
      return Date.now();
    });
  const cli = (h: Host, args: string[]) =>
    awg(h.ns, h.e, [...args, '--socket', h.socket], { noStateDir: true });
  const daemonStatus = async (h: Host) => {
    const r = await cli(h, ['status', '--json']);
    const s = StatusDocument.parse(r.json());
    if (s.source !== 'daemon') throw new Error('not the daemon view');
    return s;
  };
  const config = async (h: Host) => (await daemonStatus(h)).configState;
  const ping = async (h: Host) =>
    (await nsExec(h.ns, 'ping', ['-c', '1', '-W', '1', PEER_TUN], { allowFail: true })).code === 0;
  const metrics = async (h: Host) =>
    (await nsExec(h.ns, 'curl', ['-sf', `http://${METRICS}/metrics`])).stdout;
  /** the daemon's `rollout` events for `rev` (its event feed on stdout) */
  const rolloutEvents = (h: Host, rev: string): RolloutEvent[] =>
    h
      .daemon!.output()
      .split('\n')
      .filter((l) => l.includes('"type":"rollout"'))
      .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as RolloutEvent)
      .filter((e) => e.revision === rev);
  /** a host holds `rev` back for its wave, still running `running` */
  const waiting = (h: Host, rev: string, running: string) =>
    eventually(
      async () => {
        const c = await config(h);
        return (
          c?.rollout?.revision === rev && c.rollout.state === 'waiting' && c.revision === running
        );
      },
      `host ${h.i} holds ${rev} back for its wave`,
      30_000,
    );
  /** a host runs `rev` and its check after the apply passed */
  const runs = (h: Host, rev: string, ms = (WITHIN_S + 30) * 1000) =>
    eventually(
      async () => {
        const c = await config(h);
        return c?.revision === rev && !c.verifying && !c.rollout;
      },
      `host ${h.i} runs ${rev} and its check passed`,
      ms,
    );

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
        canary: i < CANARIES,
        uplink: ifA,
      });
    }
    const slots = others()
      .map((h) => hostSlot(hostName(h.i)))
      .sort((a, b) => a - b);
    // wave 2 takes one host outside the ring, wave 3 the rest
    split = Math.round(((slots[0]! + slots[1]!) / 2) * 1000) / 1000;
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
    signer = join(work.dir, 'signer');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ops', '-f', signer]);
    allowed = join(work.dir, 'allowed_signers');
    writeFileSync(allowed, `ops@example.org ${readFileSync(signer + '.pub', 'utf8').trim()}\n`);
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
      const labels = join(h.e.dir, 'labels.yaml');
      writeFileSync(labels, `ring: ${h.canary ? 'canary' : 'main'}\n`);
      const argv = awgArgv(
        h.ns,
        h.e,
        [
          'daemon',
          '--config',
          join(h.checkout, 'awg.yaml'),
          '--host',
          hostName(h.i),
          '--labels-file',
          labels,
          '--locked',
          '--state-dir',
          h.e.stateDir,
          '--socket',
          h.socket,
          '--metrics',
          METRICS,
          '--allowed-signers',
          allowed,
        ],
        { noStateDir: true },
      );
      h.daemon = nsSpawn(h.ns, argv[3]!, argv.slice(4), { env: { ...h.e.env, ...GIT_ENV } });
    }
  }, 120_000);

  afterAll(async () => {
    await gitDaemon?.kill(2000);
    await each(hosts, async (h) => {
      await h.daemon?.kill(5000);
      await awg(h.ns, h.e, ['down', '--direct']).catch(() => undefined);
      await destroyNetns(h.ns);
      cleanupAwgEnv(h.e);
    });
    if (peerNs) {
      await awg(peerNs, pe, ['down']).catch(() => undefined);
      await destroyNetns(peerNs);
    }
    cleanupAwgEnv(pe);
    cleanupAwgEnv(work);
  });

  it('every host converges the baseline and reaches the peer and the repository through its tunnel', async () => {
    await each(hosts, async (h) => {
      await eventually(
        async () => (await config(h).catch(() => undefined))?.revision === baseline,
        `host ${h.i} runs the baseline`,
        60_000,
      );
      await eventually(() => ping(h), `host ${h.i} pings the peer through its tunnel`, 30_000);
      // the kill switch is on: the repository answers through the tunnel only
      const s = await sync(h);
      expect(s.code, show(s)).toBe(0);
    });
  });

  it('a wrong peer key in waves: the canaries apply it, revert within the bound with nothing outside the tunnel and reject it; the others never apply it', async () => {
    const wrong = wgKeyPair().publicKey;
    writeBase({ peerKey: wrong, fleet: waves('1h', '2h') });
    const bad = commit('rotate the peer key (wrongly), in waves');
    const probes = canaries().map((h) => {
      const pcap = join(work.dir, `revert-${h.i}.pcap`);
      const dump = nsSpawn(h.ns, 'tcpdump', [
        '-i',
        h.uplink,
        '-Q',
        'out',
        '-n',
        '-U',
        '-w',
        pcap,
        'ip',
      ]);
      return { h, pcap, dump };
    });
    for (const p of probes)
      await eventually(
        async () => p.dump.output().includes('listening on'),
        'tcpdump listens',
        10_000,
      );

    const pulled = await syncAll(bad);
    const figures: string[] = [];
    await each(hosts, async (h) => {
      if (!h.canary) return waiting(h, bad, baseline);
      await eventually(
        async () => {
          const c = await config(h);
          return c?.rejected?.some((r) => r.revision === bad) === true && c.revision === baseline;
        },
        `host ${h.i} rejects ${bad} and runs the baseline again`,
        (WITHIN_S + 30) * 1000,
      );
      const s = await daemonStatus(h);
      const rejectedAt = Date.parse(s.configState!.rejected!.find((r) => r.revision === bad)!.at);
      const decided = rejectedAt - pulled[h.i]!;
      // the revert run is the last run (nothing else changes the host meanwhile)
      figures.push(
        `host ${h.i}: rejected ${(decided / 1000).toFixed(1)} s after the pull, revert run ${s.lastReconcile?.durationMs ?? NaN} ms`,
      );
      // the bound, plus the apply before it and the status polls around it
      expect(decided).toBeLessThan((WITHIN_S + 15) * 1000);
      await eventually(() => ping(h), `host ${h.i} reaches the peer again`, 20_000);
    });
    for (const { h, pcap, dump } of probes) {
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
      expect(leaks, `packets outside the tunnel on host ${h.i}'s underlay`).toEqual([]);
      // the probe saw the host's traffic: its handshake attempts with the wrong key, then the good one
      const wg = (await run('tcpdump', ['-r', pcap, '-n', `udp and dst port 51820`])).stdout;
      expect(wg.split('\n').filter((l) => l.trim()).length).toBeGreaterThan(0);
    }
    console.log(`fleet-rollout (within ${WITHIN_S} s): ${figures.join('; ')}`);

    await each(canaries(), async (h) => {
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
      const m = await metrics(h);
      expect(m).toContain(`awg_revision_rejected{rev="${bad}"} 1`);
      expect(m).toContain('awg_config_behind 1');
      const obs = join(h.e.dir, 'observed.json');
      const o = await cli(h, ['status', '--json', '--observed-out', obs]);
      expect(o.code, show(o)).toBe(0);
      const rec = JSON.parse(readFileSync(obs, 'utf8'));
      expect(rec.revision).toBe(baseline);
      expect(rec.rejected.map((x: { revision: string }) => x.revision)).toEqual([bad]);
    });
    // the canaries are done with it; the rest still waits (its waves are an hour away) and never ran it
    await each(others(), async (h) => {
      const s = await daemonStatus(h);
      expect(s.configState).toMatchObject({
        revision: baseline,
        checkoutRevision: bad,
        rollout: { revision: bad, state: 'waiting' },
      });
      expect(s.configState?.rejected ?? []).toEqual([]);
      expect(s.configState?.verifying).toBeUndefined();
      expect(s.configState?.rollout?.message).toMatch(/^waiting for wave [23] \(wave-[23]\) at /);
      expect(rolloutEvents(h, bad).map((e) => e.state)).toEqual(['waiting']);
      expect(await metrics(h)).toMatch(
        new RegExp(
          `^awg_rollout_waiting\\{revision="${bad}",wave="[23]",state="waiting"\\} 1$`,
          'm',
        ),
      );
      expect(await ping(h)).toBe(true);
    });
  });

  it("a commit that leaves the hosts' files as the rejected one had them is rejected by the canaries without an apply", async () => {
    writeFileSync(join(author, 'README'), 'the peer key rotation is on its way\n');
    const same = commit('docs only');
    await syncAll(same);
    await each(hosts, async (h) => {
      if (!h.canary) return waiting(h, same, baseline);
      await eventually(
        async () => (await config(h))?.rejected?.some((r) => r.revision === same) === true,
        `host ${h.i} holds ${same} back`,
        20_000,
      );
      const c = await config(h);
      expect(c).toMatchObject({ revision: baseline, checkoutRevision: same });
      expect(c?.verifying).toBeUndefined();
      expect(await ping(h)).toBe(true);
    });
  });

  it('a fixed commit after it reaches every host in its waves, each when its wave is due, and passes the check', async () => {
    writeBase({ peerKey: peerKey.publicKey, mtu: 1380, fleet: waves('5s', '10s') });
    fixed = commit('fix the peer key; mtu 1380; waves of 5 s');
    const at = committedAt(fixed);
    await syncAll(fixed);
    await each(hosts, (h) => runs(h, fixed, 60_000));
    const order: string[] = [];
    for (const h of hosts) {
      const s = await daemonStatus(h);
      expect((s.configState?.rejected ?? []).map((r) => r.revision)).not.toContain(fixed);
      expect(await ping(h)).toBe(true);
      const ev = rolloutEvents(h, fixed);
      if (h.canary) {
        // the canary wave is due at once: nothing held, nothing said
        expect(ev).toEqual([]);
        continue;
      }
      expect(ev.map((e) => e.state)).toEqual(['waiting', 'applying']);
      const wave = ev[1]!.wave!;
      expect(ev[0]!.wave).toBe(wave);
      expect([2, 3]).toContain(wave);
      expect(wave).toBe(hostSlot(hostName(h.i)) < split ? 2 : 3);
      // the committer date has whole seconds: the wave is due `after` past it, not before
      const applied = Date.parse(ev[1]!.at);
      expect(applied).toBeGreaterThanOrEqual(at + (wave === 2 ? 5000 : 10_000));
      order.push(`host ${h.i} wave ${wave} +${((applied - at) / 1000).toFixed(1)} s`);
    }
    expect(order.filter((o) => o.includes('wave 2'))).toHaveLength(1);
    console.log(`fleet-rollout waves (0 s, 5 s, 10 s): ${order.join('; ')}`);
  });

  it('a further commit reaches the canaries; a commit adding fleet.halt stops the hosts still waiting', async () => {
    writeBase({ peerKey: peerKey.publicKey, mtu: 1400, fleet: waves('1h', '1h') });
    const further = commit('mtu 1400, the rest in an hour');
    await syncAll(further);
    await each(hosts, (h) => (h.canary ? runs(h, further) : waiting(h, further, fixed)));
    // the same waves all due now: without the brake every host would take it at once
    writeBase({ peerKey: peerKey.publicKey, mtu: 1400, fleet: waves('0s', '0s', true) });
    const halted = commit('fleet: halt');
    await syncAll(halted);
    await each(hosts, async (h) => {
      await eventually(
        async () => {
          const c = await config(h);
          return c?.rollout?.revision === halted && c.rollout.state === 'halted';
        },
        `host ${h.i} holds ${halted} (halted)`,
        30_000,
      );
      const s = await daemonStatus(h);
      expect(s.configState).toMatchObject({
        revision: h.canary ? further : fixed,
        checkoutRevision: halted,
      });
      expect(s.configState?.verifying).toBeUndefined();
      expect(s.configState?.rollout?.message).toMatch(/^halted \(fleet\.halt\)/);
      expect(rolloutEvents(h, halted).map((e) => e.state)).toEqual(['halted']);
      expect(await metrics(h)).toMatch(
        new RegExp(
          `^awg_rollout_waiting\\{revision="${halted}",wave="[123]",state="halted"\\} 1$`,
          'm',
        ),
      );
      expect(await ping(h)).toBe(true);
    });
  });
});
