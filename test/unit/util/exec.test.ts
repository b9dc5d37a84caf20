/**
 * Every child process has a deadline: a command that hangs (here a fake `nft` on PATH that
 * ignores SIGTERM and leaves a grandchild holding its pipes) is killed — its whole process
 * group, SIGTERM then SIGKILL — and the call fails with an error naming the command. Before:
 * no default deadline at all (the call never returned), and an explicit one killed only the
 * shell, so the grandchild kept the pipes open and the call still never returned.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AwgError } from '../../../src/errors.js';
import {
  CHILD_MEMORY_MS,
  DryExec,
  KILL_GRACE_MS,
  ProcessExec,
  runProcess,
  spawnedRecently,
} from '../../../src/util/exec.js';
import { MemoryReporter } from '../../../src/util/reporter.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'awg-exec-'));
  const nft = join(dir, 'nft');
  writeFileSync(
    nft,
    `#!/bin/sh\ntrap '' TERM\necho $$ > ${dir}/sh.pid\nsleep 1000 &\necho $! > ${dir}/sleep.pid\nwait\n`,
  );
  chmodSync(nft, 0o755);
});
afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

/** running, not a zombie: where no init reaps orphans (a container's pid 1), a killed
 * grandchild stays a zombie that signal 0 still reaches */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  return !alive(pid);
}

const env = () => ({ ...process.env, PATH: `${dir}${delimiter}${process.env.PATH ?? ''}` });

describe('child process deadlines', () => {
  it('a hanging nft is killed after the default timeout ($AWG_EXEC_TIMEOUT_MS), with its group, and the error names it', async () => {
    vi.stubEnv('AWG_EXEC_TIMEOUT_MS', '300');
    // The deadline and the grace are on a fake clock, moved once the fake nft has set its trap
    // and started its grandchild (it writes sleep.pid last): on real timers a loaded machine
    // could start the shell after the 300 ms had passed (no pid files, nothing to ignore
    // SIGTERM), or see its exit after the grace that follows SIGKILL (another message).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let err: unknown;
    try {
      const exec = new ProcessExec(new MemoryReporter());
      const done = exec
        .mutate('nft', ['-f', '-'], { input: 'table inet awg {}\n', env: env() })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      // vi.waitFor polls on real timers; the test's timeout bounds the wait
      await vi.waitFor(
        () => expect(readFileSync(join(dir, 'sleep.pid'), 'utf8')).toMatch(/^\d+\n$/),
        { timeout: 600_000, interval: 10 },
      );
      vi.advanceTimersByTime(300); // the deadline: SIGTERM, which the shell and sleep ignore
      vi.advanceTimersByTime(KILL_GRACE_MS); // then SIGKILL to the group
      err = await done;
    } finally {
      vi.useRealTimers();
    }
    expect(err).toBeInstanceOf(AwgError);
    expect((err as AwgError).kind).toBe('driver');
    expect((err as AwgError).message).toBe('nft -f - timed out after 300 ms and was killed');
    // SIGTERM was ignored: SIGKILL ended both the shell and the grandchild holding the pipes
    expect(await gone(Number(readFileSync(join(dir, 'sh.pid'), 'utf8')))).toBe(true);
    expect(await gone(Number(readFileSync(join(dir, 'sleep.pid'), 'utf8')))).toBe(true);
  });

  it('an explicit timeout wins over the default; reads have one too', async () => {
    const exec = new ProcessExec(new MemoryReporter());
    await expect(
      exec.read('nft', ['list', 'ruleset'], { timeoutMs: 200, env: env() }),
    ).rejects.toThrow('nft list ruleset timed out after 200 ms and was killed');
  });

  it('a command that ends in time is unaffected (output, exit code)', async () => {
    const r = await runProcess('sh', ['-c', 'cat; echo err >&2; exit 3'], {
      input: 'in',
      timeoutMs: 10_000,
    });
    expect(r).toEqual({ stdout: 'in', stderr: 'err\n', code: 3 });
  });
});

describe('the commands this process ran', () => {
  it('are known by pid while they run and for CHILD_MEMORY_MS after; other pids are not', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const r = await runProcess('sh', ['-c', 'echo $$'], { timeoutMs: 10_000 });
      const pid = Number(r.stdout);
      expect(spawnedRecently(pid)).toBe(true);
      expect(spawnedRecently(process.pid)).toBe(false);
      expect(spawnedRecently(0)).toBe(false);
      vi.setSystemTime(Date.now() + CHILD_MEMORY_MS + 1);
      expect(spawnedRecently(pid)).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('DryExec', () => {
  it('reads through the Exec it wraps; mutations are reported and counted, never run; record says not done', async () => {
    const calls: string[] = [];
    const inner = {
      dryRun: false,
      mutations: 0,
      read: async (cmd: string, args: string[]) => (
        calls.push(`read ${cmd} ${args.join(' ')}`),
        { stdout: 'out', stderr: '', code: 0 }
      ),
      mutate: async (cmd: string, args: string[]) => (
        calls.push(`mutate ${cmd} ${args.join(' ')}`),
        { stdout: '', stderr: '', code: 0 }
      ),
      record: () => true,
    };
    const reporter = new MemoryReporter();
    const dry = new DryExec(inner, reporter);
    expect(dry.dryRun).toBe(true);
    expect((await dry.read('netstat', ['-rn'])).stdout).toBe('out');
    expect(await dry.mutate('route', ['-n', 'add', '-host', '192.0.2.1', '192.168.1.1'])).toEqual({
      stdout: '',
      stderr: '',
      code: 0,
    });
    expect(
      await dry.mutate('pfctl', ['-f', '-'], { display: 'pfctl -a com.awg/awg -f - <<anchor>>' }),
    ).toMatchObject({ code: 0 });
    expect(dry.record('netlink: RTM_NEWROUTE 10.0.0.0/8')).toBe(false);
    expect(calls).toEqual(['read netstat -rn']);
    expect(dry.mutations).toBe(3);
    expect(
      reporter.events
        .filter((e) => e.type === 'mutation')
        .map((e) => (e as { command: string }).command),
    ).toEqual([
      'route -n add -host 192.0.2.1 192.168.1.1',
      'pfctl -a com.awg/awg -f - <<anchor>>',
      'netlink: RTM_NEWROUTE 10.0.0.0/8',
    ]);
  });
});
