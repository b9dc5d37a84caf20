/**
 * Identity rules on the real kernel (issue 43): the pieces below the firewall's rendering.
 * - unit/cgroup: a stand-in unit cgroup `system.slice/awgt-<id>.service` made under the host's
 *   cgroup2 mount with a process already in it; the daemon's keeper (daemon/cgroup-sets.ts)
 *   fills `w_<rule>` and `socket cgroupv2 level N @w_<rule>` (the rule model/who.ts describes)
 *   matches that process's packets; after a "restart" (cgroup removed and made again, a new
 *   process) the keeper's inotify refill makes it match again, and the stale id is gone.
 * - user: the uid the host facts give for a real second user (resources/facts.ts) in
 *   `meta skuid` matches that user's packets and nobody else's.
 * - flatpak: a bubblewrap sandbox with a `/.flatpak-info` stands in for Flatpak; the placer
 *   (procs/placer.ts, real /proc and cgroupfs) moves the sandboxed app into the rule's cgroup.
 * Processes that need the host's /sys run under `nsenter --net` (not `ip netns exec`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rule } from '../../src/config/schema.js';
import { CgroupSetKeeper } from '../../src/daemon/cgroup-sets.js';
import { compileRules } from '../../src/model/match.js';
import { ruleWho, whoSets } from '../../src/model/who.js';
import { openSetWriter } from '../../src/native/nftset.js';
import { linuxIdentityLookup } from '../../src/procs/identity.js';
import { ProcessPlacer } from '../../src/procs/placer.js';
import { NFT_CGROUP_BASE } from '../../src/resources/cgroup/parse.js';
import { cgroupSetComment } from '../../src/resources/firewall/cgroup-sets.js';
import { probeIdentityFacts } from '../../src/resources/facts.js';
import {
  cgroup2Mount,
  netnsPath,
  nftRuleCounters,
  nsExec,
  requireNetnsPrereqs,
  run,
  useNetns,
} from '../helpers/netns.js';
import { eventually } from './perapp-topology.js';

function bwrapMissing(): string | undefined {
  if (existsSync('/usr/bin/bwrap')) return undefined;
  const reason =
    '/usr/bin/bwrap is missing (apt-get install bubblewrap; scripts/setup.sh installs it)';
  if (process.env.CI) throw new Error(`${reason} (CI is set, so this is a failure)`);
  return reason;
}

const skip = requireNetnsPrereqs(['nft', 'setpriv', 'useradd', 'userdel', 'bash']);
const ID = randomBytes(3).toString('hex');
const procs: ChildProcess[] = [];
const cgroupsMade: string[] = [];

/** a bash loop sending one UDP datagram to 127.0.0.1:9 every 100 ms, in cgroup `dir` (absolute) when given */
function sender(ns: string, dir?: string, asUser?: { uid: number; gid: number }): ChildProcess {
  const loop = 'while :; do echo x > /dev/udp/127.0.0.1/9; sleep 0.1; done';
  const script = dir ? `echo $$ > ${dir}/cgroup.procs && ${loop}` : loop;
  const cmd = asUser
    ? [
        'setpriv',
        `--reuid=${asUser.uid}`,
        `--regid=${asUser.gid}`,
        '--clear-groups',
        'bash',
        '-c',
        script,
      ]
    : ['bash', '-c', script];
  const p = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', ...cmd], { stdio: 'ignore' });
  procs.push(p);
  return p;
}

function stop(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  });
}

