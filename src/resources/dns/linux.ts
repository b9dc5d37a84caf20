/**
 * Linux DNS driver. The manager is detected on every call (detectDnsManager), overridable with
 * AWG_DNS_MANAGER=resolved|resolvconf|static; AWG_RESOLV_CONF moves resolv.conf (tests).
 *
 * - resolved: per-link servers, domains and default-route on our links (`<claims.linkPrefix>*`)
 *   through resolved's D-Bus API, reverted on delete (resolved.ts). No `system` scope: the
 *   model puts the system resolver on the default tunnel's link.
 * - resolvconf: `resolvconf -a <scope>` with the file on stdin, `resolvconf -d <scope>`.
 *   Read back from /run/resolvconf/interface/<scope> (Debian) or `resolvconf -l` (openresolv).
 * - static: resolv.conf is replaced by a file whose first line is `# managed by awg scope=S`.
 *   The first time, the original (file bytes and mode, or symlink target) is saved in the
 *   StateStore (`dns-static-backup`); delete restores it byte-exact and forgets it. A file
 *   that lost our marker is someone else's and is left alone.
 */
import { constants } from 'node:fs';
import {
  access,
  lstat,
  readFile,
  readlink,
  rename,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../../util/files.js';
import { deleteHalf, type Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { DnsSpec, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import type { ApplyContext, Driver, ObserveResult, ObserveScope } from '../driver.js';
import { specEqual } from '../../util/canonical.js';
import {
  detectDnsManager,
  parseManagedResolvConf,
  parseResolvconfInput,
  renderResolvConf,
  renderResolvconfInput,
  type DnsManager,
} from './parse.js';
import { createResolved, type ResolvedOptions } from './resolved.js';

export const DNS_STATE_KEY = 'dns-static-backup';

export type StaticBackup =
  | { path: string; kind: 'file'; content: string /* base64 */; mode: number }
  | { path: string; kind: 'symlink'; target: string }
  | { path: string; kind: 'absent' };

export interface LinuxDnsOptions {
  exec: Pick<Exec, 'read'>;
  env?: NodeJS.ProcessEnv | undefined;
  /** Debian resolvconf's per-interface directory */
  resolvconfDir?: string;
  /** how resolved is spoken to (default: busctl when installed, else resolvectl) */
  resolvedClient?: ResolvedOptions['client'];
  /** our links' ifindexes (default: /sys/class/net) */
  links?: ResolvedOptions['links'];
}

async function onPath(tool: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  for (const d of [
    ...(env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/sbin',
    '/usr/bin',
    '/bin',
  ]) {
    if (!d) continue;
    if (
      await access(join(d, tool), constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return true;
  }
  return false;
}

function fsError(e: unknown, what: string): AwgError {
  const code = (e as NodeJS.ErrnoException).code;
  return new AwgError(
    code === 'EACCES' || code === 'EPERM' ? 'permission' : 'driver',
    `${what}: ${(e as Error).message}`,
    { cause: e },
  );
}

/**
 * Replace `path` crash-safely (util/files.ts: temp file in the same directory, fsync, rename,
 * fsync of the directory; the rename also replaces a symlink). A bind-mounted resolv.conf
 * (containers) cannot be renamed over (EBUSY): then it is written in place and fsync'ed.
 */
async function replaceFile(path: string, data: string | Buffer, mode: number): Promise<void> {
  try {
    await writeFileAtomic(path, data, { mode });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EBUSY') throw fsError(e, `cannot write ${path}`);
    await writeFile(path, data, { flush: true }).catch((e2: unknown) => {
      throw fsError(e2, `cannot write ${path}`);
    });
  }
}

export function createLinuxDnsDriver(opts: LinuxDnsOptions) {
  const env = opts.env ?? process.env;
  const resolvConf = env.AWG_RESOLV_CONF || '/etc/resolv.conf';
  const resolvconfDir = opts.resolvconfDir ?? '/run/resolvconf/interface';
  let resolvedClient: ReturnType<typeof createResolved> | undefined;
  async function resolved() {
    resolvedClient ??= createResolved({
      client: opts.resolvedClient ?? ((await onPath('busctl', env)) ? 'busctl' : 'resolvectl'),
      links: opts.links,
    });
    return resolvedClient;
  }

  async function manager(): Promise<DnsManager> {
    const link = await readlink(resolvConf).catch(() => undefined);
    const text = await readFile(resolvConf, 'utf8').catch(() => undefined);
    try {
      return detectDnsManager({
        override: env.AWG_DNS_MANAGER,
        resolvConfLink: link,
        resolvConfText: text,
        hasResolvectl: await onPath('resolvectl', env),
        hasResolvconf: await onPath('resolvconf', env),
      });
    } catch (e) {
      throw new AwgError('invalid-config', (e as Error).message);
    }
  }

  // ---- static
  async function readStatic(): Promise<DnsSpec | undefined> {
    const text = await readFile(resolvConf, 'utf8').catch(() => undefined);
    return text === undefined ? undefined : parseManagedResolvConf(text);
  }
  async function backup(): Promise<StaticBackup> {
    const st = await lstat(resolvConf).catch(() => undefined);
    if (!st) return { path: resolvConf, kind: 'absent' };
    if (st.isSymbolicLink())
      return { path: resolvConf, kind: 'symlink', target: await readlink(resolvConf) };
    return {
      path: resolvConf,
      kind: 'file',
      content: (await readFile(resolvConf)).toString('base64'),
      mode: st.mode & 0o7777,
    };
  }
  async function restore(b: StaticBackup): Promise<void> {
    if (b.kind === 'file') return replaceFile(b.path, Buffer.from(b.content, 'base64'), b.mode);
    if (b.kind === 'absent') {
      await unlink(b.path).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
          throw fsError(e, `cannot remove ${b.path}`);
      });
      return;
    }
    const tmp = `${b.path}.awg-tmp`;
    await unlink(tmp).catch(() => {});
    await symlink(b.target, tmp);
    await rename(tmp, b.path).catch((e: unknown) => {
      throw fsError(e, `cannot restore the symlink ${b.path} → ${b.target}`);
    });
    await fsyncDir(dirname(b.path));
  }
  async function applyStatic(change: Change<'dns'>, ctx: ApplyContext): Promise<boolean> {
    const cur = await readStatic();
    if (change.action === 'delete') {
      const b = ctx.state.get<StaticBackup>(DNS_STATE_KEY);
      if (!cur || cur.scope !== change.before?.scope) return false;
      if (!b) {
        ctx.reporter.report({
          type: 'warning',
          message: `${resolvConf} was written by awg but no original is on record; leaving it`,
        });
        return false;
      }
      if (ctx.exec.record(`restore ${resolvConf} (${b.kind})`)) {
        await restore(b);
        ctx.state.delete(DNS_STATE_KEY);
      }
      return true;
    }
    const after = change.after!;
    if (cur && specEqual(cur, after)) return false;
    if (!ctx.dryRun && !cur && !ctx.state.get(DNS_STATE_KEY))
      ctx.state.set(DNS_STATE_KEY, await backup());
    if (ctx.exec.record(`write ${resolvConf} (${after.servers.join(' ') || 'no servers'})`))
      await replaceFile(resolvConf, renderResolvConf(after), 0o644);
    return true;
  }

  // ---- resolvconf
  async function readResolvconf(
    exec: Pick<Exec, 'read'>,
    scope: string,
  ): Promise<DnsSpec | undefined> {
    let text = await readFile(join(resolvconfDir, scope), 'utf8').catch(() => undefined);
    if (text === undefined) {
      const r = await exec.read('resolvconf', ['-l', scope], { allowFail: true });
      if (r.code === 0 && r.stdout.trim()) text = r.stdout;
    }
    return text === undefined ? undefined : parseResolvconfInput(scope, text);
  }
  async function applyResolvconf(change: Change<'dns'>, ctx: ApplyContext): Promise<boolean> {
    const spec = (change.after ?? change.before)!;
    const cur = await readResolvconf(ctx.exec, spec.scope);
    if (change.action === 'delete') {
      if (!cur) return false;
      await ctx.exec.mutate('resolvconf', ['-d', spec.scope]);
      return true;
    }
    if (cur && specEqual(cur, spec)) return false;
    await ctx.exec.mutate('resolvconf', ['-a', spec.scope], { input: renderResolvconfInput(spec) });
    return true;
  }

  const driver: Driver<'dns'> & { manager(): Promise<DnsManager> } = {
    kind: 'dns',
    manager,
    async observe(scope: ObserveScope): Promise<ObserveResult<'dns'>> {
      const m = await manager();
      let specs: DnsSpec[] = [];
      if (m === 'static') {
        const s = await readStatic();
        if (s) specs = [s];
      } else if (m === 'resolved')
        specs = await (await resolved()).observe(opts.exec, scope.claims.linkPrefix, scope.state);
      else {
        // resolvconf has no portable "list interfaces": look at the scopes we could own
        const scopes = new Set(
          scope.desired.resources
            .filter((r) => r.kind === 'dns')
            .map((r) => (r.spec as DnsSpec).scope),
        );
        for (const s of scope.state.get<string[]>('dns-resolvconf-scopes') ?? []) scopes.add(s);
        for (const s of scopes) {
          const spec = await readResolvconf(opts.exec, s);
          if (spec) specs.push(spec);
        }
      }
      const resources: Resource<'dns'>[] = specs.map((spec) => ({
        kind: 'dns',
        id: ids.dns(spec.scope),
        spec,
        deps: [],
      }));
      return { resources, foreign: [], facts: { dns: { manager: m, resolvConf } } };
    },

    async apply(change: Change<'dns'>, ctx) {
      if (change.action === 'noop') return 'unchanged';
      if (!change.after && !change.before)
        throw new AwgError('bug', `${change.action} ${change.id} without a spec`);
      const m = await manager();
      const step = (c: Change<'dns'>) =>
        m === 'static'
          ? applyStatic(c, ctx)
          : m === 'resolved'
            ? resolved().then((r) => r.apply(c, ctx))
            : applyResolvconf(c, ctx);
      let changed = false;
      if (
        change.action === 'replace' &&
        change.before &&
        change.after &&
        change.before.scope !== change.after.scope
      ) {
        changed = await step(deleteHalf(change));
      }
      changed = (await step(change)) || changed;
      if (m === 'resolvconf' && !ctx.dryRun) {
        // remember scopes handed to resolvconf so observe finds them after the config drops them
        const held = new Set(ctx.state.get<string[]>('dns-resolvconf-scopes') ?? []);
        if (change.action === 'delete' && change.before) held.delete(change.before.scope);
        if (change.after) held.add(change.after.scope);
        if (held.size) ctx.state.set('dns-resolvconf-scopes', [...held].sort());
        else ctx.state.delete('dns-resolvconf-scopes');
      }
      return changed ? 'changed' : 'unchanged';
    },
  };
  return driver;
}
