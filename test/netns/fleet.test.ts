/**
 * Step 11, end to end: one git repository configures two hosts, each following it.
 *
 * A bare "origin" holds a base config with two host overlays and one age-encrypted private
 * key per host. Namespaces `fa` and `fb` are the hosts: each has its own checkout (cloned as
 * `awg service install --git` does), its own age identity, and its own `awg daemon --host …
 * --locked` following that checkout; `awg sync --allowed-signers …` (what awg-sync.timer
 * runs) moves it. Namespace `fp` is the VPN peer both hosts reach over their own veth.
 *
 * - both converge to their own desired state (own key, own tunnel address) and ping the peer;
 * - the secret of A decrypts on A and is refused on B by name;
 * - the documented record (`awg status --json --observed-out F` on the host: the daemon
 *   makes it) is complete: `awg diff --observed F` off the host (as nobody, another state
 *   directory, no secrets) says "no changes" for the running revision and gives the plan
 *   `awg diff` gives on it for a change;
 * - a commit that changes A converges A only (B's plan is empty);
 * - an invalid commit leaves both on the last good revision, with an error event, the
 *   status saying so and awg_config_valid 0;
 * - an unsigned commit is refused by `awg sync` and the checkout stays;
 * - the locked daemon refuses apply and down through its API.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusDocument } from '../../src/daemon/status-document.js';
import { PlanDocument } from '../../src/model/plan-document.js';
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

const skip = requireNetnsPrereqs(['nft', 'git', 'ssh-keygen', 'curl', 'setpriv']);

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

const PEER_EP = '10.200.173.2';
const PEER_TUN = '10.200.174.2';
const HOSTS = {
  a: { name: 'fleet-a', tun: '10.200.174.1', under: ['10.200.171.1', '10.200.171.2'] },
  b: { name: 'fleet-b', tun: '10.200.174.3', under: ['10.200.172.1', '10.200.172.2'] },
} as const;
type H = keyof typeof HOSTS;
const METRICS = '127.0.0.1:19586';

interface Host {
  ns: string;
  e: AwgEnv;
  identity: string;
  recipient: string;
  checkout: string;
  socket: string;
  daemon?: NsProcess;
  keys: { privateKey: string; publicKey: string };
}

describe.skipIf(skip)('fleet: two hosts follow one repository', () => {
  let peerNs: string;
  let pe: AwgEnv;
  let ci: string;
  let work: AwgEnv;
  let origin: string;
  let author: string;
  let signer: string;
  let allowed: string;
  const hosts = {} as Record<H, Host>;

  const commit = (msg: string, opts: { sign?: boolean } = {}): string => {
    git(author, 'add', '-A');
    git(
      author,
      ...(opts.sign === false ? [] : ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${signer}`]),
      'commit',
      '-q',
      ...(opts.sign === false ? [] : ['-S']),
      '-m',
      msg,
    );
    git(author, 'push', '-q', 'origin', 'HEAD:main');
    return git(author, 'rev-parse', 'HEAD');
  };
  const sync = (h: H) =>
    awg(hosts[h].ns, hosts[h].e, [
      'sync',
      '--path',
      hosts[h].checkout,
      '--branch',
      'main',
      '--allowed-signers',
      allowed,
    ]);
  const cli = (h: H, args: string[]) =>
    awg(hosts[h].ns, hosts[h].e, [...args, '--socket', hosts[h].socket], { noStateDir: true });
  const status = async (h: H) => {
    const r = await cli(h, ['status', '--json']);
    return StatusDocument.parse(r.json());
  };
  const daemonStatus = async (h: H) => {
    const s = await status(h);
    if (s.source !== 'daemon') throw new Error('not the daemon view');
    return s;
  };
  const metrics = async (h: H) =>
    (await nsExec(hosts[h].ns, 'curl', ['-sf', `http://${METRICS}/metrics`])).stdout;
  const mtu = async (h: H) =>
    Number(
      JSON.parse((await nsExec(hosts[h].ns, 'ip', ['-j', 'link', 'show', 'awg-vpn'])).stdout)[0]
        .mtu,
    );
  const ping = async (h: H) =>
    (await nsExec(hosts[h].ns, 'ping', ['-c', '1', '-W', '2', PEER_TUN], { allowFail: true }))
      .code === 0;

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    peerNs = await createNetns('fp');
    pe = makeAwgEnv();
    work = makeAwgEnv();
    ci = await createNetns('fci');
    await run('ip', ['-n', peerNs, 'addr', 'add', `${PEER_EP}/32`, 'dev', 'lo']);
    for (const h of ['a', 'b'] as H[]) {
      const ns = await createNetns(`f${h}`);
      const [hostAddr, peerAddr] = HOSTS[h].under;
      await vethPair(ns, peerNs, { addrA: `${hostAddr}/24`, addrB: `${peerAddr}/24` });
      await run('ip', ['-n', ns, 'route', 'add', 'default', 'via', peerAddr!]);
      const e = makeAwgEnv();
      const identity = join(e.dir, 'age-identity.txt');
      const kg = await awg(ns, e, ['secret', 'keygen', '-o', identity]);
      expect(kg.code, show(kg)).toBe(0);
      e.env.AWG_AGE_IDENTITY = identity;
      hosts[h] = {
        ns,
        e,
        identity,
        recipient: kg.stdout.trim(),
        checkout: join(e.dir, 'repo'),
        socket: join(e.dir, 'awg.sock'),
        keys: wgKeyPair(),
      };
    }
    // the peer: one WireGuard interface, both hosts as its peers
    const pk = wgKeyPair();
    const peerCfg = writeConfig(
      pe,
      'peer.yaml',
      `version: 1
tunnels:
  srv:
    type: wireguard
    privateKey: "${pk.privateKey}"
    addresses: [${PEER_TUN}/24]
    listenPort: 51820
    peers:
${(['a', 'b'] as H[]).map((h) => `      - publicKey: "${hosts[h].keys.publicKey}"\n        allowedIPs: [${HOSTS[h].tun}/32]\n`).join('')}`,
    );
    const pr = await awg(peerNs, pe, ['apply', '-f', peerCfg]);
    expect(pr.code, show(pr)).toBe(0);

    // the repository: base + overlays + one encrypted key per host, every commit signed
    origin = join(work.dir, 'origin.git');
    git(work.dir, 'init', '-q', '--bare', '-b', 'main', origin);
    author = join(work.dir, 'author');
    git(work.dir, 'clone', '-q', origin, author);
    signer = join(work.dir, 'signer');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ops', '-f', signer]);
    allowed = join(work.dir, 'allowed_signers');
    writeFileSync(allowed, `ops@example.org ${readFileSync(signer + '.pub', 'utf8').trim()}\n`);
    mkdirSync(join(author, 'hosts'));
    mkdirSync(join(author, 'secrets'));
    writeFileSync(
      join(author, 'awg.yaml'),
      `version: 1
tunnels:
  vpn:
    type: wireguard
    peers:
      - publicKey: "${pk.publicKey}"
        endpoint: ${PEER_EP}:51820
        allowedIPs: [10.200.174.0/24]
        persistentKeepalive: 5
overlays:
  - when: { hosts: ["fleet-a"] }
    file: hosts/a.yaml
  - when: { hosts: ["fleet-b"] }
    file: hosts/b.yaml
`,
    );
    for (const h of ['a', 'b'] as H[]) {
      writeFileSync(
        join(author, `hosts/${h}.yaml`),
        `tunnels:\n  vpn:\n    privateKey: { age: ../secrets/${h}.age }\n    addresses: [${HOSTS[h].tun}/24]\n`,
      );
      writeFileSync(join(work.dir, `${h}.key`), hosts[h].keys.privateKey + '\n', { mode: 0o600 });
      const enc = await awg(ci, work, [
        'secret',
        'encrypt',
        '-r',
        hosts[h].recipient,
        '-a',
        '-o',
        join(author, `secrets/${h}.age`),
        join(work.dir, `${h}.key`),
      ]);
      expect(enc.code, show(enc)).toBe(0);
    }
    commit('fleet: two hosts');

    for (const h of ['a', 'b'] as H[]) {
      const x = hosts[h];
      // what `awg service install --git` does before it starts the units
      git(x.e.dir, 'clone', '-q', '--branch', 'main', origin, x.checkout);
      const argv = awgArgv(
        x.ns,
        x.e,
        [
          'daemon',
          '--config',
          join(x.checkout, 'awg.yaml'),
          '--host',
          HOSTS[h].name,
          '--locked',
          '--state-dir',
          x.e.stateDir,
          '--socket',
          x.socket,
          '--metrics',
          METRICS,
          // a rollout trailer counts only on a commit verified against these
          '--allowed-signers',
          allowed,
        ],
        { noStateDir: true },
      );
      x.daemon = nsSpawn(x.ns, argv[3]!, argv.slice(4), { env: x.e.env });
    }
  }, 120_000);

  afterAll(async () => {
    for (const h of ['a', 'b'] as H[]) {
      const x = hosts[h];
      if (!x) continue;
      await x.daemon?.kill(5000);
      await awg(x.ns, x.e, ['down', '--direct']).catch(() => undefined);
      await destroyNetns(x.ns);
      cleanupAwgEnv(x.e);
    }
    if (peerNs) {
      await awg(peerNs, pe, ['down']).catch(() => undefined);
      await destroyNetns(peerNs);
    }
    if (ci) await destroyNetns(ci);
    cleanupAwgEnv(pe);
    cleanupAwgEnv(work);
  });

  it('each host converges to its own desired state and reaches the peer', async () => {
    const head = git(author, 'rev-parse', 'HEAD');
    for (const h of ['a', 'b'] as H[]) {
      await eventually(async () => (await cli(h, ['status'])).code === 0, `${h} converged`, 60_000);
      await eventually(() => ping(h), `${h} pings the peer through its tunnel`, 30_000);
      const s = await daemonStatus(h);
      expect(s.configState).toMatchObject({
        revision: head,
        checkoutRevision: head,
        valid: true,
        host: HOSTS[h].name,
        sources: [join(hosts[h].checkout, 'awg.yaml'), join(hosts[h].checkout, `hosts/${h}.yaml`)],
      });
      const addr = (await nsExec(hosts[h].ns, 'ip', ['-j', 'addr', 'show', 'awg-vpn'])).stdout;
      expect(addr).toContain(HOSTS[h].tun);
      const m = await metrics(h);
      expect(m).toContain(
        `awg_config_info{revision="${head}",host=""} 1`.replace(
          'host=""',
          `host="${HOSTS[h].name}"`,
        ),
      );
      expect(m).toMatch(/^awg_config_valid 1$/m);
      expect(m).toMatch(/^awg_config_behind 0$/m);
      expect(m).toMatch(/^awg_tunnel_up\{tunnel="vpn"\} 1$/m);
    }
  }, 150_000);

  it("A's secret decrypts on A and is refused on B, by name", async () => {
    const onB = await awg(hosts.b.ns, hosts.b.e, [
      'validate',
      '-f',
      join(hosts.b.checkout, 'awg.yaml'),
      '--host',
      'fleet-a',
    ]);
    expect(onB.code).toBe(1);
    expect(onB.stderr).toMatch(
      /hosts\/a\.yaml:3:\d+: tunnels\.vpn\.privateKey: .*secrets\/a\.age is not encrypted to this host's age identity/,
    );
    expect(onB.stderr + onB.stdout).not.toContain(hosts.a.keys.privateKey.slice(0, 16));
    const onA = await awg(hosts.a.ns, hosts.a.e, [
      'validate',
      '-f',
      join(hosts.a.checkout, 'awg.yaml'),
      '--host',
      'fleet-a',
    ]);
    expect(onA.code, show(onA)).toBe(0);
    const dec = await awg(hosts.b.ns, hosts.b.e, [
      'secret',
      'decrypt',
      join(hosts.b.checkout, 'secrets/a.age'),
    ]);
    expect(dec.code).toBe(4);
  });

  it('a pull request plans the same off the host (recorded observation, as nobody, no secrets) as on it', async () => {
    // off the host: another namespace, nobody, a state directory it cannot even create
    for (const p of [work.dir, author, join(author, 'hosts'), join(author, 'secrets')])
      chmodSync(p, 0o755);
    for (const f of ['awg.yaml', 'hosts/a.yaml', 'hosts/b.yaml']) chmodSync(join(author, f), 0o644);
    const planOff = (obs: string) =>
      awg(
        ci,
        work,
        [
          'diff',
          '--json',
          '--observed',
          obs,
          '--skip-secrets',
          '-f',
          join(author, 'awg.yaml'),
          '--host',
          'fleet-a',
          '--os',
          'linux',
          '--state-dir',
          '/nonexistent/awg',
        ],
        {
          noStateDir: true,
          wrap: ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--'],
          extraEnv: { AWG_AGE_IDENTITY: '/nonexistent/id.txt' },
        },
      );
    // the documented command on a daemon host: no --state-dir, the daemon answers (it holds
    // the applied record, its claims and the facts of the revision it runs)
    const obs = join(work.dir, 'fleet-a.observed.json');
    const rec = await cli('a', ['status', '--json', '--observed-out', obs]);
    expect(rec.code, show(rec)).toBe(0);
    expect(StatusDocument.parse(rec.json()).source).toBe('daemon');
    expect(rec.stderr).toContain(`recorded the observation in ${obs}`);
    chmodSync(obs, 0o644);
    // and the same taken directly, with the daemon's state directory
    const direct = join(work.dir, 'fleet-a.direct.json');
    const recD = await awg(hosts.a.ns, hosts.a.e, [
      'status',
      '--json',
      '--direct',
      '--observed-out',
      direct,
    ]);
    expect(recD.code, show(recD)).toBe(0);
    expect(StatusDocument.parse(recD.json()).source).toBe('direct');
    chmodSync(direct, 0o644);
    const [viaDaemon, viaDirect] = [obs, direct].map(
      (f) => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>,
    );
    // the HTTP API answers the same record
    const http = JSON.parse(
      (
        await nsExec(hosts.a.ns, 'curl', [
          '-sf',
          '--unix-socket',
          hosts.a.socket,
          'http://awg/api/observation',
        ])
      ).stdout,
    ) as Record<string, unknown>;
    for (const k of ['kind', 'version', 'host', 'lastApplied', 'claims', 'facts']) {
      expect(viaDaemon![k], k).toEqual(viaDirect![k]);
      expect(http[k], k).toEqual(viaDaemon![k]);
    }
    expect(viaDaemon!.host).toBe('fleet-a');
    // no secret: the private key only as its fingerprint
    expect(readFileSync(obs, 'utf8')).not.toContain(hosts.a.keys.privateKey);
    // the running revision: nothing to do (the direct record's equal parts plan the same)
    const same = await planOff(obs);
    expect(same.code, show(same)).toBe(0);
    expect(PlanDocument.parse(same.json()).changes).toEqual([]);

    // the proposed change, not yet merged: A's tunnel MTU
    writeFileSync(
      join(author, 'hosts/a.yaml'),
      readFileSync(join(author, 'hosts/a.yaml'), 'utf8') + '    mtu: 1380\n',
    );
    const onHost = await awg(hosts.a.ns, hosts.a.e, [
      'diff',
      '--json',
      '--direct',
      '-f',
      join(author, 'awg.yaml'),
      '--host',
      'fleet-a',
    ]);
    expect(onHost.code, show(onHost)).toBe(2);
    const off = await planOff(obs);
    expect(off.code, show(off)).toBe(2);
    expect(off.stderr).toMatch(
      /planned against .*fleet-a\.observed\.json \(host .*\); 1 secret value\(s\) not readable here, assumed unchanged/,
    );
    const strip = (d: PlanDocument) => d.changes.map((c) => ({ ...c }));
    const a = PlanDocument.parse(onHost.json());
    const b = PlanDocument.parse(off.json());
    expect(strip(b)).toEqual(strip(a));
    expect(a.changes.map((c) => `${c.action} ${c.id}`)).toEqual(['update link/awg-vpn']);
    // and the effective config renders the same anywhere
    const r1 = await awg(hosts.a.ns, hosts.a.e, [
      'render',
      '-f',
      join(author, 'awg.yaml'),
      '--host',
      'fleet-a',
      '--json',
    ]);
    const r2 = await awg(ci, work, [
      'render',
      '-f',
      join(author, 'awg.yaml'),
      '--host',
      'fleet-a',
      '--os',
      'linux',
      '--labels',
      '',
      '--json',
    ]);
    expect(r2.json<{ config: unknown }>().config).toEqual(r1.json<{ config: unknown }>().config);
  }, 60_000);

  it('a commit changing host A converges A only', async () => {
    const head = commit('fleet-a: mtu 1380');
    const bBefore = await daemonStatus('b');
    for (const h of ['a', 'b'] as H[]) {
      const s = await sync(h);
      expect(s.code, show(s)).toBe(0);
      expect(s.stdout).toContain(`→ ${head.slice(0, 12)}`);
    }
    await eventually(
      async () =>
        (await mtu('a')) === 1380 && (await daemonStatus('a')).configState?.revision === head,
      'A applied the new revision',
      60_000,
    );
    await eventually(
      async () => (await daemonStatus('b')).configState?.revision === head,
      'B read the new revision',
      60_000,
    );
    const b = await daemonStatus('b');
    expect(b.configState?.lastPlanChanges).toBe(0);
    expect(b.objects).toEqual(bBefore.objects);
    expect(await mtu('b')).toBe(1420);
    expect(await ping('a')).toBe(true);
    expect(await ping('b')).toBe(true);
  }, 120_000);

  it('an invalid commit leaves both hosts on the last good revision, with an error event and metric', async () => {
    const good = git(author, 'rev-parse', 'HEAD');
    writeFileSync(
      join(author, 'awg.yaml'),
      readFileSync(join(author, 'awg.yaml'), 'utf8') + 'killSwitch: maybe\n',
    );
    const bad = commit('broken');
    for (const h of ['a', 'b'] as H[]) expect((await sync(h)).code).toBe(0);
    for (const h of ['a', 'b'] as H[]) {
      await eventually(
        async () => (await daemonStatus(h)).configState?.valid === false,
        `${h} reports the invalid config`,
        60_000,
      );
      const s = await daemonStatus(h);
      expect(s.configState).toMatchObject({ revision: good, checkoutRevision: bad, valid: false });
      expect(s.configState?.error).toMatch(/awg\.yaml:\d+:\d+: killSwitch/);
      expect(s.state).toBe('converged');
      const m = await metrics(h);
      expect(m).toMatch(/^awg_config_valid 0$/m);
      expect(m).toMatch(/^awg_config_behind 1$/m);
      expect(m).toMatch(/^awg_errors_total\{kind="invalid-config"\} [1-9]/m);
      const out = hosts[h].daemon!.output();
      expect(out).toMatch(/"type":"config-changed"[^\n]*"valid":false/);
      expect(await ping(h)).toBe(true);
    }
  }, 120_000);

  it('an unsigned commit is refused by awg sync; the checkout stays', async () => {
    const at = git(hosts.a.checkout, 'rev-parse', 'HEAD');
    writeFileSync(
      join(author, 'awg.yaml'),
      readFileSync(join(author, 'awg.yaml'), 'utf8').replace('killSwitch: maybe\n', ''),
    );
    commit('unsigned fix', { sign: false });
    const s = await sync('a');
    expect(s.code).toBe(4);
    expect(s.stderr).toMatch(/is not signed by a key in .*allowed_signers/);
    expect(git(hosts.a.checkout, 'rev-parse', 'HEAD')).toBe(at);
  }, 60_000);

  it('waves: the canary applies a commit, the other host waits for its wave; a signed Awg-Rollout: immediate commit goes everywhere', async () => {
    // (run alone, the daemons may still be starting)
    await eventually(
      async () =>
        (await daemonStatus('b').catch(() => undefined))?.configState?.revision !== undefined,
      'B runs a revision',
      60_000,
    );
    const before = (await daemonStatus('b')).configState?.revision;
    writeFileSync(
      join(author, 'awg.yaml'),
      readFileSync(join(author, 'awg.yaml'), 'utf8').replace('killSwitch: maybe\n', '') +
        'fleet:\n  waves:\n    - { hosts: [fleet-a] }\n    - { percent: 100, after: 1h }\n',
    );
    const waved = commit('fleet: roll out in waves');
    for (const h of ['a', 'b'] as H[]) expect((await sync(h)).code).toBe(0);
    await eventually(
      async () => (await daemonStatus('a')).configState?.revision === waved,
      'the canary applied the commit',
      60_000,
    );
    await eventually(
      async () => (await daemonStatus('b')).configState?.rollout?.revision === waved,
      'B holds the commit back',
      60_000,
    );
    const b = await daemonStatus('b');
    expect(b.configState).toMatchObject({
      revision: before,
      checkoutRevision: waved,
      rollout: { state: 'waiting', wave: 2 },
    });
    expect(b.configState?.rollout?.message).toMatch(/^waiting for wave 2 \(wave-2\) at /);
    expect(await metrics('b')).toMatch(
      new RegExp(`^awg_rollout_waiting\\{revision="${waved}",wave="2",state="waiting"\\} 1$`, 'm'),
    );
    expect(hosts.b.daemon!.output()).toMatch(/"type":"rollout"[^\n]*"state":"waiting"/);

    writeFileSync(join(author, 'EMERGENCY'), 'now\n');
    const urgent = commit('fleet: urgent\n\nAwg-Rollout: immediate');
    for (const h of ['a', 'b'] as H[]) expect((await sync(h)).code).toBe(0);
    for (const h of ['a', 'b'] as H[])
      await eventually(
        async () => (await daemonStatus(h)).configState?.revision === urgent,
        `${h} applied the urgent commit`,
        60_000,
      );
    expect((await daemonStatus('b')).configState?.rollout).toBeUndefined();
  }, 180_000);

  it('locked: the API refuses apply and down; diff and status still answer', async () => {
    const ap = await cli('a', ['apply', '-f', join(hosts.a.checkout, 'awg.yaml')]);
    expect(ap.code).toBe(4);
    expect(ap.stderr).toMatch(/locked to its config repository/);
    const dn = await cli('a', ['down']);
    expect(dn.code).toBe(4);
    expect((await cli('a', ['status'])).code).toBe(0);
  }, 60_000);
});
