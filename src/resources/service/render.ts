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
import { dirname } from 'node:path';
import { renderDaemonPlist, renderKillSwitchPlist } from '../../platform/darwin/plist.js';
import { DAEMON_LABEL } from '../../platform/darwin/launchctl.js';
import { BOOT_LOG_FILE, KILLSWITCH_LABEL, bootJobArgv } from '../../platform/darwin/pf-boot.js';
import { defaultPaths } from '../../util/paths.js';
import { LONG_RUNNING_NODE_FLAGS } from '../../util/node-flags.js';

export const SYSTEMD_UNIT_NAME = 'awg.service';
/** the early unit: loads the kill switch kept for boot before any network is configured */
export const SYSTEMD_BOOT_UNIT_NAME = 'awg-killswitch.service';
/** where `nft` is on Debian and its derivatives (the early unit runs it, no Node) */
export const NFT_BIN = '/usr/sbin/nft';
/** the boot copy of the kill switch in the state directory (resources/firewall/linux.ts writes it) */
export const BOOT_RULESET_FILE = 'killswitch-boot.nft';
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
  /** `--host` / `--labels-file`: the overlays of this host (docs/fleet.md) */
  host?: string;
  labelsFile?: string;
  /** `--locked`: the API refuses apply, down and confirm */
  locked?: boolean;
  /** the daemon's `--allowed-signers` (a rollout trailer needs a verified commit); default git's */
  allowedSigners?: string;
  /** follow a git repository: awg-sync.timer runs `awg sync` (the daemon's config lies in `path`) */
  git?: GitFollow;
}

export interface GitFollow {
  url: string;
  branch: string;
  /** absolute path of the checkout */
  path: string;
  /** SSH allowed-signers file: refuse unsigned tips */
  allowedSigners?: string;
  /** systemd time span between pulls (default 1min) */
  interval?: string;
}

export const SYSTEMD_SYNC_UNIT_NAME = 'awg-sync.service';
export const SYSTEMD_SYNC_TIMER_NAME = 'awg-sync.timer';

export function syncArgv(d: DaemonInvocation): string[] {
  const g = d.git;
  if (!g) throw new Error('no git settings');
  for (const [k, v] of [
    ['path', g.path],
    ['allowedSigners', g.allowedSigners],
  ] as const)
    if (v !== undefined && !v.startsWith('/'))
      throw new Error(`${k} must be an absolute path: ${v}`);
  return [
    d.node,
    d.bin,
    'sync',
    '--path',
    g.path,
    '--branch',
    g.branch,
    ...(g.allowedSigners ? ['--allowed-signers', g.allowedSigners] : []),
  ];
}

/**
 * awg-sync.service: one `awg sync` (git fetch, verify, fast-forward) of the checkout the
 * daemon follows. It writes only the checkout; git over ssh reads root's ~/.ssh.
 */
export function renderSyncUnit(d: DaemonInvocation): string {
  const g = d.git!;
  return [
    '# Written by `awg service install --git`; run it again to change this file.',
    '[Unit]',
    `Description=awg: fast-forward the config checkout ${g.path.replace(/%/g, '%%')} to ${g.branch.replace(/%/g, '%%')}`,
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=oneshot',
    `ExecStart=${syncArgv(d).map(systemdQuote).join(' ')}`,
    'Environment=NO_COLOR=1 GIT_TERMINAL_PROMPT=0',
    'SyslogIdentifier=awg-sync',
    'UMask=0022',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    `ReadWritePaths=${systemdQuote(g.path)}`,
    'ProtectHome=read-only',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelTunables=yes',
    'ProtectControlGroups=yes',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    'CapabilityBoundingSet=',
    '',
  ].join('\n');
}

