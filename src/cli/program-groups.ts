/**
 * The command groups of `awg` with subcommands of their own (`awg service …`, `awg secret …`),
 * registered on the program main.ts builds; thin shells like the rest of the CLI.
 */
import { Command, Option } from 'commander';
import type { Io } from './output.js';

/** `awg service install|uninstall|status` */
export function addServiceCommands(
  program: Command,
  io: Io,
  setCode: (c: number) => void,
  stateDir: () => Option,
): void {
  const service = program
    .command('service')
    .description(
      'run `awg daemon` as a system service (systemd unit on Linux, LaunchDaemon on macOS)',
    );
  const serviceFlags = (c: Command) =>
    c
      .option('--dry-run', 'print every step; change nothing')
      .option(
        '--root <dir>',
        'install into this tree (offline enable; the running service manager is not touched)',
      )
      .addOption(
        new Option('--platform <os>', 'service manager of this OS')
          .choices(['linux', 'darwin'])
          .hideHelp(),
      )
      .option('-v, --verbose', 'show phases');
  serviceFlags(
    service
      .command('install')
      .description(
        'write the unit/plist for `awg daemon` and enable and start it; on Linux also the early unit awg-killswitch.service, enabled (not started): at boot it loads the last applied kill switch before any network is configured',
      )
      .option('--config <file>', 'config the daemon follows (default: the file of the last apply)')
      .option(
        '--socket <path>',
        'API socket the daemon listens on (default /run/awg/awg.sock; macOS: /var/run/awg/awg.sock)',
      )
      .option(
        '--socket-group <group>',
        'let this group use the API socket (mode 0660): status, events, processes; apply/diff of root-owned configs only (docs/security.md)',
      )
      .option('--metrics [host:port]', 'serve Prometheus metrics (default 127.0.0.1:9586)')
      .addOption(stateDir())
      .option(
        '--git <url>',
        'follow this git repository: clone it into --path, pull it with awg-sync.timer (git fetch, verify, fast-forward); the daemon applies --config inside it (docs/fleet.md)',
      )
      .option('--branch <name>', 'with --git: the branch to follow (default main)')
      .option('--path <dir>', 'with --git: the checkout (created by clone when absent)')
      .option(
        '--allowed-signers <file>',
        "with --git: move only to commits SSH-signed by a key in this file (ssh-keygen's ALLOWED SIGNERS)",
      )
      .option(
        '--interval <span>',
        'with --git: time between pulls (systemd time span, default 1min)',
      )
      .option(
        '--locked',
        'the daemon refuses apply, down and confirm through the API: the repository is the only source of truth',
      )
      .option(
        '--host <name>',
        "the host name the daemon selects overlays for (default the machine's)",
      )
      .option(
        '--labels-file <file>',
        'the host labels for overlay selectors (default /etc/awg/labels.yaml)',
      )
      .option('--print', 'only print the unit/plist')
      .addOption(new Option('--node <path>').hideHelp())
      .addOption(new Option('--bin <path>').hideHelp()),
  ).action(async (o) =>
    setCode(await (await import('./commands/service.js')).serviceCommand(io, 'install', o)),
  );
  serviceFlags(
    service
      .command('uninstall')
      .description(
        'stop, disable and remove the service and the early unit (the kill switch table and its boot copy stay until `awg down`)',
      ),
  ).action(async (o) =>
    setCode(await (await import('./commands/service.js')).serviceCommand(io, 'uninstall', o)),
  );
  serviceFlags(
    service
      .command('status')
      .description(
        'whether the service is installed and running and its API answers: not installed; needs approval (macOS: the launchd label is disabled, or switched off in Login Items, as sfltool dumpbtm shows; systemd: masked); outdated (the definition differs from what this awg writes, or runs another node or awg); not loaded (the file is there, the service manager does not know the job); running (with its pid); installed (loaded, not running). Exit 0 running, 2 not',
      )
      .option('--json', 'machine-readable status')
      .option('--socket <path>', 'API socket to probe'),
  ).action(async (o) =>
    setCode(await (await import('./commands/service.js')).serviceCommand(io, 'status', o)),
  );
}

