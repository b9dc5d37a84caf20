/**
 * docs/troubleshooting.md from the error kinds (src/errors.ts ERROR_KINDS and ERROR_KIND_HELP)
 * and the problems of installing and running awg below (RUNTIME_PROBLEMS).
 */
import { ERROR_KINDS, ERROR_KIND_HELP, type ErrorKind } from '../src/errors.js';

/** A problem that is no error kind of awg's: the runtime, the package, the service. */
export interface RuntimeProblem {
  title: string;
  what: string[];
  todo: string[];
  /**
   * What awg prints or the code that decides it, verbatim, by the file (repository path) that
   * says it: test/unit/scripts/troubleshooting.test.ts fails when the code no longer does.
   */
  quotes: Record<string, string[]>;
}

export const RUNTIME_PROBLEMS: RuntimeProblem[] = [
  {
    title: '`awg: error [unsupported]: awg needs Node.js 20.19 or later` (exit 3)',
    what: [
      "The Node.js that runs awg is older than package.json's `engines` (>= 20.19); `bin/awg.js` stops before it loads anything else. npm only warns (`EBADENGINE`) when it installs awg on such a Node, and Debian 12's own `nodejs` is 18.",
    ],
    todo: [
      "install the Debian package: it carries its own Node.js (24) under `/usr/lib/awg` and never uses the machine's",
      "or run Node.js 22 or 24 and install the npm package with that Node's npm: the start-up targets are for 22 and 24, which bench/startup.bench.ts measures; 20.19 is the floor, not a target — Node 20 has no compile cache and is past its end of life",
    ],
    quotes: {
      'bin/awg.js': [
        'awg: error [unsupported]: awg needs Node.js 20.19 or later',
        'process.exit(3)',
      ],
      'package.json': ['"node": ">=20.19"'],
    },
  },
  {
    title: 'Every command starts slowly: the compile cache is not used',
    what: [
      "On Node 22.1 and later an installed awg (npm or Debian package; not a checkout) keeps V8's compile cache (in bench/RESULTS.md it took 22 ms off `validate` and 26 ms off `diff` of the reference config on Node 24) in `/var/cache/awg/compile` for root, `$XDG_CACHE_HOME/awg/compile` (default `~/.cache/awg/compile`) for other users. Code read from it runs as whoever runs awg, so awg skips it, without a message, when the directory or one above it belongs to someone other than the user or root, can be written by group or others (a root-owned sticky directory such as `/tmp` above it is fine), or is a symlink, and when the directory itself can be read by group or others. `AWG_COMPILE_CACHE=0` turns it off; Node 20 has none.",
      '`awg version --json` prints `compileCache`: the directory in use, or `null` (Node 22.8 and later can tell; earlier ones always print `null`).',
    ],
    todo: [
      "`chmod 700` the directory, and fix the owner or mode of the directory above it that is not the user's or root's or that others can write",
      'or set `AWG_COMPILE_CACHE_DIR` to a directory only you can write',
    ],
    quotes: {
      'bin/compile-cache.js': [
        "env.AWG_COMPILE_CACHE === '0'",
        'env.AWG_COMPILE_CACHE_DIR',
        "'/var/cache/awg/compile'",
        "join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'awg', 'compile')",
      ],
      'src/cli/commands/version.ts': ['getCompileCacheDir?.() ?? null'],
    },
  },
  {
    title: '`awg version --check` exits 1 or 2',
    what: [
      'Exit 0: this is the newest release the package manager awg came with knows. Exit 2: a newer one is available; the line names the command that installs it. Exit 1: no answer, and the line says why.',
    ],
    todo: [
      '`run from a source checkout`: there is no package manager to ask; `git pull`',
      "`apt knows no release of awg`: no source in apt's lists carries awg. Add awg's repository as the README's install section says (its keyring and `/etc/apt/sources.list.d/awg.sources`), then `apt-get update`; without one, an upgrade is installing the next `.deb` (`apt install ./awg_<version>_<arch>.deb`). `apt-cache policy awg` shows what apt knows; `awg update` refreshes awg's source alone",
      "`this awg's package.json names no repository`: awg is not published on npm, and the npm name `awg` may be anyone's. awg offers an npm release only when the registry's package names the repository awg's own package.json names, so for now an npm install always answers this, without asking npm; upgrade by installing the next tarball (`npm install -g ./awg-<version>.tgz`)",
      "`the npm package … is not offered as an update`: the registry's package of that name comes from another repository; it is not awg",
      "`npm could not tell the newest release`: npm could not reach its registry (offline, a proxy; with the kill switch on, npm's own traffic may be blocked); npm's error follows",
    ],
    quotes: {
      'src/util/package-update.ts': ['apt knows no release of awg'],
      'src/cli/commands/version.ts': [
        'return r.unknown ? 1 : r.updateAvailable ? 2 : 0;',
        'run from a source checkout',
        "this awg's package.json names no repository",
        'it is not offered as an update',
        'npm could not tell the newest release',
      ],
    },
  },
  {
    title: '`awg service status` exits 2',
    what: [
      "Exit 0: the daemon's unit runs (or is installed where systemd cannot be asked: no systemd, `--root`). Exit 2 otherwise; the first line names the state, the last one whether the daemon's API socket answers. The unit is `awg service install`'s `/etc/systemd/system/awg.service`, else one systemd loaded from elsewhere, such as the Debian package's `/usr/lib/systemd/system/awg.service`.",
    ],
    todo: [
      '`not installed`: `systemctl enable --now awg` (Debian package) or `awg service install`',
      '`needs approval`: the unit is masked: `systemctl unmask awg`',
      '`outdated`: the unit runs another node or awg than this one (awg moved from npm to the Debian package, or back): `awg service install` again',
      '`installed, not loaded`: `systemctl daemon-reload`',
      '`installed and loaded, not running`: `journalctl -u awg` says why it stopped; `systemctl start awg`',
    ],
    quotes: {
      'src/cli/commands/service.ts': [
        "st.installed && st.active !== false && st.state !== 'not-loaded' && st.state !== 'needs-approval' ? 0 : 2",
        "'not-installed': 'not installed'",
        "'needs-approval': 'needs approval",
        "outdated: 'outdated: it differs from what this awg writes, or runs another node or awg",
        "'not-loaded': 'installed, not loaded",
        "installed: 'installed and loaded, not running'",
      ],
      'src/resources/service/manager.ts': ["st.detail['FragmentPath']"],
    },
  },
  {
    title: "`apt remove awg` printed `awg: 'awg down' failed; objects may remain (see above)`",
    what: [
      "The package's prerm stops the units and runs `awg down`. When that fails the removal goes on, so awg's program is gone while what it applied may remain: its `awg*` links, routes and rules, DNS changes and the `inet awg` nft table (with the kill switch on, traffic stays blocked). The line above is awg's own error: its kind and hint are on this page.",
    ],
    todo: [
      'do not purge yet: `awg down` restores what awg replaced from the state in `/var/lib/awg`, which a purge deletes',
      'install the same package again (`apt install ./awg_<version>_<arch>.deb`), fix what the error says, run `awg down` until it succeeds, then `apt remove awg`',
      'without the package, `nft delete table inet awg` opens the kill switch; `ip link` lists the links left',
    ],
    quotes: {
      'scripts/build-deb.sh': [
        "awg: 'awg down' failed; objects may remain (see above)",
        'rm -rf /var/lib/awg /run/awg /var/cache/awg',
      ],
    },
  },
  {
    title: '`note: the awg daemon on … (pid N) runs in another network namespace`',
    what: [
      "A daemon changes only the network namespace it runs in. This command (say `ip netns exec vpn awg apply`) reached the machine's daemon from another namespace, so it acted on its own namespace directly instead, as `--direct` would; that namespace's objects belong to this command's state directory, not the daemon's. (`awg ui` is the exception: it is the daemon's dashboard, wherever it runs.)",
    ],
    todo: [
      'to change the namespace the command runs in: nothing to do (pass `--direct` to say so and drop the note)',
      "to change the daemon's namespace: run the command there (`nsenter --net=/proc/<daemon pid>/ns/net awg apply …`, or from the host if the daemon runs there)",
      'to keep a daemon for the other namespace: start one there on a socket of its own (`awg daemon --socket /run/awg/vpn.sock`) and point `--socket` at it',
    ],
    quotes: {
      'src/daemon/client.ts': ['runs in another network namespace'],
      'src/cli/via-daemon.ts': ['this command acts on this network namespace directly'],
    },
  },
  {
    title:
      '`awg status` says `host: no IPv4 default route in the main table`, `… default route is unreachable` or `endpoint … unreachable: no route`',
    what: [
      'The host\'s own routing, read at each run (`hostConditions` in `awg status --json`; `awg diff` and `awg apply` warn the same). Without a default route, traffic that goes direct (`target: direct`, `default: direct`, `awg exec --direct`) reaches only the prefixes the main table lists and fails elsewhere with "no route", as it would without awg; tunnelled traffic still works: awg gives unmarked local packets a first route of its own (the `awg-_noroute` link, table 52099, ip rules 5298 and 5299), so the firewall can mark them into their tunnel ([Linux notes](platform-linux.md#hosts-without-a-default-route)).',
      "A default route of type `unreachable`, `blackhole` or `prohibit` in the main table ends every route lookup it answers with an error, awg's own rules included: no traffic beyond the main table's other routes reaches a tunnel.",
      "An endpoint without a route: the engine's packets to its peer cannot leave this host, so the tunnel never comes up.",
    ],
    todo: [
      'give the host a route to each endpoint (the LAN it is on, or a static route to it) — that is all a tunnel needs',
      'replace an error default route with a unicast one, or remove it',
      "check what the kernel answers: `ip route get <endpoint> mark 0x0f000000` (the mark of the engines' own packets with the default `routing.fwmarkMask`)",
    ],
    quotes: {
      'src/model/unrouted.ts': [
        'default route in the main table: rules and default with target direct reach',
        'unreachable: no route (',
        '`${LINK_PREFIX}_noroute`',
      ],
    },
  },
  {
    title: '`awg status` says a tunnel is `down [no-data since …]`',
    what: [
      "Handshakes with the peer complete, but our data messages get no answer: something on the path (typically DPI against WireGuard/AmneziaWG) drops transport messages after the handshake. awg counts the tunnel down so that rules with `fallback: allow-direct` go direct and `fallback: failover` move to their next tunnel ([architecture](architecture.md#per-app-placement-tunnel-health-and-fallbacks), \"The data path\"); it comes back by itself once the peer answers again (awg's engine sends a data probe every second while down, from the tunnel's address with TTL 1, to TEST-NET and to the peer's endpoint address: the peer's kernel answers them with an ICMP time-exceeded or unreachable (\"protocol 253 unreachable\"), so a tcpdump inside the tunnel shows those — they are the probe's answers, not an error).",
    ],
    todo: [
      'for an `amneziawg` tunnel, change the obfuscation parameters (junk packets `jc`/`jmin`/`jmax`, `s1`-`s4`, `h1`-`h4`) on both sides; plain WireGuard: the path blocks the protocol — use obfuscation or a proxy tunnel',
      'see where data dies: `tcpdump -ni <underlay> udp port <endpoint port>` shows our type-4 messages leave and none come back',
      '`awg_tunnel_down_reason{reason="no-data"}` in the metrics, `tunnel` events with `"reason":"no-data"`',
    ],
    quotes: {
      'src/daemon/health-rating.ts': ["'no-data'"],
    },
  },
];

