/**
 * What the daemon-level rollout tests share (rollout-daemon, rollout-restart): a git checkout
 * whose commits carry a fixed date, and a wait for a daemon event that resolves as it arrives
 * (no polling, no sleep).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DaemonEvent } from '../../../src/daemon/core.js';

/** git in `dir()` with commits dated `at`, and a commit of awg.yaml's `text` */
export function gitCheckout(dir: () => string, at: number) {
  const git = (args: string[]) =>
    execFileSync('git', ['-C', dir(), ...args], {
      env: {
        ...process.env,
        HOME: dir(),
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_COMMITTER_DATE: new Date(at).toISOString(),
        GIT_AUTHOR_DATE: new Date(at).toISOString(),
      },
      encoding: 'utf8',
    }).trim();
  const commit = (text: string, msg: string) => {
    writeFileSync(join(dir(), 'awg.yaml'), text);
    git(['add', 'awg.yaml']);
    git(['commit', '-q', '-m', msg]);
    return git(['rev-parse', 'HEAD']);
  };
  return { git, commit };
}

/** the first event from index `from` on that `pred` takes; waits on `waiters` (called per event) */
export function eventWait(events: () => DaemonEvent[], waiters: () => (() => void)[]) {
  return (pred: (e: DaemonEvent) => boolean, from = 0): Promise<DaemonEvent> =>
    new Promise((res) => {
      const look = () => {
        const hit = events().slice(from).find(pred);
        if (hit) res(hit);
        else waiters().push(look);
      };
      look();
    });
}
