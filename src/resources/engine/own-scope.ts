/**
 * Where a detached engine lives under systemd. `awg apply` run from a systemd *service* (a
 * timer's oneshot, a configuration-management task) is in that service's cgroup, and so is
 * every process it leaves running: when the service's main process ends, systemd stops the
 * unit and kills its cgroup (KillMode=control-group), engines included — the tunnel goes down
 * behind an apply that reported success (fail-closed under the kill switch, but down). From a
 * login shell, ssh or cron the caller is in a session scope, which outlives its first process.
 *
 * So an engine started from inside a service gets a transient scope of its own: `systemd-run
 * --scope` registers its own pid as the scope, then execs the command — the pid, its start
 * time (process-identity.ts) and its stdio stay the engine's. Anywhere else (no systemd as
 * PID 1, a session scope, a container without systemd-run) the command runs as it is.
 */
import { existsSync, readFileSync } from 'node:fs';

export interface ScopeProbe {
  /** /proc/self/cgroup's text */
  cgroup(): string | undefined;
  /** systemd is the running service manager (/run/systemd/system exists) */
  systemdBooted(): boolean;
  /** systemd-run's path, if installed */
  systemdRun(): string | undefined;
}

const hostProbe: ScopeProbe = {
  cgroup: () => {
    try {
      return readFileSync('/proc/self/cgroup', 'utf8');
    } catch {
      return undefined;
    }
  },
  systemdBooted: () => existsSync('/run/systemd/system'),
  systemdRun: () => ['/usr/bin/systemd-run', '/bin/systemd-run'].find((p) => existsSync(p)),
};

/**
 * The service unit this process runs in (`foo.service`), from the unified hierarchy's line
 * (`0::/system.slice/foo.service`) or systemd's own v1 one (`1:name=systemd:…`, hybrid hosts);
 * either may name another manager's tree (`/`: a container under a hybrid host shows the
 * host's v1 lines), so the one that names a service wins. Undefined in a scope, a slice or
 * outside systemd.
 */
export function serviceUnitOf(cgroupText: string): string | undefined {
  for (const line of cgroupText.split('\n')) {
    const m = /^(?:0:|\d+:name=systemd):(.*)$/.exec(line);
    const last = m?.[1]!.split('/').filter(Boolean).at(-1);
    if (last?.endsWith('.service')) return last;
  }
  return undefined;
}

/** `argv`, wrapped in `systemd-run --scope` when this process runs inside a systemd service */
export function engineArgv(
  argv: string[],
  description: string,
  probe: ScopeProbe = hostProbe,
): string[] {
  if (!probe.systemdBooted()) return argv;
  const text = probe.cgroup();
  if (text === undefined || !serviceUnitOf(text)) return argv;
  const run = probe.systemdRun();
  if (!run) return argv;
  return [run, '--scope', '--quiet', '--collect', `--description=${description}`, '--', ...argv];
}