/** `awg secret keygen|recipient|encrypt|decrypt` */
export function addSecretCommands(program: Command, io: Io, setCode: (c: number) => void): void {
  const secret = program
    .command('secret')
    .description(
      'age-encrypted secrets a shared repository can hold: `{age: FILE}` in the config (docs/fleet.md)',
    );
  const collect = (v: string, prev: string[] = []) => [...prev, v];
  secret
    .command('keygen')
    .description(
      "create this host's age identity (AGE-SECRET-KEY-1…); prints its recipient. Default place: /etc/awg/age-identity.txt ($AWG_AGE_IDENTITY)",
    )
    .option(
      '-o, --output <file>',
      'write the identity here (mode 600) and print only the recipient; without it the identity goes to stdout',
    )
    .option('--force', 'replace an existing file')
    .action(async (o) =>
      setCode(await (await import('./commands/secret.js')).secretCommand(io, 'keygen', o)),
    );
  secret
    .command('recipient')
    .description(
      "print the recipient (age1…) of this host's identity: what a repository encrypts its secrets to",
    )
    .option(
      '-i, --identity <file>',
      'identity file (default $AWG_AGE_IDENTITY or /etc/awg/age-identity.txt)',
    )
    .action(async (o) =>
      setCode(await (await import('./commands/secret.js')).secretCommand(io, 'recipient', o)),
    );
  secret
    .command('encrypt')
    .description(
      'encrypt a secret (a file, or stdin) to one or more recipients; the `age` CLI can read the result',
    )
    .argument('[file]', 'plaintext (default stdin)')
    .option('-r, --recipient <age1…>', 'a recipient (repeat for several hosts)', collect)
    .option(
      '-R, --recipients-file <file>',
      'a file of recipients, one per line (repeatable)',
      collect,
    )
    .option('-a, --armor', 'ASCII-armoured output (PEM-like text)')
    .option('-o, --output <file>', 'write here (mode 600; binary unless --armor)')
    .option('--force', 'replace an existing file')
    .action(async (file: string | undefined, o) =>
      setCode(await (await import('./commands/secret.js')).secretCommand(io, 'encrypt', o, file)),
    );
  secret
    .command('decrypt')
    .description(
      "decrypt an age file with this host's identity (to check it); prints the value unless -o",
    )
    .argument('<file>', 'the age file')
    .option(
      '-i, --identity <file>',
      'identity file (default $AWG_AGE_IDENTITY or /etc/awg/age-identity.txt)',
    )
    .option('-o, --output <file>', 'write the plaintext here (mode 600) instead of stdout')
    .option('--force', 'replace an existing file')
    .action(async (file: string, o) =>
      setCode(await (await import('./commands/secret.js')).secretCommand(io, 'decrypt', o, file)),
    );
}

/** `awg fleet status`: where a rollout stands, from the fleet's metrics or observation records */
export function addFleetCommands(program: Command, io: Io, setCode: (c: number) => void): void {
  const fleet = program
    .command('fleet')
    .description('a fleet that follows one repository: its rollouts (docs/fleet.md)');
  fleet
    .command('status')
    .description(
      'per revision, how many hosts applied it, wait for their wave, are halted, rejected it; from a Prometheus scrape or query, or observation records. Exit 0, 2 when a host rejected a revision',
    )
    .option(
      '--metrics <file>',
      "Prometheus text format: the hosts' awg_* series (e.g. a /federate scrape; instance labels tell hosts apart)",
    )
    .option('--query <file>', 'the JSON answer of a Prometheus instant query (/api/v1/query)')
    .option(
      '--observed <dir>',
      'a directory of observation records (*.json, `awg status --observed-out`)',
    )
    .option('--json', 'machine-readable: hosts and per-revision counts')
    .action(async (o) =>
      setCode(await (await import('./commands/fleet.js')).fleetStatusCommand(io, o)),
    );
}

/** `awg lists update|status`: the lists a config fetches by URL (docs/lists-url.md) */
export function addListsCommands(
  program: Command,
  io: Io,
  setCode: (c: number) => void,
  stateDir: () => Option,
  socket: () => Option,
  direct: () => Option,
): void {
  const lists = program
    .command('lists')
    .description(
      'the lists a config fetches by URL (`to.lists: [{url}]`): fetch them now, or show their copies (docs/lists-url.md)',
    );
  const flags = (c: Command) =>
    c
      .option(
        '-f, --file <config>',
        "the config whose lists (without a daemon; default: the last apply's). Through the daemon: must be the one it follows",
      )
      .option('--list <url>', 'only this list (its URL, or its name as the status shows it)')
      .option('--json', 'machine-readable result')
      .addOption(stateDir())
      .addOption(socket())
      .addOption(direct());
  flags(
    lists
      .command('update')
      .description(
        "fetch the lists now, whatever their refresh says: through the daemon (which applies a new copy at once), else directly into the state directory's cache (the next apply takes it). Prints per list: fetched, not modified or failed with the reason, entries, age. Exit 0 all current, 2 a list failed or has no copy (its last good copy stays), 1 error",
      ),
  ).action(async (o) =>
    setCode(await (await import('./commands/lists.js')).listsCommand(io, 'update', o)),
  );
  flags(
    lists
      .command('status')
      .description(
        'each list: its source, format, entries, when it was fetched and checked, and its state (ok; stale: the last fetch failed, its last good copy is used; pending: never fetched, it contributes nothing). Exit 0 all ok, 2 otherwise',
      ),
  ).action(async (o) =>
    setCode(await (await import('./commands/lists.js')).listsCommand(io, 'status', o)),
  );
}
