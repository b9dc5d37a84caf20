/**
 * The first half of every command that plans (validate, diff, apply, up, the daemon's runs):
 * load the file → resolve secrets → probe host facts → build the desired model → realise it
 * for this platform. Nothing here touches the system but reading the config, its secret
 * files and (when asked) cheap host facts; `diff` shows exactly the plan `apply` executes
 * because both start here.
 */
import { withActiveProfiles } from '../config/profiles.js';
import { randomBytes } from 'node:crypto';
import { AwgError, type Issue } from '../errors.js';
import { hasErrors, loadConfigFile, type UrlListLoad } from '../config/load.js';
import type { ParsedListStore, UrlListSource } from '../config/load-destinations.js';
import type { DestinationSet } from '../config/lists.js';
import { checkSecrets, secretRefs } from '../config/secrets.js';
import type { Config } from '../config/schema.js';
import type { HostSelection } from '../config/overlay.js';
import {
  buildDesired,
  DEFAULT_FACTS,
  type BuildOptions,
  type DesiredModel,
  type HostFacts,
  type RuntimeLimit,
} from '../model/desired.js';
import type { DesiredState } from '../model/resources.js';
import type { Claims } from '../resources/driver.js';
import type { StateStore } from '../util/state.js';
import type { Exec } from '../util/exec.js';
import { loadPlatform, type Platform } from '../resources/registry.js';
import { hostFindings } from '../model/host-checks.js';
import { formatPath } from '../config/positions.js';
import { cgroupRootFromEnv, claimsFromConfig } from './claims.js';

export interface Prepared {
  file: string;
  config: Config;
  /** warnings (and, from `prepare`, never errors) with their file:line:col */
  issues: Issue[];
  /** what the config asks, OS-neutral (the firewall as a policy) */
  model: DesiredModel;
  /** the model realised for this platform: what is planned against the host */
  desired: DesiredState;
  facts: HostFacts;
  claims: Claims;
  secrets: Map<string, string>;
  /** the files read: the config, then the overlay files applied (the daemon watches them all) */
  sources: string[];
  /** the host the overlays were selected for (configs with overlays only) */
  selection?: HostSelection;
  /** per rule with `to`, by rule name: its destinations (inline values and list files) */
  destinations?: ReadonlyMap<string, DestinationSet>;
  /** the lists by URL: the copy each uses, or why none (config/load-destinations.ts) */
  urlLists?: UrlListLoad[];
}

export interface PrepareOptions {
  /** this host's platform unless given */
  platform?: Platform;
  /** do not read secret files/variables (CI without the keys): fingerprints stay `unresolved:` */
  skipSecrets?: boolean | undefined;
  /** use these facts; else probe them when `probe`, else the neutral defaults (validate) */
  facts?: HostFacts;
  /** probe host facts (endpoint resolution, cgroup mount, DNS manager) */
  probe?: boolean;
  /** what probing reads through (default: this host's processes; the macOS host model in tests) */
  exec?: Exec;
  env?: NodeJS.ProcessEnv | undefined;
  /** set: refuse `{env:}` secrets with this reason (configs named through the daemon's API) */
  envSecretsRefused?: string;
  /** tunnels not up now (the daemon's health view; see BuildOptions.down) */
  down?: ReadonlySet<string>;
  /**
   * rules held on their fallback (`sticky`, see BuildOptions.held); the daemon's, for the
   * network the facts show (a network change ends every hold: daemon/sticky.ts)
   */
  held?: ReadonlySet<string> | ((config: Config, facts: HostFacts) => ReadonlySet<string>);
  /**
   * tunnel → its active obfuscation profile (config/profiles.ts); the daemon's choice for the
   * network the facts show (daemon/profile-switch.ts)
   */
  profiles?:
    | ReadonlyMap<string, string>
    | ((config: Config, facts: HostFacts) => ReadonlyMap<string, string>);
  /** the daemon: its DNS stub learns the addresses of domain rules (BuildOptions.learn) */
  learn?: boolean;
  /**
   * processes limited at run time (see BuildOptions.runtimeLimits); or, as the daemon gives
   * them (`awg limit`, daemon/limit-book.ts), those that a run of the config read here shapes
   */
  runtimeLimits?:
    | BuildOptions['runtimeLimits']
    | ((config: Config, cgroupRoot: string) => readonly RuntimeLimit[]);
  /** the state directory the probe reads (and, with `persistEndpoints`, keeps endpoint answers in) */
  state?: StateStore;
  persistEndpoints?: boolean;
  /**
   * The host's fingerprint key (util/host-key.ts `fingerprintKeyIn(stateDir)`), asked for
   * only when there are secrets. Commands that compare the plan with what is applied
   * (diff, apply, the daemon) pass it; without it a random key of this process is used
   * (validate: its fingerprints never leave the process).
   */
  fingerprintKey?: () => Uint8Array;
  /** the host a config with overlays is rendered for (default: this machine) */
  selection?: HostSelection;
  /** the last good copies of URL lists (util/list-cache.ts); absent: every URL list is pending */
  urlList?: UrlListSource | undefined;
  /** parses of list files kept from earlier (config/parsed-lists.ts); absent: every list is parsed */
  parsedLists?: ParsedListStore | undefined;
}