export function troubleshooting(): string {
  const out = [
    '# Troubleshooting',
    '',
    '<!-- Generated by `npm run gen` from src/errors.ts and scripts/troubleshooting.ts. Do not edit by hand; a test fails when it is stale. -->',
    '',
    "Every error awg reports has a kind, printed as `awg: error [kind]: message` (and `hint:` when there is one), carried in `--json` output as `kind`, mapped to an exit code and, through the daemon's API, to a gRPC status. A config problem is always located: `file:line:col: field.path: message`, in the file that caused it (an overlay, for a fleet config).",
    '',
    "First steps for any problem: `awg status` (what awg owns and whether it matches; `--json` for details), `awg diff -f CONFIG` (what awg would change now), the daemon's log (`journalctl -u awg`, one JSON line per event), `awg events` (live).",
    '',
    '| kind | exit code | retried by the daemon | gRPC status |',
    '|---|---|---|---|',
    ...(Object.keys(ERROR_KINDS) as ErrorKind[]).map(
      (k) =>
        `| \`${k}\` | ${ERROR_KINDS[k].exitCode} | ${ERROR_KINDS[k].retryable ? 'yes' : 'no'} | ${ERROR_KINDS[k].grpcCode} |`,
    ),
    '',
  ];
  for (const k of Object.keys(ERROR_KINDS) as ErrorKind[]) {
    const h = ERROR_KIND_HELP[k];
    out.push(
      `## \`${k}\` (exit ${ERROR_KINDS[k].exitCode})`,
      '',
      h.meaning,
      '',
      'Typical causes:',
      '',
      ...h.causes.map((c) => `- ${c}`),
      '',
      'What to do:',
      '',
      ...h.todo.map((t) => `- ${t}`),
      '',
    );
  }
  out.push('## Installing and running', '');
  for (const p of RUNTIME_PROBLEMS)
    out.push(
      `### ${p.title}`,
      '',
      ...p.what.flatMap((w) => [w, '']),
      'What to do:',
      '',
      ...p.todo.map((t) => `- ${t}`),
      '',
    );
  out.push(
    '## Other exit codes',
    '',
    '- `2` is not an error: `awg diff` found changes, `awg status` found drift or nothing applied, `awg confirm` had nothing to confirm.',
    '- `70` after a crash: the process logged the stack and ended; with the kill switch on, traffic stays blocked until the daemon is back (systemd restarts it).',
    '',
  );
  return out.join('\n');
}
