/**
 * Service definitions for `awg daemon`: the systemd unit (Linux) and the launchd plist
 * (macOS, rendered by platform/darwin/plist.ts). Pure; golden-tested.
 *
 * Restart and the kill switch: the kill switch lives in the kernel (nft table `inet awg`,
 * PF anchor `com.awg/`), not in the process. On SIGTERM the daemon tears down like
 * `awg down` except that with the kill switch on it leaves that table (and the cgroups it
 * names) in place; after a crash everything stays. So `systemctl restart`, a crash and the
 * restart delay never open a leak: traffic stays blocked until the new process has
 * converged. Hence no ExecStopPost (nothing may remove the table behind the daemon's
 * back), Restart=on-failure with a short delay, and no start rate limit: a daemon that
 * gives up leaves the host with no network at all.
 */
import { renderDaemonPlist } from '../../platform/darwin/plist.js';
import { DAEMON_LABEL } from '../../platform/darwin/launchctl.js';

export const SYSTEMD_UNIT_NAME = 'awg.service';
export const SYSTEMD_UNIT_DIR = '/etc/systemd/system';
export const DARWIN_LOG = '/var/log/awg.log';

export interface DaemonInvocation {
  /** absolute path of node */
  node: string;
  /** absolute path of the awg entry point (bin/awg.js) */
  bin: string;
  /** `--config`; absent: the daemon follows the file of the last `awg apply` */
  config?: string;
  stateDir?: string;
  socket?: string;
  socketGroup?: string;
  /** `--metrics host:port` */
  metrics?: string;
}

export function daemonArgv(d: DaemonInvocation): string[] {
  for (const [k, v] of [['node', d.node], ['bin', d.bin], ['config', d.config], ['stateDir', d.stateDir], ['socket', d.socket]] as const) {
    if (v !== undefined && !v.startsWith('/')) throw new Error(`${k} must be an absolute path: ${v}`);
  }
  return [
    d.node,
    d.bin,
    'daemon',
    ...(d.config ? ['--config', d.config] : []),
    ...(d.stateDir ? ['--state-dir', d.stateDir] : []),
    ...(d.socket ? ['--socket', d.socket] : []),
    ...(d.socketGroup ? ['--socket-group', d.socketGroup] : []),
    ...(d.metrics ? ['--metrics', d.metrics] : []),
  ];
}

/**
 * One ExecStart word (systemd.syntax(7)): double-quoted when it holds anything but safe
 * characters; `\` and `"` escaped; `%` doubled (specifiers) and `$` doubled (variables).
 */
export function systemdQuote(arg: string): string {
  if ([...arg].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) throw new Error(`control character in ExecStart argument ${JSON.stringify(arg)}`);
  const s = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (s !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderSystemdUnit(d: DaemonInvocation): string {
  return [
    '# Written by `awg service install`; run it again to change this file.',
    '[Unit]',
    'Description=awg split-tunnel VPN daemon (reconcile loop, tunnels, API)',
    'Wants=network-pre.target',
    'After=network-pre.target',
    '# never give up restarting: with the kill switch on, a daemon that stays down means no network',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${daemonArgv(d).map(systemdQuote).join(' ')}`,
    '# the kill switch (nft table inet awg) outlives the process: stop, restart and crashes',
    '# keep traffic blocked until the new daemon has converged; no ExecStopPost may remove it',
    'Restart=on-failure',
    'RestartSec=2',
    'KillMode=mixed',
    'TimeoutStopSec=30',
    '# logs go to the journal: one line per event, no colour',
    'Environment=NO_COLOR=1',
    'StandardOutput=journal',
    'StandardError=journal',
    'SyslogIdentifier=awg',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** The launchd plist: the existing darwin renderer with the same daemon argv. */
export function renderLaunchdPlist(d: DaemonInvocation): string {
  return renderDaemonPlist({ label: DAEMON_LABEL, programArguments: daemonArgv(d), stdoutPath: DARWIN_LOG, stderrPath: DARWIN_LOG, environment: { NO_COLOR: '1' } });
}