/**
 * `kind`: `unsupported` when the config is valid but this host cannot run it (an engine it
 * lacks: model/host-checks.ts); otherwise the config is invalid.
 */
export type PrepareResult =
  { ok: true; prepared: Prepared } | { ok: false; issues: Issue[]; kind?: 'unsupported' };

export async function prepare(file: string, opts: PrepareOptions = {}): Promise<PrepareResult> {
  const env = opts.env ?? process.env;
  const loaded = await loadConfigFile(file, {
    ...(opts.selection ? { selection: opts.selection } : {}),
    ...(opts.urlList ? { urlList: opts.urlList } : {}),
    ...(opts.parsedLists ? { parsedLists: opts.parsedLists } : {}),
  });
  if (!loaded.config) return { ok: false, issues: loaded.issues };
  const config = loaded.config;
  const issues = [...loaded.issues];
  let secrets = new Map<string, string>();
  if (!opts.skipSecrets) {
    // `{age:}` files are decrypted first (asynchronously; the age module loads only for them)
    const age = secretRefs(config).some((r) => typeof r.secret !== 'string' && 'age' in r.secret)
      ? await (
          await import('../config/age.js')
        ).resolveAgeSecrets(config, file, loaded.positions, env)
      : undefined;
    const s = checkSecrets(
      config,
      {
        configFile: file,
        env,
        ...(opts.envSecretsRefused ? { envRefused: opts.envSecretsRefused } : {}),
        ...(age ? { age } : {}),
      },
      loaded.positions,
    );
    issues.push(...s.issues);
    secrets = s.values;
    if (hasErrors(s.issues)) return { ok: false, issues };
  }
  const platform = opts.platform ?? (await loadPlatform());
  let facts = opts.facts ?? DEFAULT_FACTS;
  if (!opts.facts && opts.probe) {
    const exec =
      opts.exec ??
      new (await import('../util/exec.js')).ProcessExec(
        (await import('../util/reporter.js')).silentReporter,
      );
    facts = await platform.probeFacts(config, {
      exec,
      env,
      ...(opts.state ? { state: opts.state } : {}),
      ...(opts.persistEndpoints !== undefined ? { persistEndpoints: opts.persistEndpoints } : {}),
    });
  }
  // what the host facts say this host cannot run, located like the config's own errors
  const cannot = hostFindings(config, facts).map((f) => {
    const pos = loaded.positions?.locate(f.path, { key: f.atKey });
    return {
      file: pos?.file ?? file,
      ...(pos ? { line: pos.line, col: pos.col } : {}),
      path: formatPath(f.path),
      message: f.message,
      severity: f.severity,
    };
  });
  if (cannot.some((i) => i.severity === 'error'))
    return {
      ok: false,
      issues: [...issues, ...cannot].sort(
        (a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0),
      ),
      kind: 'unsupported',
    };
  let model: DesiredModel;
  let desired: DesiredState;
  try {
    const fingerprintKey = secrets.size ? (opts.fingerprintKey?.() ?? randomBytes(32)) : undefined;
    const cgroupRoot = cgroupRootFromEnv(env);
    const runtimeLimits =
      typeof opts.runtimeLimits === 'function'
        ? opts.runtimeLimits(config, cgroupRoot)
        : (opts.runtimeLimits ?? []);
    // the engines run each amneziawg tunnel's active obfuscation profile (the first unless the
    // daemon chose another); the prepared config stays as written
    const running = withActiveProfiles(
      config,
      typeof opts.profiles === 'function' ? opts.profiles(config, facts) : opts.profiles,
    );
    const held = typeof opts.held === 'function' ? opts.held(config, facts) : opts.held;
    model = buildDesired(running, {
      facts,
      secrets,
      ...(fingerprintKey ? { fingerprintKey } : {}),
      cgroupRoot,
      ...(opts.down ? { down: opts.down } : {}),
      ...(held?.size ? { held } : {}),
      ...(opts.learn ? { learn: true } : {}),
      ...(runtimeLimits.length ? { runtimeLimits } : {}),
      ...(loaded.destinations ? { destinations: loaded.destinations } : {}),
    });
    desired = platform.realise(model, facts, running);
  } catch (e) {
    // what the config cannot express (allocation, names nft refuses) is a config issue; a host
    // that cannot realise a valid config (e.g. cgroup v2 mounted elsewhere) is not
    if (e instanceof AwgError && e.kind !== 'invalid-config') throw e;
    return {
      ok: false,
      issues: [
        ...issues,
        { file, path: 'routing', message: (e as Error).message, severity: 'error' },
      ],
    };
  }
  return {
    ok: true,
    prepared: {
      file,
      config,
      issues,
      model,
      desired,
      facts,
      claims: claimsFromConfig(config, env),
      secrets,
      // list files too: the daemon follows them like the config
      sources: [...loaded.sources, ...(loaded.listFiles ?? [])],
      ...(loaded.destinations ? { destinations: loaded.destinations } : {}),
      ...(loaded.urlLists?.length ? { urlLists: loaded.urlLists } : {}),
      ...(loaded.selection ? { selection: loaded.selection } : {}),
    },
  };
}