/** the pids in a cgroup (absolute dir) */
function members(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function emptyAndRemove(dir: string): Promise<void> {
  // a killed bash's `sleep` child may still be in it: kill every member, then rmdir
  for (let i = 0; i < 50 && existsSync(dir); i++) {
    for (const pid of members(dir))
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    try {
      rmdirSync(dir);
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

afterAll(async () => {
  await Promise.all(procs.map(stop));
  for (const d of cgroupsMade.reverse()) await emptyAndRemove(d);
});

describe.skipIf(skip)('identity rules below the firewall render (real kernel)', () => {
  const ns = useNetns('idr');
  const mount = cgroup2Mount()!;
  const nftPrefix = relative(NFT_CGROUP_BASE, mount);

  beforeAll(async () => {
    await nsExec(ns.name, 'ip', ['link', 'set', 'lo', 'up']);
  });

  it('unit: a running process is matched after the fill, and again after a restart (new cgroup id)', async () => {
    const unit = `awgt-${ID}.service`;
    const slice = join(mount, 'system.slice');
    if (!existsSync(slice)) {
      mkdirSync(slice);
      cgroupsMade.push(slice);
    }
    const dir = join(slice, unit);
    mkdirSync(dir);
    cgroupsMade.push(dir);
    // "including ones already running": the process is in the unit before anything is loaded
    const first = sender(ns.name, dir);
    await eventually(() => members(dir).length > 0, 'the stand-in unit has a process');

    const rule = Rule.parse({ name: 'web', match: { unit }, target: 'vpn' });
    const facts = await probeIdentityFacts([rule]);
    const who = ruleWho(rule, facts, { rootDepth: 0 }, 0);
    expect(who).toEqual({ kind: 'cgroups', set: 'w_web', level: 2 });
    const [spec] = whoSets([rule], facts);
    expect(spec).toEqual({ set: 'w_web', paths: [`/system.slice/${unit}`] });
    const nftPath = join(nftPrefix, spec!.paths[0]!);
    // the table as the render is to write it (contract: `socket cgroupv2 level N @w_R`)
    const table = [
      'table inet awg {',
      `  set w_web { type cgroupsv2; comment "${cgroupSetComment(nftPath)}"; }`,
      '  chain out {',
      '    type filter hook output priority 0; policy accept;',
      `    socket cgroupv2 level ${who!.kind === 'cgroups' ? who!.level : 0} @w_web counter`,
      '    udp dport 9 counter',
      '  }',
      '}',
    ].join('\n');
    await nsExec(ns.name, 'nft', ['-f', '-'], { input: table });
    const counters = () => nftRuleCounters(ns.name, 'inet', 'awg');
    // before the fill nothing matches
    await eventually(async () => (await counters())[1]! > 3, 'the sender sends');
    expect((await counters())[0]).toBe(0);

    const writer = openSetWriter({ table: 'awg', netns: ns.name });
    const errors: string[] = [];
    const keeper = new CgroupSetKeeper({
      table: 'awg',
      writer,
      onError: (e) => void errors.push(e.message),
    });
    try {
      keeper.setSets([{ set: 'w_web', paths: [nftPath] }]);
      await eventually(async () => (await counters())[0]! > 3, 'the unit process is matched');
      const listed = await nsExec(ns.name, 'nft', ['list', 'set', 'inet', 'awg', 'w_web']);
      expect(listed.stdout).toContain(`"${nftPath}"`);

      // restart: the process and the cgroup go, a new cgroup (new id) gets a new process
      await stop(first);
      await emptyAndRemove(dir);
      await eventually(() => keeper.stats.writes >= 2, 'the keeper saw the cgroup go');
      const gone = await nsExec(ns.name, 'nft', ['list', 'set', 'inet', 'awg', 'w_web']);
      expect(gone.stdout).not.toContain('elements');
      await nsExec(ns.name, 'nft', ['reset', 'counters', 'table', 'inet', 'awg']);
      mkdirSync(dir);
      sender(ns.name, dir);
      await eventually(async () => (await counters())[0]! > 3, 'the restarted unit is matched');
      const again = await nsExec(ns.name, 'nft', ['list', 'set', 'inet', 'awg', 'w_web']);
      // exactly one element: the new id (the old one was removed, not left behind)
      expect(again.stdout.match(/elements = \{ ([^}]*) \}/)?.[1]?.split(',').length).toBe(1);
      expect(errors).toEqual([]);
    } finally {
      keeper.close();
    }
  });

  it('user: the uid the facts give for a real user matches its packets only', async () => {
    const user = `awgt${ID}`;
    await run('useradd', ['-M', '-N', '-r', '-s', '/usr/sbin/nologin', user]);
    try {
      const rule = Rule.parse({ name: 'u', match: { user }, target: 'vpn' });
      const facts = await probeIdentityFacts([rule]);
      const who = ruleWho(rule, facts, { rootDepth: 0 }, 0);
      const uid = Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim());
      expect(who).toEqual({ kind: 'uid', uid });
      const gid = Number(spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout.trim());
      await nsExec(ns.name, 'nft', ['delete', 'table', 'inet', 'awg'], { allowFail: true });
      await nsExec(ns.name, 'nft', ['-f', '-'], {
        input: [
          'table inet awg {',
          '  chain out {',
          '    type filter hook output priority 0; policy accept;',
          `    meta skuid ${uid} udp dport 9 counter`,
          '    udp dport 9 counter',
          '  }',
          '}',
        ].join('\n'),
      });
      const theirs = sender(ns.name, undefined, { uid, gid });
      const mine = sender(ns.name);
      await eventually(async () => {
        const c = await nftRuleCounters(ns.name, 'inet', 'awg');
        return c[0]! > 3 && c[1]! > c[0]! + 3;
      }, "the user's packets match, root's do not");
      await stop(theirs);
      await stop(mine);
    } finally {
      spawnSync('userdel', ['-f', user]);
    }
    // an unknown name is a located error
    expect(() =>
      ruleWho(
        Rule.parse({ match: { user: `${user}x` }, target: 'vpn' }),
        { users: {} },
        { rootDepth: 0 },
        2,
      ),
    ).toThrow(/rules\[2\]\.match\.user: unknown user/);
  });

  describe.skipIf(bwrapMissing())('flatpak', () => {
    const root = `awgt-fp-${ID}`;
    let work: string;
    beforeAll(() => {
      mkdirSync(join(mount, root, 'ff'), { recursive: true });
      cgroupsMade.push(join(mount, root), join(mount, root, 'ff'));
      work = mkdtempSync(join(tmpdir(), 'awgt-fp-'));
    });
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    it('a bwrap sandbox with /.flatpak-info is placed into the rule cgroup (rescan and exec)', async () => {
      writeFileSync(
        join(work, 'flatpak-info'),
        '[Application]\nname=org.example.Browser\nruntime=runtime/x\n',
      );
      const sandbox = (pidFile: string) =>
        spawn(
          'bwrap',
          [
            '--ro-bind',
            '/usr',
            '/usr',
            '--symlink',
            'usr/bin',
            '/bin',
            '--symlink',
            'usr/lib',
            '/lib',
            '--symlink',
            'usr/lib64',
            '/lib64',
            '--proc',
            '/proc',
            '--dev',
            '/dev',
            '--bind',
            work,
            '/run/out',
            '--ro-bind',
            join(work, 'flatpak-info'),
            '/.flatpak-info',
            '--',
            '/usr/bin/bash',
            '-c',
            `echo $$ > /run/out/${pidFile}; exec sleep 60`,
          ],
          { stdio: 'ignore' },
        );
      const readPid = async (f: string): Promise<number> => {
        await eventually(() => existsSync(join(work, f)), `the sandbox wrote ${f}`);
        return Number(readFileSync(join(work, f), 'utf8').trim());
      };
      const a = sandbox('a.pid');
      procs.push(a);
      const pidA = await readPid('a.pid');
      const rules = [
        Rule.parse({ name: 'ff', match: { flatpak: 'org.example.Browser' }, target: 'vpn' }),
      ];
      const placer = new ProcessPlacer({
        matcher: compileRules(rules, linuxIdentityLookup()),
        cgroupRoot: root,
        mount: { mountPoint: mount, root: '/' },
        // the sandboxes are this test's children: no "own tree" to spare here
        selfPid: 0x7ffffff0,
      });
      try {
        // running before placement started: the rescan moves it
        placer.rescan();
        expect(members(join(mount, root, 'ff'))).toContain(pidA);
        // a new sandbox: its exec event (here handed over directly) places it
        const b = sandbox('b.pid');
        procs.push(b);
        const pidB = await readPid('b.pid');
        placer.onExec(pidB);
        expect(members(join(mount, root, 'ff'))).toContain(pidB);
        // the exec gate's view of the same process
        expect(placer.placeGated(pidB, '/usr/bin/sleep', true)).toBe('kept');
        // a process outside any sandbox is left alone
        expect(placer.placeFor({ exe: '/usr/bin/sleep' })).toBeUndefined();
      } finally {
        placer.close();
        await stop(a);
      }
    });
  });

  // end to end through the daemon (who rendered in route_out, the path each user's connection
  // took): test/netns/destination-rules.test.ts
});
