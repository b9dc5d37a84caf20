/**
 * One owner per host (resources/owner-lock.ts, pipeline/owner.ts): a second process that would
 * change awg's objects in the same network namespace — another daemon, `awg up` beside one,
 * `awg apply --direct` while one runs, another state directory — is refused with a message
 * naming the owner, and never touches the owner's objects; a dead owner's lock is taken over.
 * Before this step a second `awg up` retried the busy TUN forever and two state directories
 * removed each other's objects. A daemon answers only for its own namespace: a CLI in another
 * one that reaches its socket acts there directly, and says so.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  awg,
  AWG_BIN,
  awgArgv,
  type AwgEnv,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  REPO_ROOT,
  show,
  snapshotHost,
  TEST_RUN_DIR,
  wgKeyPair,
  writeConfig,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import { converged, eventually, upEvents } from './daemon-support.js';

/** the built CLI (dist/): starts faster than the sources through tsx */
const BIN = AWG_BIN;
const run = (ns: string, e: AwgEnv, args: string[]) => awg(ns, e, args, { bin: BIN });

const skip = requireNetnsPrereqs(['nft']);

/** one WireGuard tunnel `name` (no peer answers: the engine runs, nothing else is needed) */
function wgConfig(name: string, third: number, killSwitch = false): string {
  const me = wgKeyPair();
  const peer = wgKeyPair();
  return `version: 1
tunnels:
  ${name}:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.201.${third}.2/32]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.201.9.2:51820
        allowedIPs: [10.202.${third}.0/24]
killSwitch: ${killSwitch ? '{ enabled: true, allowLan: false }' : 'off'}
`;
}

async function links(ns: string): Promise<string[]> {
  const r = await nsExec(ns, 'ip', ['-j', 'link', 'show']);
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
}

