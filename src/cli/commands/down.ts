import { toAwgError } from '../../errors.js';
import { ownHost, type HostDeps } from './apply.js';
import type { OwnerLock } from '../../resources/owner-lock.js';
import { loadConfigFile } from '../../config/load.js';
import { claimsFromConfig, DEFAULT_CLAIMS } from '../../pipeline/claims.js';
import { hostEnv } from '../../pipeline/host.js';
import { teardown } from '../../pipeline/teardown.js';
import { loadPlatform } from '../../resources/registry.js';
import { printError, printIssues, TextReporter, JsonReporter, type Io } from '../output.js';
import { daemonFor, type DaemonChoice } from '../../daemon/client.js';

export interface DownOptions extends DaemonChoice {
  file?: string;
  stateDir?: string;
  dryRun?: boolean;
  json?: boolean;
  verbose?: boolean;
}

/**
 * Remove every object awg owns and restore saved originals (sysctls, DNS). Ownership comes
 * from markers, so `down` needs no config; the claims (which tables/marks are ours) come
 * from the last apply, the given config, or the defaults.
 */
export async function downCommand(io: Io, o: DownOptions, deps: HostDeps = {}): Promise<number> {
  // a dry run only reads the host: direct mode shows every command; a real down goes
  // through a running daemon, which would otherwise re-apply its config on the next run
  if (!o.dryRun) {
    let client;
    try {
      client = (await daemonFor(o)).client;
    } catch (e) {
      const err = toAwgError(e);
      printError(io, err);
      return err.exitCode;
    }
    if (client) {
      try {
        const r = await client.down();
        if (o.json)
          io.out(JSON.stringify({ removed: r.removed, mutations: r.mutations }, null, 2) + '\n');
        else
          io.out(
            r.removed.length
              ? `Removed ${r.removed.length} object(s) owned by awg.\n`
              : 'Nothing to remove: awg owns no objects on this host.\n',
          );
        return 0;
      } catch (e) {
        const err = toAwgError(e);
        printError(io, err);
        return err.exitCode;
      } finally {
        client.close();
      }
    }
  }
  const reporter = o.json ? new JsonReporter(io) : new TextReporter(io, o.verbose);
  let lock: OwnerLock | undefined;
  try {
    const platform = deps.platform ?? (await loadPlatform());
    if (!o.dryRun)
      lock = await ownHost(io, platform, deps, { command: 'down', stateDir: o.stateDir });
    const env = await hostEnv({
      platform,
      stateDir: o.stateDir,
      dryRun: o.dryRun,
      reporter,
      claims: DEFAULT_CLAIMS,
      ...(deps.exec ? { exec: deps.exec } : {}),
    });
    if (o.file) {
      const l = await loadConfigFile(o.file);
      if (!l.config) {
        printIssues(io, l.issues);
        return 1;
      }
      env.claims = claimsFromConfig(l.config);
    } else env.claims = env.applied.claims() ?? DEFAULT_CLAIMS;
    // Remove as much as possible even when one object resists; report what failed.
    const r = await teardown(env, env.applied);
    for (const e of r.errors) io.err(`awg: ${e.message}\n`);
    if (r.left.length) {
      io.err(`awg: down left objects behind: ${r.left.join(', ')}\n`);
      // a tool that refused us (not root) is the cause to act on: exit as a permission error (4)
      const refused = r.errors.find((e) => e.kind === 'permission');
      return refused ? refused.exitCode : 7;
    }
    if (o.json)
      io.out(
        JSON.stringify(
          {
            removed: r.removed,
            mutations: env.exec.mutations,
            errors: r.errors.map((e) => e.message),
          },
          null,
          2,
        ) + '\n',
      );
    else
      io.out(
        r.removed.length
          ? `Removed ${r.removed.length} object(s) owned by awg.\n`
          : 'Nothing to remove: awg owns no objects on this host.\n',
      );
    return r.errors.length ? r.errors[0]!.exitCode : 0;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  } finally {
    lock?.release();
  }
}
