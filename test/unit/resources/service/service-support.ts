/**
 * What the tests of `awg service` (service-*.test.ts) share: two daemon invocations (a plain
 * one and one with characters systemd would otherwise interpret), an Exec that records
 * instead of running, temporary directories, captured output and systemd-analyze.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Io } from '../../../../src/cli/output.js';
import type { DaemonInvocation } from '../../../../src/resources/service/render.js';
import type { Exec, ExecOptions, ExecResult } from '../../../../src/util/exec.js';
import { quoteArg } from '../../../../src/util/exec.js';

export const INV: DaemonInvocation = {
  node: '/usr/bin/node',
  bin: '/usr/lib/node_modules/awg/bin/awg.js',
  config: '/etc/awg/awg.yaml',
};
export const ODD: DaemonInvocation = {
  node: '/opt/node 20/bin/node',
  bin: '/opt/awg/bin/awg.js',
  config: '/etc/awg/100%"$HOME".yaml',
  socket: '/run/awg/awg.sock',
  socketGroup: 'awg',
  metrics: '127.0.0.1:9586',
  stateDir: '/var/lib/awg',
};

/** Exec that records every call and runs nothing; canned answers for reads. */
export class RecordingExec implements Exec {
  readonly log: string[] = [];
  readonly reads: string[] = [];
  constructor(
    readonly dryRun = false,
    private readonly answers: Record<string, ExecResult> = {},
  ) {}
  private n = 0;
  get mutations(): number {
    return this.n;
  }
  async read(cmd: string, args: string[], _o?: ExecOptions): Promise<ExecResult> {
    const line = [cmd, ...args].map(quoteArg).join(' ');
    this.reads.push(line);
    return this.answers[line] ?? { stdout: '', stderr: 'not found', code: 1 };
  }
  async mutate(cmd: string, args: string[], o?: ExecOptions): Promise<ExecResult> {
    this.record(o?.display ?? [cmd, ...args].map(quoteArg).join(' '));
    return { stdout: '', stderr: '', code: 0 };
  }
  record(display: string): boolean {
    this.n++;
    this.log.push(display);
    return !this.dryRun;
  }
}

const cleanups: (() => void)[] = [];
/** removes the directories tmp() made; each test file runs it afterEach */
export function removeTmp(): void {
  for (const c of cleanups.splice(0)) c();
}
export function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'awg-svc-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}
export function capture(): { io: Io; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { out: (s) => (out += s), err: (s) => (err += s), colour: false },
    out: () => out,
    err: () => err,
  };
}

const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
/** scripts/setup.sh installs systemd; under CI a missing systemd-analyze fails these tests instead of skipping them */
export const noAnalyze = !analyze && process.env.CI !== 'true';
export function systemdAnalyze(): string {
  if (!analyze)
    throw new Error('systemd-analyze is missing: install systemd (scripts/setup.sh does)');
  return analyze;
}