describe.skipIf(skip)('one owner per host', () => {
  let ns: string;
  let a: AwgEnv;
  let b: AwgEnv;
  const procs: NsProcess[] = [];

  beforeEach(async () => {
    await ensureDist();
    await sweepStaleNetns();
    ns = await createNetns('owner');
    a = makeAwgEnv();
    b = makeAwgEnv();
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill();
    // whatever a test left: both state directories' objects
    for (const e of [a, b]) if (e) await run(ns, e, ['down', '--direct']);
    if (ns) await destroyNetns(ns);
    cleanupAwgEnv(a);
    cleanupAwgEnv(b);
  });

  function daemon(e: AwgEnv, cfg: string, socket: string): NsProcess {
    const argv = awgArgv(
      ns,
      e,
      ['daemon', '--config', cfg, '--state-dir', e.stateDir, '--socket', socket],
      { noStateDir: true, bin: BIN },
    );
    const p = nsSpawn(ns, argv[3]!, argv.slice(4), { env: e.env });
    procs.push(p);
    return p;
  }

  /** `awg up -f cfg --json` in `where` (default the test's namespace) */
  function startUp(e: AwgEnv, cfg: string, where = ns) {
    const argv = awgArgv(where, e, ['up', '-f', cfg, '--json', '--state-dir', e.stateDir], {
      noStateDir: true,
      bin: BIN,
    });
    const proc = nsSpawn(where, argv[3]!, argv.slice(4), { env: e.env });
    procs.push(proc);
    return { proc, ...upEvents(proc, 60_000) };
  }

  it('a second daemon, `awg up` beside it and `awg apply --direct` are refused, naming the daemon; its objects stay', async () => {
    const cfg = writeConfig(a, 'a.yaml', wgConfig('one', 1));
    const sockA = join(a.dir, 'a.sock');
    const first = daemon(a, cfg, sockA);
    await eventually(
      async () =>
        (await awg(ns, a, ['status', '--json', '--socket', sockA], { noStateDir: true, bin: BIN }))
          .code === 0,
      'the first daemon answers',
      60_000,
    );
    await eventually(async () => (await links(ns)).includes('awg-one'), 'awg-one exists');
    const before = await snapshotHost(ns, a);

    // another daemon on another socket, with another state directory and config
    const cfgB = writeConfig(b, 'b.yaml', wgConfig('two', 2));
    const second = daemon(b, cfgB, join(b.dir, 'b.sock'));
    const code = await second.exited;
    expect(code, second.output()).toBe(5);
    expect(second.output()).toContain(`\`awg daemon\` (pid ${first.pid}`);
    expect(second.output()).toContain(`socket ${sockA}`);

    // `awg up` beside it: refused at once (it used to retry the busy TUN forever)
    const up = startUp(b, cfgB);
    expect(await up.proc.exited, up.proc.output()).toBe(5);
    expect(up.proc.output()).toContain('owns awg');
    expect(up.proc.output()).toContain(`--socket ${sockA}`);

    // a direct apply behind its back, with the daemon's own state directory
    const r = await run(ns, a, ['apply', '-f', cfg, '--direct']);
    expect(r.code, show(r)).toBe(5);
    expect(r.stderr).toContain(`\`awg daemon\` (pid ${first.pid}`);
    const d = await run(ns, b, ['down', '--direct']);
    expect(d.code, show(d)).toBe(5);

    expect(first.child.exitCode).toBeNull();
    expect(await snapshotHost(ns, a)).toEqual(before);
    expect(await links(ns)).not.toContain('awg-two');
  });

  it('two `awg up` with different state directories: the second is refused and removes nothing', async () => {
    const upA = startUp(a, writeConfig(a, 'a.yaml', wgConfig('one', 1)));
    await upA.waitEvent(converged, 0, 60_000);
    const before = await snapshotHost(ns, a);
    const upB = startUp(b, writeConfig(b, 'b.yaml', wgConfig('two', 2)));
    expect(await upB.proc.exited, upB.proc.output()).toBe(5);
    expect(upB.proc.output()).toContain(`\`awg up\` (pid ${upA.proc.pid}`);
    expect(await snapshotHost(ns, a)).toEqual(before);
    expect(upA.proc.child.exitCode).toBeNull();
  });

  it("another state directory is refused while the first one's objects are here, by the lock's record and by the objects' tags", async () => {
    const cfgA = writeConfig(a, 'a.yaml', wgConfig('one', 1, true));
    const ra = await run(ns, a, ['apply', '-f', cfgA]);
    expect(ra.code, show(ra)).toBe(0);
    const before = await snapshotHost(ns, a);

    const cfgB = writeConfig(b, 'b.yaml', wgConfig('two', 2));
    const rb = await run(ns, b, ['apply', '-f', cfgB]);
    expect(rb.code, show(rb)).toBe(5);
    expect(rb.stderr).toContain(`were applied from the state directory ${a.stateDir}`);
    const db = await run(ns, b, ['down']);
    expect(db.code, show(db)).toBe(5);
    expect(await snapshotHost(ns, a)).toEqual(before);

    // the lock file gone (a reboot clears /run; here: deleted): the link's owner tag still says whose
    rmSync(join(TEST_RUN_DIR, await lockName(ns)), { force: true });
    const rb2 = await run(ns, b, ['apply', '-f', cfgB]);
    expect(rb2.code, show(rb2)).toBe(5);
    expect(rb2.stderr).toMatch(/another awg state directory.*link\/awg-one/);
    const db2 = await run(ns, b, ['down']);
    expect(db2.code, show(db2)).toBe(5);
    expect(await snapshotHost(ns, a)).toEqual(before);

    // once the first state directory has removed its objects, the second may apply
    const da = await run(ns, a, ['down']);
    expect(da.code, show(da)).toBe(0);
    const rb3 = await run(ns, b, ['apply', '-f', cfgB]);
    expect(rb3.code, show(rb3)).toBe(0);
    expect(await links(ns)).toContain('awg-two');
  });

  it("a kill-switch-only config (no link): the nft table's owner tag alone keeps another state directory out", async () => {
    const ks = 'version: 1\nkillSwitch: { enabled: true, allowLan: false }\n';
    const ra = await run(ns, a, ['apply', '-f', writeConfig(a, 'ks.yaml', ks)]);
    expect(ra.code, show(ra)).toBe(0);
    const table = await nsExec(ns, 'nft', ['list', 'table', 'inet', 'awg']);
    expect(table.stdout).toMatch(/comment "managed-by=awg owner=[0-9a-f]{12}"/);
    // the boot copy makes the same owner's table
    expect(readFileSync(join(a.stateDir, 'killswitch-boot.nft'), 'utf8')).toMatch(
      /comment "managed-by=awg owner=[0-9a-f]{12}"/,
    );
    const before = await snapshotHost(ns, a);
    rmSync(join(TEST_RUN_DIR, await lockName(ns)), { force: true });
    const rb = await run(ns, b, ['apply', '-f', writeConfig(b, 'ks.yaml', ks)]);
    expect(rb.code, show(rb)).toBe(5);
    expect(rb.stderr).toMatch(/another awg state directory.*firewall\/inet\/awg/);
    expect((await run(ns, b, ['down'])).code).toBe(5);
    expect(await snapshotHost(ns, a)).toEqual(before);
    // its owner still converges with it: the tag is not drift
    const again = await run(ns, a, ['apply', '-f', join(a.dir, 'ks.yaml')]);
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toContain('No changes');
  });

  it('one state directory serves one owner: the same directory from another namespace is refused', async () => {
    const other = await createNetns('owner2');
    try {
      const upA = startUp(a, writeConfig(a, 'a.yaml', wgConfig('one', 1)));
      await upA.waitEvent(converged, 0, 60_000);
      const r = await awg(other, a, ['apply', '-f', writeConfig(a, 'c.yaml', wgConfig('two', 2))], {
        bin: BIN,
      });
      expect(r.code, show(r)).toBe(5);
      expect(r.stderr).toContain(`\`awg up\` (pid ${upA.proc.pid}`);
      expect(r.stderr).toContain('from another network namespace');
      expect(await links(other)).not.toContain('awg-two');
    } finally {
      await destroyNetns(other);
    }
  });

  it("a daemon of another network namespace is not this one's: apply, status and down from here act here, and say so", async () => {
    const other = await createNetns('owner3');
    try {
      const sock = join(a.dir, 'a.sock');
      const d = daemon(a, writeConfig(a, 'a.yaml', wgConfig('one', 1)), sock);
      const viaDaemon = (args: string[]) =>
        awg(ns, a, [...args, '--socket', sock], { noStateDir: true, bin: BIN });
      await eventually(
        async () => (await viaDaemon(['status', '--json'])).code === 0,
        'the daemon answers',
        60_000,
      );
      await eventually(async () => (await links(ns)).includes('awg-one'), 'awg-one exists');
      const note = `note: the awg daemon on ${sock} (pid ${d.pid}) runs in another network namespace`;
      // another state directory's CLI in the other namespace, pointed at that daemon (as
      // \`ip netns exec other awg apply\` finds the machine's daemon at /run/awg/awg.sock)
      const here = (args: string[]) => awg(other, b, [...args, '--socket', sock], { bin: BIN });
      const applied = await here(['apply', '-f', writeConfig(b, 'b.yaml', wgConfig('two', 2))]);
      expect(applied.code, show(applied)).toBe(0);
      expect(applied.stderr).toContain(note);
      expect(await links(other)).toContain('awg-two');
      expect(await links(ns)).not.toContain('awg-two');
      const st = await here(['status', '--json']);
      expect(st.code, show(st)).toBe(0);
      expect(st.stderr).toContain(note);
      expect((JSON.parse(st.stdout) as { source: string }).source).not.toBe('daemon');
      const down = await here(['down']);
      expect(down.code, show(down)).toBe(0);
      expect(await links(other)).not.toContain('awg-two');
      // the daemon's namespace is as it was, and its own CLI still goes through the daemon
      expect(await links(ns)).toContain('awg-one');
      const mine = await viaDaemon(['status', '--json']);
      expect(mine.code, show(mine)).toBe(0);
      expect(mine.stderr).not.toContain('note:');
      expect((JSON.parse(mine.stdout) as { source: string }).source).toBe('daemon');
    } finally {
      await destroyNetns(other);
    }
  });

  it("a dead owner's lock is taken over: `awg up` killed with SIGKILL, then started again", async () => {
    const cfg = writeConfig(a, 'a.yaml', wgConfig('one', 1));
    const up1 = startUp(a, cfg);
    await up1.waitEvent(converged, 0, 60_000);
    up1.proc.child.kill('SIGKILL');
    await up1.proc.exited;
    const up2 = startUp(a, cfg);
    await up2.waitEvent(converged, 0, 60_000);
    expect(up2.proc.output()).toContain(`took over from \`awg up\` (pid ${up1.proc.pid}`);
    expect(existsSync(a.stateDir)).toBe(true);
  });
});

/** the lock file of a namespace: `owner-net-<cookie>.lock`, the cookie read as awg reads it */
async function lockName(ns: string): Promise<string> {
  const script = `import('${join(REPO_ROOT, 'dist/native/owner-lock.js')}').then((m) => process.stdout.write(m.netnsScope()))`;
  const r = await nsExec(ns, process.execPath, ['-e', script]);
  return `owner-${r.stdout.trim()}.lock`;
}