export function renderSyncTimer(d: DaemonInvocation): string {
  const interval = d.git?.interval ?? '1min';
  if (!/^[0-9]+ ?(s|sec|m|min|h|hr)?$/.test(interval))
    throw new Error(`interval: "${interval}" is not a systemd time span such as 30s, 5min or 1h`);
  return [
    '# Written by `awg service install --git`; run it again to change this file.',
    '[Unit]',
    'Description=awg: follow the config repository',
    '',
    '[Timer]',
    'OnBootSec=30s',
    `OnUnitActiveSec=${interval}`,
    '# hosts of a fleet do not all pull at the same second',
    'RandomizedDelaySec=15s',
    'Persistent=false',
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
}

export function daemonArgv(d: DaemonInvocation): string[] {
  for (const [k, v] of [
    ['node', d.node],
    ['bin', d.bin],
    ['config', d.config],
    ['stateDir', d.stateDir],
    ['socket', d.socket],
    ['labelsFile', d.labelsFile],
    ['allowedSigners', d.allowedSigners ?? d.git?.allowedSigners],
  ] as const) {
    if (v !== undefined && !v.startsWith('/'))
      throw new Error(`${k} must be an absolute path: ${v}`);
  }
  const signers = d.allowedSigners ?? d.git?.allowedSigners;
  return [
    d.node,
    ...LONG_RUNNING_NODE_FLAGS,
    d.bin,
    'daemon',
    ...(d.config ? ['--config', d.config] : []),
    ...(d.stateDir ? ['--state-dir', d.stateDir] : []),
    ...(d.socket ? ['--socket', d.socket] : []),
    ...(d.socketGroup ? ['--socket-group', d.socketGroup] : []),
    ...(d.metrics ? ['--metrics', d.metrics] : []),
    ...(d.host ? ['--host', d.host] : []),
    ...(d.labelsFile ? ['--labels-file', d.labelsFile] : []),
    ...(d.locked ? ['--locked'] : []),
    ...(signers ? ['--allowed-signers', signers] : []),
  ];
}

/**
 * The inverse of daemonArgv: the invocation an installed definition runs, so `status` can
 * re-render it with this awg and compare. Node flags before the entry point are skipped (an
 * older awg wrote other ones; the re-render then differs, which is what "outdated" means).
 * Undefined for an argv daemonArgv would never write (no `daemon`, an unknown flag).
 */
export function parseDaemonArgv(argv: string[]): DaemonInvocation | undefined {
  const at = argv.indexOf('daemon');
  if (at < 2) return undefined;
  const d: DaemonInvocation = { node: argv[0]!, bin: argv[at - 1]! };
  const valued: Record<
    string,
    | 'config'
    | 'stateDir'
    | 'socket'
    | 'socketGroup'
    | 'metrics'
    | 'host'
    | 'labelsFile'
    | 'allowedSigners'
  > = {
    '--config': 'config',
    '--state-dir': 'stateDir',
    '--socket': 'socket',
    '--socket-group': 'socketGroup',
    '--metrics': 'metrics',
    '--host': 'host',
    '--labels-file': 'labelsFile',
    '--allowed-signers': 'allowedSigners',
  };
  for (let i = at + 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--locked') d.locked = true;
    else if (valued[a] && i + 1 < argv.length) d[valued[a]] = argv[++i]!;
    else return undefined;
  }
  return d;
}

/**
 * One ExecStart word (systemd.syntax(7)): double-quoted when it holds anything but safe
 * characters; `\` and `"` escaped; `%` doubled (specifiers) and `$` doubled (variables).
 */
export function systemdQuote(arg: string): string {
  if ([...arg].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f))
    throw new Error(`control character in ExecStart argument ${JSON.stringify(arg)}`);
  const s = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (s !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** One capability the daemon keeps (CapabilityBoundingSet=), and why it needs it. */
export interface DaemonCapability {
  cap: string;
  why: string;
}

/**
 * What `awg daemon` (and the `ip`, `nft`, `resolvectl` and `awg placer` it runs) needs of
 * root's capabilities; everything else is dropped from the bounding set. Derived from the
 * code: each entry names the calls that fail without it (docs/security.md has the table).
 * CAP_SYS_ADMIN is kept for one call only: fanotify_init(FAN_CLASS_CONTENT), the exec gate's
 * permission events (awg mounts nothing). Not needed: CAP_NET_RAW (no raw or packet
 * sockets; netlink needs none), CAP_SYS_MODULE (the kernel autoloads tun/nft modules itself),
 * CAP_FOWNER/CAP_FSETID (awg changes modes only of files it owns), CAP_KILL (it signals only
 * its own root-owned children), CAP_SETUID/SETGID (it never changes identity).
 * test/netns/daemon-caps.test.ts runs the daemon with exactly this set.
 */
export function daemonCapabilities(d: Pick<DaemonInvocation, 'socketGroup'>): DaemonCapability[] {
  return [
    {
      cap: 'CAP_NET_ADMIN',
      why: "links, addresses, routes, ip rules and the nft table (netlink, `ip`, `nft`); TUN devices; SO_MARK on the engines' sockets; SO_RCVBUFFORCE; net.* sysctls; listening to the proc connector",
    },
    { cap: 'CAP_NET_BIND_SERVICE', why: 'a tunnel `listenPort` below 1024' },
    {
      cap: 'CAP_SYS_NICE',
      why: "SCHED_FIFO for the `awg placer` child, so a new process is placed before it opens a socket; and for an engine's thread while a packet waits for its handshake (the handshake boost: from our initiation until the peer's first data packet, at most 250 ms); nice −10 for the engines' autogroup where the kernel groups processes by session (AWG_ENGINE_NICE)",
    },
    {
      cap: 'CAP_SYS_PTRACE',
      why: "readlink /proc/PID/exe of other users' processes to match path rules (a PTRACE_MODE_READ check; awg never attaches)",
    },
    {
      cap: 'CAP_SYS_ADMIN',
      why: "fanotify_init(FAN_CLASS_CONTENT) for the exec gate: the `awg placer` child holds the exec of a program a rule matches until it is in its rule's cgroup (without it placement is best-effort); awg mounts nothing",
    },
    {
      cap: 'CAP_DAC_OVERRIDE',
      why: "create the claimed cgroup subtree where the cgroup2 root is mode 0555 (hybrid hosts: /sys/fs/cgroup/unified); read a config or `{file:}` secret root applies from a user's 0600 file",
    },
    ...(d.socketGroup
      ? [
          {
            cap: 'CAP_CHOWN',
            why: 'give the API socket the `--socket-group` group (root is not a member)',
          },
        ]
      : []),
  ];
}

const STATE_ROOT = '/var/lib/';

/** `[Service]` sandboxing lines: why each is set (or not) is in the comments they carry. */
function hardening(d: DaemonInvocation): string[] {
  const stateDir = d.stateDir ?? '/var/lib/awg';
  const stateLines =
    stateDir.startsWith(STATE_ROOT) && stateDir.length > STATE_ROOT.length
      ? [
          `StateDirectory=${systemdQuote(stateDir.slice(STATE_ROOT.length))}`,
          'StateDirectoryMode=0700',
        ]
      : [
          `ExecStartPre=+/bin/mkdir -p -m 0700 ${systemdQuote(stateDir)}`,
          `ReadWritePaths=${systemdQuote(stateDir)}`,
        ];
  const socketDir = d.socket ? dirname(d.socket) : '/run/awg';
  const socketLines =
    socketDir === '/run' || socketDir.startsWith('/run/')
      ? []
      : [
          `ExecStartPre=+/bin/mkdir -p -m 0755 ${systemdQuote(socketDir)}`,
          `ReadWritePaths=${systemdQuote(socketDir)}`,
        ];
  return [
    '# hardening (docs/security.md; `systemd-analyze security awg.service`)',
    '# files awg creates (state, records, temporary files) are private; the socket gets its own mode',
    'UMask=0077',
    'NoNewPrivileges=yes',
    ...daemonCapabilities(d).map((c) => `# ${c.cap}: ${c.why}`),
    `CapabilityBoundingSet=${daemonCapabilities(d)
      .map((c) => c.cap)
      .join(' ')}`,
    'AmbientCapabilities=',
    '# read-only system; writable: the state directory, /run (API socket, engine UAPI sockets,',
    '# resolvconf) and /etc (the static DNS manager replaces /etc/resolv.conf by rename, which',
    '# a bind mount of the file alone would refuse)',
    'ProtectSystem=strict',
    'ReadWritePaths=/etc /run',
    ...stateLines,
    'RuntimeDirectory=awg',
    'RuntimeDirectoryMode=0755',
    ...socketLines,
    '# configs and secrets may live in home directories: readable, never writable',
    'ProtectHome=read-only',
    'PrivateTmp=yes',
    'PrivateMounts=yes',
    '# TUN only: /dev/net/tun (plus the pseudo devices "closed" keeps: null, zero, urandom, ...)',
    'DevicePolicy=closed',
    'DeviceAllow=/dev/net/tun rw',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    '# not set, on purpose: ProtectKernelTunables (awg writes net.* sysctls), ProtectControlGroups',
    '# (per-app rules create cgroups and move processes), ProtectProc/ProcSubset (placement reads',
    "# every process's /proc entry), RestrictRealtime (the placer, and engines in handshakes, run SCHED_FIFO),",
    "# MemoryDenyWriteExecute (Node's JIT), PrivateDevices/PrivateNetwork/IPAddressDeny (a VPN)",
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    'RestrictNamespaces=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    'SystemCallFilter=@system-service',
    '# the exec gate (@privileged holds them): fanotify permission events for the placer',
    'SystemCallFilter=fanotify_init fanotify_mark',
    'SystemCallErrorNumber=EPERM',
  ];
}

/**
 * The services the daemon's stop may talk to: systemd stops units in the reverse of their
 * start order, so After= them makes awg.service stop while they still run (at shutdown,
 * reboot and `systemctl isolate`), and its teardown can still revert the per-link DNS
 * through resolved (over D-Bus) before NetworkManager goes. Ordering only, no Wants=: a
 * Wants= would start resolved or NetworkManager on a host that does not use them (a host on
 * systemd-networkd, or ifupdown with a static resolv.conf), and After= a unit that is not
 * started (or not installed) orders nothing.
 */
export const STOP_BEFORE = [
  'dbus.service',
  'systemd-resolved.service',
  'NetworkManager.service',
] as const;
const STOP_BEFORE_COMMENT = [
  '# stop before what the teardown talks to (reverse start order): D-Bus, resolved (per-link',
  '# DNS), NetworkManager; ordering only: Wants= would start them on hosts that do not use them',
];

export function renderSystemdUnit(d: DaemonInvocation): string {
  return [
    '# Written by `awg service install`; run it again to change this file.',
    '[Unit]',
    'Description=awg split-tunnel VPN daemon (reconcile loop, tunnels, API)',
    'Wants=network-pre.target',
    'After=network-pre.target',
    ...STOP_BEFORE_COMMENT,
    `After=${STOP_BEFORE.join(' ')}`,
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
    ...hardening(d),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '# `systemctl enable awg` enables the kill switch from boot with it (and disable disables it)',
    `Also=${SYSTEMD_BOOT_UNIT_NAME}`,
    '',
  ].join('\n');
}

/**
 * The early unit (`awg-killswitch.service`): at boot, before `network-pre.target` (so before
 * any interface is configured by networkd, NetworkManager or ifupdown), `nft -f` loads the
 * kill switch the last apply kept in the state directory. No Node: it runs in early boot,
 * where nothing but local file systems is there. Without the file (kill switch off, or
 * `awg down`) the unit is skipped (ConditionPathExists). Never started by hand or by
 * `awg service install`: while the daemon runs, loading the boot table would replace the
 * full one (still closed, but without per-app routing until the next reconcile).
 */
export function renderBootUnit(d: Pick<DaemonInvocation, 'stateDir'>): string {
  const file = `${d.stateDir ?? '/var/lib/awg'}/${BOOT_RULESET_FILE}`;
  if (!file.startsWith('/')) throw new Error(`stateDir must be an absolute path: ${d.stateDir}`);
  return [
    '# Written by `awg service install`; run it again to change this file.',
    '[Unit]',
    'Description=awg kill switch from boot (the last applied kill switch, before any network)',
    'Documentation=man:nft(8)',
    'DefaultDependencies=no',
    'Wants=network-pre.target',
    `Before=network-pre.target ${SYSTEMD_UNIT_NAME}`,
    "# after the distribution's own ruleset: Debian's /etc/nftables.conf starts with `flush ruleset`,",
    '# which would remove our table if it ran later (After= on a unit that is absent is a no-op)',
    'After=local-fs.target nftables.service',
    `RequiresMountsFor=${systemdQuote(file)}`,
    `ConditionPathExists=${systemdQuote(file)}`,
    'RefuseManualStart=yes',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=${NFT_BIN} -f ${systemdQuote(file)}`,
    '# hardening: nft needs CAP_NET_ADMIN and a netlink socket, nothing else',
    'UMask=0077',
    'NoNewPrivileges=yes',
    'CapabilityBoundingSet=CAP_NET_ADMIN',
    'AmbientCapabilities=',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelLogs=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'ProtectControlGroups=yes',
    'RestrictAddressFamilies=AF_NETLINK AF_UNIX',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'MemoryDenyWriteExecute=yes',
    'SystemCallArchitectures=native',
    'SystemCallFilter=@system-service',
    'SystemCallErrorNumber=EPERM',
    '',
    '[Install]',
    'WantedBy=sysinit.target',
    '',
  ].join('\n');
}

/** The launchd plist: the existing darwin renderer with the same daemon argv. */
export function renderLaunchdPlist(d: DaemonInvocation): string {
  return renderDaemonPlist({
    label: DAEMON_LABEL,
    programArguments: daemonArgv(d),
    stdoutPath: DARWIN_LOG,
    stderrPath: DARWIN_LOG,
    environment: { NO_COLOR: '1' },
  });
}

/**
 * The boot kill switch's LaunchDaemon (`com.awg.killswitch`, platform/darwin/pf-boot.ts):
 * loads the kill switch the last apply kept in the state directory when launchd starts it
 * at boot. Written by `awg service install`, never bootstrapped by it (loaded now it would
 * replace the running anchor with the boot one, tunnels disabled, until the next reconcile).
 */
export function renderKillSwitchLaunchdPlist(d: Pick<DaemonInvocation, 'stateDir'>): string {
  const stateDir = d.stateDir ?? defaultPaths('darwin').stateDir;
  return renderKillSwitchPlist({
    label: KILLSWITCH_LABEL,
    programArguments: bootJobArgv(stateDir),
    stderrPath: `${stateDir}/${BOOT_LOG_FILE}`,
  });
}
