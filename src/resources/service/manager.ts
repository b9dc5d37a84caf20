/**
 * `awg service install|uninstall|status`: write the service definition and drive the
 * service manager, every step through Exec (logged as `[#] …`, skipped under --dry-run).
 *
 * `root` installs into another tree (an image being built): the file goes under it and the
 * manager is told to work offline (`systemctl --root=… enable`), so the running system is
 * never touched. Each platform offers its manager (resources/registry.ts `serviceManager`).
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import { writeFileAtomicSync } from '../../util/files.js';
import {
  btmDisallows,
  classifyLaunchctl,
  DAEMON_LABEL,
  launchctlArgs,
  LAUNCH_DAEMONS_DIR,
  parseDumpBtm,
  parseLaunchctlDisabled,
  parseLaunchctlPrint,
  plistPath,
} from '../../platform/darwin/launchctl.js';
import { plistProgramArguments } from '../../platform/darwin/plist.js';
import { KILLSWITCH_LABEL } from '../../platform/darwin/pf-boot.js';
import {
  parseDaemonArgv,
  renderBootUnit,
  renderKillSwitchLaunchdPlist,
  renderLaunchdPlist,
  renderSyncTimer,
  renderSyncUnit,
  renderSystemdUnit,
  SYSTEMD_BOOT_UNIT_NAME,
  SYSTEMD_SYNC_TIMER_NAME,
  SYSTEMD_SYNC_UNIT_NAME,
  SYSTEMD_UNIT_DIR,
  SYSTEMD_UNIT_NAME,
  type DaemonInvocation,
} from './render.js';
import { NM_DROPIN_ETC_DIR, NM_DROPIN_NAME, renderNmDropin } from './networkmanager.js';

export interface ServiceContext {
  exec: Exec;
  /** install into this tree instead of the running system (offline enable only) */
  root?: string;
  /** where the files live while the running manager is driven (tests; default /) */
  fsRoot?: string;
}

/**
 * What `awg service status` tells the user, in this order of precedence:
 * - `not-installed`: no service definition (macOS: no /Library/LaunchDaemons/com.awg.daemon.plist);
 * - `needs-approval`: installed, but the service manager will not start it (macOS: the label
 *   is disabled in launchd — `launchctl print-disabled system` says so, `bootstrap` then fails
 *   with 119 "Service is disabled" — or Background Task Management holds it back: its
 *   `sfltool dumpbtm` record says `disallowed`, the Login Items switch is off; systemd: the
 *   unit is masked);
 * - `outdated`: the definition differs from what this awg would write for the same flags, or
 *   runs another node or awg (reinstall it);
 * - `not-loaded`: the file is there but the service manager does not know the job (macOS:
 *   `launchctl print system/com.awg.daemon` exits 113 "Could not find service" — never
 *   bootstrapped, or booted out; systemd: LoadState=not-found, a daemon-reload is missing);
 * - `running`: loaded and its process runs (launchd `state = running`, with its pid);
 * - `installed`: loaded but not running (launchd `state = not running`/`spawn scheduled`/…,
 *   e.g. between KeepAlive restarts; systemd: inactive or failed).
 */
export type ServiceUserState =
  'not-installed' | 'needs-approval' | 'outdated' | 'not-loaded' | 'running' | 'installed';

export function userState(
  st: Pick<ServiceState, 'installed' | 'outdated' | 'active' | 'disabled' | 'loaded'>,
): ServiceUserState {
  if (!st.installed) return 'not-installed';
  if (st.disabled) return 'needs-approval';
  if (st.outdated) return 'outdated';
  if (st.loaded === false) return 'not-loaded';
  return st.active ? 'running' : 'installed';
}

/** the programs this awg would put in a definition: a definition naming others is outdated */
export interface CurrentProgram {
  node: string;
  bin: string;
}

export interface ServiceState {
  state: ServiceUserState;
  installed: boolean;
  /** the manager refuses to start it (launchd: disabled label; systemd: masked) */
  disabled?: boolean;
  path: string;
  /** the file on disk differs from what `install` would write now */
  outdated?: boolean;
  /** the service manager knows the job (undefined: it could not be asked) */
  loaded?: boolean;
  active?: boolean;
  enabled?: boolean;
  pid?: number;
  detail: Record<string, string>;
}

