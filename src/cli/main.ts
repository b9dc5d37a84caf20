/**
 * `awg` command line: thin shells over the shared pipeline. Command modules load lazily so a
 * command pays only for what it uses (`awg diff` does not load gRPC, the data plane or XState).
 */
import { Command, Option } from 'commander';
import { processIo, type Io } from './output.js';
import { selectionFlags } from './selection.js';
import {
  addFleetCommands,
  addListsCommands,
  addSecretCommands,
  addServiceCommands,
} from './program-groups.js';

export { installCrashHandlers } from './crash.js';

import { VERSION } from '../util/package-version.js';

export { VERSION };

export function buildProgram(io: Io, setCode: (c: number) => void): Command {
  const program = new Command('awg')
    .description(
      'Declarative split-tunnel VPN client: WireGuard, AmneziaWG, SOCKS5 and HTTP tunnels per application',
    )
    .version(VERSION)
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();
  const stateDir = () =>
    new Option(
      '--state-dir <dir>',
      'state directory (default $AWG_STATE_DIR, else /var/lib/awg; macOS: /Library/Application Support/awg)',
    );
  const socket = () =>
    new Option(
      '--socket <path>',
      'the awg daemon API socket (default $AWG_SOCKET, else /run/awg/awg.sock; macOS: /var/run/awg/awg.sock)',
    );
  const direct = () =>
    new Option('--direct', 'act on the host directly even when the awg daemon runs');
  const noReconnect = () =>
    new Option(
      '--no-reconnect',
      'end (exit 6) when the awg daemon goes away instead of waiting for it to come back',
    );

  selectionFlags(
    program
      .command('validate')
      .description(
        'check the config (schema and semantics); errors as file:line:col. Exit 0 valid, 1 invalid',
      )
      .requiredOption('-f, --file <config>', 'config file')
      .option('--skip-secrets', 'do not read secret files/variables (e.g. in CI without the keys)')
      .option('--json', 'machine-readable result'),
    { os: true },
  ).action(async (o) =>
    setCode(await (await import('./commands/validate.js')).validateCommand(io, o)),
  );

  program
    .command('render')
    .description(
      'print the effective config of a host: the base with the overlays its host name, labels and OS select (docs/fleet.md). Reads no secret; runs anywhere. Exit 0 valid, 1 invalid',
    )
    .requiredOption('-f, --file <config>', 'base config file')
    .option('--json', 'machine-readable: the selection, the overlays applied and the config');
  selectionFlags(program.commands.at(-1)!, { os: true }).action(async (o) =>
    setCode(await (await import('./commands/render.js')).renderCommand(io, o)),
  );

  program
    .command('diff')
    .description('show the exact plan of OS changes. Exit 0 no changes, 2 changes, 1 error')
    .requiredOption('-f, --file <config>', 'config file')
    .option('--json', 'emit the versioned plan document (schema/plan.schema.json)')
    .option('--observed <file>', 'plan against a recorded observation (JSON) instead of this host')
    .option('--skip-secrets', 'do not read secrets (engine key changes then show as unresolved)')
    .option('-v, --verbose', 'show full specs of new objects')
    .addOption(stateDir())
    .addOption(socket())
    .addOption(direct());
  selectionFlags(program.commands.at(-1)!, { os: true }).action(async (o) =>
    setCode(await (await import('./commands/diff.js')).diffCommand(io, o)),
  );

  program
    .command('apply')
    .description('converge the host to the config; verify; roll back on failure')
    .requiredOption('-f, --file <config>', 'config file')
    .option('--dry-run', 'print every command that would run; change nothing')
    .option('--json', 'machine-readable result on stdout, events as JSON lines on stderr')
    .option('-v, --verbose', 'show phases')
    .option(
      '--confirm-timeout <seconds>',
      'revert unless `awg confirm` arrives within this many seconds (needs the daemon)',
    )
    .addOption(stateDir())
    .addOption(socket())
    .addOption(direct());
  selectionFlags(program.commands.at(-1)!).action(async (o) =>
    setCode(await (await import('./commands/apply.js')).applyCommand(io, o)),
  );

  program
    .command('down')
    .description('remove every object awg owns and restore saved originals; touches nothing else')
    .option(
      '-f, --file <config>',
      'take the claimed identifiers from this config instead of the last apply',
    )
    .option('--dry-run', 'print what would be removed')
    .option('--json', 'machine-readable result')
    .option('-v, --verbose', 'show phases')
    .addOption(stateDir())
    .addOption(socket())
    .addOption(direct())
    .action(async (o) => setCode(await (await import('./commands/down.js')).downCommand(io, o)));

  program
    .command('doctor')
    .description(
      "name what on this host may fight awg, each with what to do: another WireGuard or TUN link with a default route, foreign fwmark rules, wg-quick@/awg-quick@ units, NetworkManager managing our links or running its own WireGuard/VPN connection, other VPNs' nft tables, systemd-resolved against /etc/resolv.conf and dns.system, awg.service or the kill switch's boot unit not enabled. Read-only. Exit 0 nothing found, 2 findings, 1 error",
    )
    .option(
      '-f, --file <config>',
      'check the host against this config (default: the last applied one)',
    )
    .option(
      '--json',
      'machine-readable: findings (id, severity, subject, what, fix) and the checks skipped',
    )
    .addOption(stateDir())
    .action(async (o) =>
      setCode(await (await import('./commands/doctor.js')).doctorCommand(io, o)),
    );

  program
    .command('status')
    .description(
      'owned objects and their health; traffic per rule (tx/rx of its cgroup) and per tunnel. Exit 0 converged (also while a drift check or network event re-observes), 2 drifted, failed, reconciling a new config, or down',
    )
    .option('--json', 'machine-readable status')
    .option(
      '--watch',
      'follow the daemon: re-render on every event (plain lines when not a terminal); when the daemon goes away the view says so, reconnects with backoff and re-reads the status when it is back (exit 0 on Ctrl-C, 6 the daemon went away with --no-reconnect)',
    )
    .addOption(noReconnect())
    .option(
      '--observed-out <file>',
      'also record what was observed (with the last applied resources, claims and host facts) for `awg diff --observed` elsewhere, e.g. in CI; the daemon makes the record when one answers (it knows its own state directory), else it is read directly',
    )
    .addOption(stateDir())
    .addOption(socket())
    .addOption(direct())
    .action(async (o) =>
      setCode(await (await import('./commands/status.js')).statusCommand(io, o)),
    );

  program
    .command('events')
    .description(
      "follow the daemon's events (reconcile, drift, network, tunnel, handshake, traffic) until Ctrl-C. When the daemon goes away (restart, crash) it prints `service unavailable`, reconnects with backoff (250 ms doubling to 5 s) and resumes after the last event it printed (a `gap` event says what the daemon could not replay). Exit 0 on Ctrl-C, 3 no daemon answers at the start, 4 its socket refuses this user, 6 the daemon went away with --no-reconnect",
    )
    .option(
      '--json',
      'one JSON object per line; the daemon going away and coming back as {"type":"service","state":"unavailable"|"available","at","reason"}',
    )
    .addOption(noReconnect())
    .addOption(socket())
    .action(async (o) =>
      setCode(await (await import('./commands/events.js')).eventsCommand(io, o)),
    );

  program
    .command('ui')
    .description(
      "the dashboard in a browser: serves it on 127.0.0.1 (a random port and a per-run token in the printed URL) and talks to the daemon with this user's credentials (root: diff and apply; others read-only). Opens the browser when there is a display. Runs until Ctrl-C (docs/ui.md)",
    )
    .addOption(socket())
    .option('--port <n>', 'listen on this port of 127.0.0.1 (default: a free one)')
    .option('--no-open', 'only print the URL; do not start a browser')
    .action(async (o) => setCode(await (await import('./commands/ui.js')).uiCommand(io, o)));

  program
    .command('confirm')
    .description(
      'keep the change of `awg apply --confirm-timeout`. Exit 0 confirmed, 2 nothing was waiting',
    )
    .option('--json', 'machine-readable result')
    .addOption(socket())
    .action(async (o) =>
      setCode(await (await import('./commands/confirm.js')).confirmCommand(io, o)),
    );

  addServiceCommands(program, io, setCode, stateDir);

  program
    .command('import')
    .description(
      'convert a wg-quick / awg-quick .conf, or an AmneziaVPN vpn:// key, into awg YAML (docs/import.md)',
    )
    .argument(
      '<source>',
      'the .conf file; or a vpn:// key: the key itself, a file holding it, or - for stdin',
    )
    .option('-o, --output <file>', 'write the YAML here (refuses to overwrite)')
    .option(
      '--name <tunnel>',
      'tunnel name (default: the file name, made valid if it is not: lower-cased, other characters turned into "-", cut to 11; a warning names the result; for a vpn:// key: its server description, else its host name; several containers get -awg, -awg2, -wg)',
    )
    .addOption(
      new Option('--type <type>', 'force the tunnel type').choices(['wireguard', 'amneziawg']),
    )
    .option(
      '--key-file',
      'write the keys to files next to the output instead of inline (mode 600): <name>.key, <name>-peer<N>.psk for the preshared key of peer N, <name>.hpk for the header protection key',
    )
    .option(
      '--container <name>',
      'vpn:// keys: import only this container (amnezia-awg, amnezia-awg2 or amnezia-wireguard); default: one tunnel per container',
    )
    .action(async (file, o) =>
      setCode(await (await import('./commands/import.js')).importCommand(io, { file, ...o })),
    );

  program
    .command('export')
    .description(
      'print one WireGuard / AmneziaWG tunnel of a config as a wg-quick .conf (what `awg import` reads back) or as an AmneziaVPN vpn:// key (docs/import.md). The output holds the private key. Exit 0 exported, 1 error',
    )
    .requiredOption('-f, --file <config>', 'config file')
    .option('--tunnel <name>', 'the tunnel (default: the only WireGuard / AmneziaWG one)')
    .addOption(
      new Option('--format <format>', 'conf: wg-quick file; vpn: AmneziaVPN key')
        .choices(['conf', 'vpn'])
        .default('conf'),
    )
    .option('-o, --output <file>', 'write here (mode 600; refuses to overwrite)')
    .action(async (o) =>
      setCode(await (await import('./commands/export.js')).exportCommand(io, o)),
    );

  program
    .command('sync')
    .description(
      'fast-forward a config checkout to its branch: git fetch, optionally git verify-commit against allowed signers, git merge --ff-only (what awg-sync.timer runs; docs/fleet.md). Exit 0 updated or up to date',
    )
    .requiredOption('--path <dir>', 'the checkout the daemon follows')
    .requiredOption('--branch <name>', 'the branch to follow')
    .option('--remote <name>', 'the remote (default origin)')
    .option(
      '--allowed-signers <file>',
      "refuse a tip that is not SSH-signed by a key in this file (ssh-keygen's ALLOWED SIGNERS format)",
    )
    .option('--json', 'machine-readable result')
    .action(async (o) => setCode(await (await import('./commands/sync.js')).syncCommand(io, o)));

  addSecretCommands(program, io, setCode);
  addFleetCommands(program, io, setCode);
  addListsCommands(program, io, setCode, stateDir, socket, direct);

  program
    .command('version')
    .description(
      'this awg and its runtime; --check: the newest release the package manager it came with knows (apt-cache policy / npm view; from npm only a package naming the repository our package.json names; awg itself opens no connection). Exit 0 current, 2 newer available, 1 unknown',
    )
    .option('--check', 'compare with the newest available release')
    .option('--json', 'machine-readable')
    .action(async (o) =>
      setCode(await (await import('./commands/version.js')).versionCommand(io, o)),
    );

  program
    .command('update')
    .description(
      "the release awg's configured apt source offers (refreshes that source's lists alone, as root), and --apply: apt's upgrade of awg alone (never a swap of awg's files; npm and checkout installs are told how). Exit --check: 0 up to date, 2 update available, 1 unknown; --apply: 0 done or newest, 1 failed",
    )
    .option('--check', 'say whether an update is available (the default)')
    .option('--apply', 'upgrade awg with apt-get install --only-upgrade awg')
    .option('--no-refresh', "read apt's lists as they are (no apt-get update, no network)")
    .option('--source <file>', "awg's apt source (default /etc/apt/sources.list.d/awg.sources)")
    .option('--json', 'machine-readable')
    .action(async (o) =>
      setCode(await (await import('./commands/update.js')).updateCommand(io, o)),
    );

  program
    .command('genkey')
    .description('print a new private key (base64), like wg genkey')
    .action(async () => setCode((await import('./commands/keys.js')).genkeyCommand(io)));
  program
    .command('pubkey')
    .description('read a private key on stdin, print its public key')
    .action(async () => setCode(await (await import('./commands/keys.js')).pubkeyCommand(io)));
  program
    .command('genpsk')
    .description('print a new pre-shared key')
    .action(async () => setCode((await import('./commands/keys.js')).genpskCommand(io)));

  program
    .command('up')
    .description(
      'run the reconcile loop and the tunnels in the foreground until Ctrl-C; then leave the host as `awg down` (the kill switch stays)',
    )
    .requiredOption('-f, --file <config>', 'config file (watched: edits apply at once)')
    .option('--json', 'events as JSON lines on stdout')
    .option('-v, --verbose', 'show phases')
    .option('--drift-interval <seconds>', 're-observe at least this often (default 30)')
    .addOption(stateDir());
  selectionFlags(program.commands.at(-1)!).action(async (o) => {
    await longRunning();
    setCode(await (await import('./commands/up.js')).upCommand(io, o));
  });

  program
    .command('daemon')
    .description(
      'the awg service: reconcile loop, tunnel engines and the API; logs JSON lines on stdout (journald priorities under systemd)',
    )
    .option('--config <file>', 'config file (default: the file of the last apply)')
    .option('-v, --verbose', 'log at debug level (phases); default info, or $AWG_LOG_LEVEL')
    .addOption(stateDir())
    .addOption(socket())
    .option(
      '--socket-group <group>',
      'let this group use the API socket (mode 0660 instead of 0600): status, events, processes; apply/diff of root-owned configs only (docs/security.md)',
    )
    .option(
      '--metrics [host:port]',
      'serve Prometheus metrics on /metrics (default 127.0.0.1:9586; off unless given)',
    )
    .option(
      '--locked',
      'refuse apply, down and confirm through the API: the config file (a followed git checkout) is the only source of truth',
    )
    .option(
      '--allowed-signers <file>',
      "SSH allowed signers (as awg sync's): a new revision's `Awg-Rollout: immediate` trailer is honoured only on a commit that verifies against it (docs/fleet.md)",
    )
    .option(
      '--update-check <mode>',
      "Debian package with awg's apt source: daily look for a newer awg (status, metric awg_update_available, UI). local: apt's lists as they are (default, no network); refresh: refresh awg's source first; off",
    );
  selectionFlags(program.commands.at(-1)!).action(async (o) => {
    await longRunning();
    setCode(await (await import('./commands/daemon.js')).daemonCommand(io, o));
  });

  program
    .command('exec')
    .description(
      "run a command in a tunnel's (or rule's) cgroup: awg moves itself there first, so the command has no unrouted window (macOS: the daemon routes awg and its descendants before the command starts)",
    )
    .option(
      '--tunnel <name>',
      'route through this tunnel (cgroup <root>/_exec-<name>; blocked while the tunnel is down)',
    )
    .option(
      '--direct',
      'bypass every tunnel, also in full-tunnel mode (cgroup <root>/_exec-direct)',
    )
    .option('--rule <name>', 'run as if matched by this rule (its cgroup, target and fallback)')
    .argument('<command...>', 'command and arguments (after --)')
    .addOption(stateDir())
    .addOption(socket())
    .action(async (cmd: string[], o) =>
      setCode(await (await import('./commands/exec.js')).execCommand(io, cmd, o)),
    );

  program
    .command('processes')
    .description(
      "running processes with their rule, target, effective route and the rule cgroup's traffic (per cgroup, not per process)",
    )
    .option('--json', 'machine-readable list')
    .option(
      '--all',
      "also processes no rule matches (read directly: the daemon lists the rules' processes only)",
    )
    .addOption(stateDir())
    .addOption(socket())
    .addOption(direct())
    .action(async (o) =>
      setCode(await (await import('./commands/processes.js')).processesCommand(io, o)),
    );

  program
    .command('explain')
    .description(
      'why a connection of a running process takes its route: the rules in the firewall’s order, each with its program and destination part, and the decision',
    )
    .requiredOption('--pid <pid>', 'the process')
    .requiredOption(
      '--to <host:port>',
      'the destination: an address or a name ([v6]:port for IPv6)',
    )
    .option('--udp', 'a UDP destination (default TCP)')
    .option(
      '-f, --file <config>',
      'explain this config directly (default: the daemon’s, else the last apply’s)',
    )
    .option('--json', 'machine-readable (schema/explain.schema.json)')
    .addOption(stateDir())
    .addOption(socket())
    .addOption(direct())
    .action(async (o) =>
      setCode(await (await import('./commands/explain.js')).explainCommand(io, o)),
    );

  program
    .command('top')
    .description(
      "live traffic per process, rule and tunnel, refreshed every interval: upload and download rates (payload bytes per second, in kB/s, MB/s), totals since start and open connections; TCP and UDP, IPv4 and IPv6, tunnelled and direct. The kernel's own byte counts per connection (sock_diag, conntrack), never estimates; connections no process owns show as unattributed. The view fits the terminal and ends with Ctrl-C. Through the daemon when it answers (one reader for every client; when the daemon goes away the view says `daemon unavailable — reconnecting` and resumes once it is back, --once excepted), else read here",
    )
    .option('--interval <seconds>', 'seconds between refreshes (default 1)')
    .option('--once', 'print one snapshot, one interval after the start, and exit')
    .option('--json', 'one JSON document per interval, one per line (schema/top.schema.json)')
    .option(
      '--sort <column>',
      'order processes by pid, process, rule, route, up, down, sent, recv, conns (default: up + down)',
    )
    .option('-r, --reverse', 'the opposite order')
    .option('--rule <name>', 'only the processes of this rule')
    .option('--tunnel <name>', 'only the processes whose traffic goes through this tunnel')
    .addOption(noReconnect())
    .addOption(stateDir())
    .addOption(socket())
    .addOption(
      new Option('--direct', 'read the kernel in this process even when the awg daemon runs'),
    )
    .action(async (o) => setCode(await (await import('./commands/top.js')).topCommand(io, o)));

  program
    .command('limit')
    .description(
      'shape a running process and the children it starts from then on (through the daemon; until they exit or --clear): awg limit PID --download 1Mbit. Connections it has open already are not shaped (docs/limits.md). root, or the socket group for its own processes',
    )
    .argument('[pid]', 'the process to limit')
    .option('--upload <rate>', 'most it may send, as in the config: 500kbit, 2Mbit, 1MB/s')
    .option('--download <rate>', 'most it may receive, as in the config')
    .option('--clear', 'remove the limit of PID')
    .option('--list', 'the limits the daemon holds')
    .option('--json', 'machine-readable result')
    .addOption(socket())
    .action(async (pid: string | undefined, o) =>
      setCode(await (await import('./commands/limit.js')).limitCommand(io, pid, o)),
    );

  program
    .command('engine', { hidden: true })
    .description(
      'internal: run one tunnel engine (configuration on stdin); or, as wireguard-go does, `-f IFACE` (or IFACE with WG_PROCESS_FOREGROUND=1): configured only over its UAPI socket $AWG_UAPI_DIR/IFACE.sock (default /var/run/wireguard)',
    )
    .argument(
      '[iface]',
      'TUN to attach (or create), wireguard-go style; needs WG_PROCESS_FOREGROUND=1',
    )
    .option('--link <name>', 'persistent TUN to attach')
    .option('--uapi <path>', 'UAPI socket path')
    .option('-f, --foreground <iface>', 'TUN to attach (or create), wireguard-go style')
    .action(async (iface: string | undefined, o) =>
      setCode(
        await (
          await import('./commands/engine.js')
        ).engineCommand(io, {
          ...o,
          ...(iface !== undefined ? { iface } : {}),
        }),
      ),
    );

  program
    .command('placer', { hidden: true })
    .description(
      'internal: the process watcher at real-time priority (JSON lines on stdin/stdout, connector socket inherited)',
    )
    .action(async () => setCode(await (await import('./commands/placer.js')).placerCommand()));

  return program;
}

/**
 * `awg up` and `awg daemon` run with the Node flags of awg's long-running processes
 * (util/node-flags.ts) however they were started: the process re-executes itself with the
 * ones it lacks (native/reexec.ts; AWG_NODE_FLAGS set to anything keeps it as it is).
 */
async function longRunning(): Promise<void> {
  if (process.platform !== 'linux') return;
  const [{ reexecWithFlags }, { LONG_RUNNING_NODE_FLAGS }] = await Promise.all([
    import('../native/reexec.js'),
    import('../util/node-flags.js'),
  ]);
  reexecWithFlags(LONG_RUNNING_NODE_FLAGS);
}

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (
      ce.code === 'commander.helpDisplayed' ||
      ce.code === 'commander.version' ||
      ce.code === 'commander.help'
    )
      return 0;
    if (ce.code?.startsWith('commander.')) return 1;
    throw e;
  }
  return code;
}
