/**
 * Step 9 item 1, the mechanism of the exec gate against the real kernel (docs/platform-linux.md#fanotify): a
 * fanotify group marked on a private tmpfs holds every exec of a program there
 * (FAN_OPEN_EXEC_PERM) until it is answered; the pid is written into a cgroup while its exec
 * is held and the program starts inside it; closing the group releases a held exec.
 * Only the tmpfs is marked, so no other exec on this machine is ever held. The execs are
 * started through `sh -c 'exec …'` (sh lives on the root file system, unmarked): Node's
 * spawn waits for its child's exec, which would deadlock on an exec we must answer ourselves.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FanotifyGroup,
  FAN_OPEN_EXEC_PERM,
  type FanotifyEvent,
} from '../../src/native/fanotify.js';
import { Poller } from '../../src/native/poll.js';
import { close as closeFd } from '../../src/native/libc.js';
import { removeCgroupTree, waitFor } from '../helpers/procs.js';
import { cgroup2Mount, requireNetnsPrereqs } from '../helpers/netns.js';

const skip = requireNetnsPrereqs();
const CG = `awgt-gate-${randomBytes(4).toString('hex')}`;

describe.skipIf(skip)('fanotify exec gate: the kernel mechanism', () => {
  let dir = '';
  let mount = '';
  const kids: ChildProcess[] = [];
  let group: FanotifyGroup | undefined;
  let poller: Poller | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'awgt-gate-'));
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'awgt-gate', dir]);
    if (r.status !== 0) throw new Error(`mount tmpfs: ${r.stderr}`);
    copyFileSync('/bin/sleep', join(dir, 'awgt-prog'));
    spawnSync('chmod', ['0755', join(dir, 'awgt-prog')]);
    mount = cgroup2Mount()!;
    mkdirSync(join(mount, CG));
  });

  afterAll(() => {
    poller?.close();
    group?.close();
    for (const k of kids) k.kill('SIGKILL');
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
    removeCgroupTree(mount, CG);
  });

  function start(): ChildProcess {
    const k = spawn('/bin/sh', ['-c', `exec ${join(dir, 'awgt-prog')} 30`], { stdio: 'ignore' });
    kids.push(k);
    return k;
  }

  it('an exec from the marked tmpfs is held until answered; the pid placed meanwhile starts in its cgroup', async () => {
    group = FanotifyGroup.open();
    group.markFilesystem(dir);
    const seen: { ev: FanotifyEvent; path: string | undefined; exeWhileHeld: string }[] = [];
    let answer = false;
    const held: FanotifyEvent[] = [];
    const g = group;
    const drain = () => {
      for (const ev of g.readEvents()) {
        const path = FanotifyGroup.pathOf(ev);
        let exe = '';
        try {
          exe = readlinkSync(`/proc/${ev.pid}/exe`);
        } catch {
          /* gone */
        }
        seen.push({ ev, path, exeWhileHeld: exe });
        held.push(ev);
      }
      if (answer)
        for (const ev of held.splice(0)) {
          // the placement the gate makes: the pid into the rule's cgroup, while its exec is held
          writeFileSync(join(mount, CG, 'cgroup.procs'), String(ev.pid));
          g.allow(ev);
        }
    };
    poller = new Poller(g.fd, () => drain());
    const k = start();
    await waitFor('the exec event', () => seen.length > 0);
    expect(seen[0]!.ev.mask & BigInt(FAN_OPEN_EXEC_PERM)).not.toBe(0n);
    expect(seen[0]!.ev.pid).toBe(k.pid);
    expect(seen[0]!.path).toBe(join(dir, 'awgt-prog'));
    // held: the process is still the shell that asked for the exec
    await new Promise((r) => setTimeout(r, 300));
    expect(readlinkSync(`/proc/${k.pid}/exe`)).toBe('/usr/bin/dash');
    answer = true;
    drain();
    await waitFor('the program runs', () => {
      try {
        return readlinkSync(`/proc/${k.pid}/exe`) === join(dir, 'awgt-prog');
      } catch {
        return false;
      }
    });
    expect(readFileSync(`/proc/${k.pid}/cgroup`, 'utf8')).toContain(`/${CG}\n`);
    poller.close();
    poller = undefined;
    group.close();
    group = undefined;
  });

  it('a denied exec fails with EPERM (the fail-closed answer for a block rule that cannot be placed)', async () => {
    const g = FanotifyGroup.open();
    g.markFilesystem(dir);
    const p = new Poller(g.fd, () => {
      for (const ev of g.readEvents()) g.deny(ev);
    });
    try {
      const k = spawn('/bin/sh', ['-c', `exec ${join(dir, 'awgt-prog')} 30`], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      kids.push(k);
      let err = '';
      k.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((r) => k.on('exit', (c) => r(c)));
      expect(code).not.toBe(0);
      expect(err).toMatch(/Permission denied|Operation not permitted/);
    } finally {
      p.close();
      g.close();
    }
  });

  it('closing the group (as when the placer dies) releases a held exec', async () => {
    const g = FanotifyGroup.open();
    g.markFilesystem(dir);
    const unanswered: FanotifyEvent[] = [];
    const p = new Poller(g.fd, () => {
      // read but never answer: the exec stays held
      unanswered.push(...g.readEvents());
    });
    const events = () => unanswered.length;
    const k = start();
    await waitFor('the exec event', () => events() > 0);
    await new Promise((r) => setTimeout(r, 200));
    expect(readlinkSync(`/proc/${k.pid}/exe`)).toBe('/usr/bin/dash');
    p.close();
    g.close();
    for (const ev of unanswered) closeFd(ev.fd);
    await waitFor(
      'the released program runs',
      () => {
        try {
          return readlinkSync(`/proc/${k.pid}/exe`) === join(dir, 'awgt-prog');
        } catch {
          return false;
        }
      },
      1000,
    );
  });
});