export interface ServiceManager {
  /** absolute path of the definition file (under `root` when given) */
  path(ctx: ServiceContext): string;
  /** the early unit that loads the kill switch at boot, where the platform has one (systemd) */
  bootPath?(ctx: ServiceContext): string;
  render(d: DaemonInvocation): string;
  /** `boot`: what the boot-time kill switch at `bootPath` does, for the user */
  install(
    d: DaemonInvocation,
    ctx: ServiceContext,
  ): Promise<{ changed: boolean; path: string; bootPath?: string; boot?: string }>;
  uninstall(ctx: ServiceContext): Promise<{ removed: boolean; path: string }>;
  status(
    ctx: ServiceContext,
    d?: DaemonInvocation,
    current?: CurrentProgram,
  ): Promise<ServiceState>;
}

/** Write through Exec: recorded as a mutation, skipped under dry-run; crash-safe (util/files.ts). */
function writeFile(ctx: ServiceContext, path: string, text: string): void {
  if (!ctx.exec.record(`write ${path} (${text.length} bytes, mode 0644)`)) return;
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  writeFileAtomicSync(path, text, { mode: 0o644 });
}

function removeFile(ctx: ServiceContext, path: string): void {
  if (ctx.exec.record(`rm ${path}`)) rmSync(path, { force: true });
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function parseShow(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of text.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0) out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

/** the NetworkManager drop-in `install` writes (resources/service/networkmanager.ts) */
export function nmDropinPath(ctx: Pick<ServiceContext, 'root' | 'fsRoot'>): string {
  return join(ctx.root ?? ctx.fsRoot ?? '/', NM_DROPIN_ETC_DIR, NM_DROPIN_NAME);
}

/**
 * Write the drop-in that keeps NetworkManager off our links, where NM is installed (its
 * /etc/NetworkManager exists); true when the file changed. A host without NM gets nothing.
 */
function writeNmDropin(ctx: ServiceContext): boolean {
  const path = nmDropinPath(ctx);
  if (!existsSync(join(ctx.root ?? ctx.fsRoot ?? '/', 'etc/NetworkManager'))) return false;
  const text = renderNmDropin();
  if (readOrUndefined(path) === text) return false;
  writeFile(ctx, path, text);
  return true;
}

/** Remove the drop-in `install` wrote; true when there was one. */
function removeNmDropin(ctx: ServiceContext): boolean {
  const path = nmDropinPath(ctx);
  if (!existsSync(path)) return false;
  removeFile(ctx, path);
  return true;
}

/**
 * NM reads conf.d at its start and on `nmcli general reload conf`: a running NM is told, one
 * that is not running reads the file when it starts. Never fatal (NM may be stopping).
 */
async function reloadNetworkManager(ctx: ServiceContext): Promise<void> {
  const r = await ctx.exec.read('systemctl', ['is-active', '--quiet', 'NetworkManager.service'], {
    allowFail: true,
  });
  if (r.code === 0)
    await ctx.exec.mutate('nmcli', ['general', 'reload', 'conf'], { allowFail: true });
}

export const systemdManager: ServiceManager = {
  path: (ctx) => join(ctx.root ?? ctx.fsRoot ?? '/', SYSTEMD_UNIT_DIR, SYSTEMD_UNIT_NAME),
  bootPath: (ctx) => join(ctx.root ?? ctx.fsRoot ?? '/', SYSTEMD_UNIT_DIR, SYSTEMD_BOOT_UNIT_NAME),
  render: (d) =>
    `${renderSystemdUnit(d)}\n# ---- ${SYSTEMD_BOOT_UNIT_NAME} ----\n${renderBootUnit(d)}` +
    (d.git
      ? `\n# ---- ${SYSTEMD_SYNC_UNIT_NAME} ----\n${renderSyncUnit(d)}\n# ---- ${SYSTEMD_SYNC_TIMER_NAME} ----\n${renderSyncTimer(d)}`
      : '') +
    `\n# ---- ${NM_DROPIN_NAME} ----\n${renderNmDropin()}`,
  async install(d, ctx) {
    const path = this.path(ctx);
    const bootPath = this.bootPath!(ctx);
    // following a repository: the checkout first (the daemon's config lies in it), then the
    // pull units; the timer is enabled with the daemon below
    if (d.git) {
      const g = d.git;
      if (!existsSync(join(ctx.root ?? ctx.fsRoot ?? '/', g.path, '.git')))
        await ctx.exec.mutate('git', [
          '-c',
          'protocol.ext.allow=never',
          'clone',
          '--quiet',
          '--branch',
          g.branch,
          '--',
          g.url,
          join(ctx.root ?? ctx.fsRoot ?? '/', g.path),
        ]);
      for (const [name, text] of [
        [SYSTEMD_SYNC_UNIT_NAME, renderSyncUnit(d)],
        [SYSTEMD_SYNC_TIMER_NAME, renderSyncTimer(d)],
      ] as const) {
        const p = join(ctx.root ?? ctx.fsRoot ?? '/', SYSTEMD_UNIT_DIR, name);
        if (readOrUndefined(p) !== text) writeFile(ctx, p, text);
      }
    }
    const text = renderSystemdUnit(d);
    const bootText = renderBootUnit(d);
    const bootChanged = readOrUndefined(bootPath) !== bootText;
    // the early unit first: the daemon's unit never runs without the boot kill switch beside it
    if (bootChanged) writeFile(ctx, bootPath, bootText);
    const mainChanged = readOrUndefined(path) !== text;
    if (mainChanged) writeFile(ctx, path, text);
    const nmChanged = writeNmDropin(ctx);
    const changed = mainChanged || bootChanged;
    if (ctx.root) {
      await ctx.exec.mutate('systemctl', [
        `--root=${ctx.root}`,
        'enable',
        SYSTEMD_BOOT_UNIT_NAME,
        SYSTEMD_UNIT_NAME,
        ...(d.git ? [SYSTEMD_SYNC_TIMER_NAME] : []),
      ]);
      return { changed, path, bootPath };
    }
    if (changed) await ctx.exec.mutate('systemctl', ['daemon-reload']);
    if (nmChanged) await reloadNetworkManager(ctx);
    // enabled for the next boot, never started now: it would replace the running full table
    await ctx.exec.mutate('systemctl', ['enable', SYSTEMD_BOOT_UNIT_NAME]);
    await ctx.exec.mutate('systemctl', ['enable', '--now', SYSTEMD_UNIT_NAME]);
    // a changed unit of a running daemon takes effect on restart (the kill switch holds meanwhile)
    if (mainChanged) await ctx.exec.mutate('systemctl', ['try-restart', SYSTEMD_UNIT_NAME]);
    if (d.git) await ctx.exec.mutate('systemctl', ['enable', '--now', SYSTEMD_SYNC_TIMER_NAME]);
    return { changed, path, bootPath };
  },
  async uninstall(ctx) {
    const path = this.path(ctx);
    const bootPath = this.bootPath!(ctx);
    const present = existsSync(path);
    const bootPresent = existsSync(bootPath);
    // the pull units go first (the checkout itself stays: it is the user's repository)
    const syncPaths = [SYSTEMD_SYNC_TIMER_NAME, SYSTEMD_SYNC_UNIT_NAME]
      .map((n) => join(ctx.root ?? ctx.fsRoot ?? '/', SYSTEMD_UNIT_DIR, n))
      .filter((p) => existsSync(p));
    if (syncPaths.length) {
      await ctx.exec.mutate(
        'systemctl',
        [
          ...(ctx.root ? [`--root=${ctx.root}`, 'disable'] : ['disable', '--now']),
          SYSTEMD_SYNC_TIMER_NAME,
        ],
        { allowFail: true },
      );
      for (const p of syncPaths) removeFile(ctx, p);
    }
    if (ctx.root) {
      await ctx.exec.mutate(
        'systemctl',
        [`--root=${ctx.root}`, 'disable', SYSTEMD_UNIT_NAME, SYSTEMD_BOOT_UNIT_NAME],
        { allowFail: true },
      );
      if (present) removeFile(ctx, path);
      if (bootPresent) removeFile(ctx, bootPath);
      removeNmDropin(ctx);
      return { removed: present || bootPresent, path };
    }
    await ctx.exec.mutate('systemctl', ['disable', '--now', SYSTEMD_UNIT_NAME], {
      allowFail: true,
    });
    await ctx.exec.mutate('systemctl', ['disable', SYSTEMD_BOOT_UNIT_NAME], { allowFail: true });
    if (present) removeFile(ctx, path);
    if (bootPresent) removeFile(ctx, bootPath);
    if (present || bootPresent || syncPaths.length)
      await ctx.exec.mutate('systemctl', ['daemon-reload']);
    if (removeNmDropin(ctx)) await reloadNetworkManager(ctx);
    return { removed: present || bootPresent || syncPaths.length > 0, path };
  },
  async status(ctx, d, current) {
    const path = this.path(ctx);
    const text = readOrUndefined(path);
    const st: ServiceState = {
      state: 'not-installed',
      installed: text !== undefined,
      path,
      detail: {},
    };
    if (text !== undefined && (d || current))
      st.outdated = d ? text !== renderSystemdUnit(d) : runsOther(text, current!);
    if (ctx.root) return { ...st, state: userState(st) };
    const r = await ctx.exec.read(
      'systemctl',
      [
        'show',
        SYSTEMD_UNIT_NAME,
        '--property=LoadState,ActiveState,SubState,UnitFileState,MainPID,NRestarts,ExecMainStatus,FragmentPath',
      ],
      { allowFail: true },
    );
    if (r.code === 0) {
      st.detail = parseShow(r.stdout);
      // no unit of `awg service install`, but systemd loaded one from elsewhere (the Debian
      // package's /usr/lib/systemd/system/awg.service): that one is installed; outdated when it
      // runs another node or awg than this one
      const fragment = st.detail['FragmentPath'];
      const shipped =
        !st.installed && fragment && st.detail['LoadState'] === 'loaded'
          ? readOrUndefined(fragment)
          : undefined;
      if (fragment && shipped !== undefined) {
        st.installed = true;
        st.path = fragment;
        if (d || current) st.outdated = runsOther(shipped, current ?? d!);
      }
      st.active = st.detail['ActiveState'] === 'active';
      st.enabled = st.detail['UnitFileState'] === 'enabled';
      const pid = Number(st.detail['MainPID']);
      if (pid > 0) st.pid = pid;
      if (st.detail['LoadState'] === 'masked') st.disabled = true;
      if (st.installed && st.detail['LoadState'] === 'not-found') st.loaded = false;
    }
    return { ...st, state: userState(st) };
  },
};

/**
 * The launchd part of `status`: `launchctl print-disabled system`, `launchctl print
 * system/com.awg.daemon` and, where given, `sfltool dumpbtm` (macOS 13+). Pure.
 */
export function launchdState(
  st: ServiceState,
  disabled: { code: number; stdout: string },
  print: { code: number; stdout: string; stderr?: string },
  btm?: { code: number; stdout: string },
): ServiceState {
  const out: ServiceState = { ...st, detail: { ...st.detail } };
  if (disabled.code === 0 && parseLaunchctlDisabled(disabled.stdout).get(DAEMON_LABEL)) {
    out.disabled = true;
    out.detail['disabled'] = `launchctl print-disabled system lists ${DAEMON_LABEL} => disabled`;
  }
  if (
    btm?.code === 0 &&
    btmDisallows(parseDumpBtm(btm.stdout), DAEMON_LABEL, plistPath(DAEMON_LABEL))
  ) {
    out.disabled = true;
    out.detail['background'] =
      'switched off in System Settings → General → Login Items (sfltool dumpbtm: disallowed)';
  }
  const p = print.code === 0 ? parseLaunchctlPrint(print.stdout) : undefined;
  if (p) {
    out.loaded = true;
    if (p.state) out.detail['state'] = p.state;
    if (p.lastExitCode !== undefined) out.detail['last exit code'] = String(p.lastExitCode);
    if (p.runs !== undefined) out.detail['runs'] = String(p.runs);
    out.active = p.state === 'running';
    out.enabled = true;
    if (p.pid) out.pid = p.pid;
  } else {
    // exit 113 "Could not find service": launchd does not know the job; anything else
    // (a usage error, no permission) leaves it unknown
    if (
      print.code !== 0 &&
      classifyLaunchctl(print.code, print.stderr ?? '', print.stdout).kind === 'not-loaded'
    )
      out.loaded = false;
    out.enabled = false;
  }
  if (out.disabled) out.enabled = false;
  return { ...out, state: userState(out) };
}

/**
 * Is the installed plist `text` what this awg (`current` node and entry point) writes? It
 * must run `current` (ProgramArguments[0] and the entry before `daemon`), and re-rendering
 * its own flags must give the same text: another key, another node flag or a plist of an
 * older awg is outdated. Returns why not, or undefined when it is current.
 */
export function launchdOutdated(text: string, current: CurrentProgram): string | undefined {
  const argv = plistProgramArguments(text);
  if (!argv) return 'its ProgramArguments are not what awg writes';
  const d = parseDaemonArgv(argv);
  if (!d) return `it does not run \`awg daemon\` with flags this awg knows (${argv.join(' ')})`;
  if (d.node !== current.node || d.bin !== current.bin)
    return `it runs ${d.node} ${d.bin}, this awg is ${current.node} ${current.bin}`;
  if (renderLaunchdPlist(d) !== text)
    return 'it differs from what this awg writes for the same flags';
  return undefined;
}

/** Does a definition run another node or awg than `current`? (paths appear verbatim in both formats) */
function runsOther(text: string, current: CurrentProgram): boolean {
  return !text.includes(current.node) || !text.includes(current.bin);
}

/**
 * Idempotent: a plist that is current and loaded gets no launchctl call at all; a changed
 * one is booted out (if loaded) and bootstrapped; a label disabled in launchd is not
 * bootstrapped (it would fail with 119, or EIO on some releases) but reported, since only the
 * user may switch it back on. Uninstall boots out only a loaded job ("No such process" is
 * already gone) and removes the file if present; absent and unloaded, it changes nothing.
 */
const LAUNCHD_BOOT =
  'launchd runs it at boot: it loads the kill switch of the last apply before the daemon starts (only while the kill switch is on)';

export const launchdManager: ServiceManager = {
  path: (ctx) => join(ctx.root ?? ctx.fsRoot ?? '/', LAUNCH_DAEMONS_DIR, `${DAEMON_LABEL}.plist`),
  bootPath: (ctx) =>
    join(ctx.root ?? ctx.fsRoot ?? '/', LAUNCH_DAEMONS_DIR, `${KILLSWITCH_LABEL}.plist`),
  render: renderLaunchdPlist,
  async install(d, ctx) {
    if (d.git)
      throw new AwgError(
        'unsupported',
        '--git: following a repository is systemd-only for now; on macOS run `awg sync` from a LaunchDaemon of your own (docs/fleet.md)',
      );
    const path = this.path(ctx);
    const bootPath = this.bootPath!(ctx);
    // the boot kill switch first, and only written: launchd runs it at the next boot
    // (bootstrapped now it would replace the running anchor with the boot one)
    const bootText = renderKillSwitchLaunchdPlist(d);
    const bootChanged = readOrUndefined(bootPath) !== bootText;
    if (bootChanged) writeFile(ctx, bootPath, bootText);
    const text = renderLaunchdPlist(d);
    const changed = readOrUndefined(path) !== text;
    if (changed) writeFile(ctx, path, text);
    if (ctx.root) return { changed: changed || bootChanged, path, bootPath, boot: LAUNCHD_BOOT };
    const loaded = await launchdLoaded(ctx.exec);
    if (!changed && loaded) return { changed: bootChanged, path, bootPath, boot: LAUNCHD_BOOT };
    const dis = await ctx.exec.read('launchctl', launchctlArgs.printDisabled(), {
      allowFail: true,
    });
    if (dis.code === 0 && parseLaunchctlDisabled(dis.stdout).get(DAEMON_LABEL))
      throw disabledError(path);
    if (loaded) await bootout(ctx.exec);
    const r = await ctx.exec.mutate('launchctl', launchctlArgs.bootstrap(DAEMON_LABEL), {
      allowFail: true,
    });
    const o = classifyLaunchctl(r.code, r.stderr, r.stdout);
    if (o.kind === 'disabled') throw disabledError(path);
    // what launchd answers for a job Background Task Management holds back is not captured: ask BTM
    if (o.kind !== 'ok' && !ctx.exec.dryRun) {
      const btm = await readBtm(ctx.exec);
      if (
        btm?.code === 0 &&
        btmDisallows(parseDumpBtm(btm.stdout), DAEMON_LABEL, plistPath(DAEMON_LABEL))
      )
        throw disabledError(path);
    }
    if (o.kind !== 'ok' && !ctx.exec.dryRun)
      throw new AwgError(
        'driver',
        `launchctl bootstrap failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}${o.kind === 'io-error' ? ' (launchd says this when the job is already loaded, is disabled, or when it refuses the plist: owner root:wheel, mode 644, valid XML)' : ''}`,
      );
    return { changed: true, path, bootPath, boot: LAUNCHD_BOOT };
  },
  async uninstall(ctx) {
    const path = this.path(ctx);
    const bootPath = this.bootPath!(ctx);
    const present = existsSync(path);
    const bootPresent = existsSync(bootPath);
    const loaded = !ctx.root && (await launchdLoaded(ctx.exec));
    if (loaded) await bootout(ctx.exec);
    if (present) removeFile(ctx, path);
    // the boot job ran once at this boot (LaunchOnlyOnce) and will not again; without its file
    // launchd does not load it at the next
    if (bootPresent) removeFile(ctx, bootPath);
    return { removed: present || bootPresent || loaded, path };
  },
  async status(ctx, d, current) {
    const path = this.path(ctx);
    const text = readOrUndefined(path);
    const st: ServiceState = {
      state: 'not-installed',
      installed: text !== undefined,
      path,
      detail: {},
    };
    if (text !== undefined && d) st.outdated = text !== renderLaunchdPlist(d);
    else if (text !== undefined && current) {
      const why = launchdOutdated(text, current);
      st.outdated = why !== undefined;
      if (why) st.detail['outdated'] = why;
    }
    if (ctx.root) return { ...st, state: userState(st) };
    const dis = await ctx.exec.read('launchctl', launchctlArgs.printDisabled(), {
      allowFail: true,
    });
    const r = await ctx.exec.read('launchctl', launchctlArgs.print(DAEMON_LABEL), {
      allowFail: true,
    });
    return launchdState(st, dis, r, st.installed ? await readBtm(ctx.exec) : undefined);
  },
};

/**
 * `sfltool dumpbtm` (macOS 13+; as root it lists every user's records, system daemons
 * included). Absent before macOS 13, or refused: undefined, and status relies on launchd alone.
 */
async function readBtm(exec: Exec): Promise<{ code: number; stdout: string } | undefined> {
  try {
    return await exec.read('sfltool', ['dumpbtm'], { allowFail: true });
  } catch {
    return undefined;
  }
}

/** Does launchd know com.awg.daemon? Unknown answers count as loaded (a bootout is harmless). */
async function launchdLoaded(exec: Exec): Promise<boolean> {
  const p = await exec.read('launchctl', launchctlArgs.print(DAEMON_LABEL), { allowFail: true });
  return classifyLaunchctl(p.code, p.stderr, p.code === 0 ? '' : p.stdout).kind !== 'not-loaded';
}

/** bootout by service target; "No such process" (3) means already gone */
async function bootout(exec: Exec): Promise<void> {
  const r = await exec.mutate('launchctl', launchctlArgs.bootout(DAEMON_LABEL), {
    allowFail: true,
  });
  const o = classifyLaunchctl(r.code, r.stderr, r.stdout);
  if (o.kind !== 'ok' && o.kind !== 'not-loaded' && !exec.dryRun)
    throw new AwgError(
      'driver',
      `launchctl bootout system/${DAEMON_LABEL} failed (exit ${r.code}): ${o.message}`,
    );
}

function disabledError(path: string): AwgError {
  return new AwgError(
    'permission',
    `${DAEMON_LABEL} is disabled (in launchd, or switched off under Login Items), so it is not started (${path} is in place): allow it in System Settings → General → Login Items (Allow in the Background), or run \`sudo launchctl enable system/${DAEMON_LABEL}\`, then \`awg service install\` again`,
  );
}
