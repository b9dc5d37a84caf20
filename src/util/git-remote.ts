/**
 * Where a checkout's remote lives: its URL read from the repository's config (no `git`
 * spawned, as git-revision.ts), and the host and port a fetch from it connects to — what the
 * rollout check's `reach: [git]` connects to (src/daemon/revision-gate.ts).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gitDirOf } from './git-revision.js';

export type RemoteEndpoint =
  | { kind: 'network'; host: string; port: number }
  /** file://, a local path: a fetch touches no network */
  | { kind: 'local' };

const DEFAULT_PORTS: Readonly<Record<string, number>> = {
  'ssh:': 22,
  'git+ssh:': 22,
  'ssh+git:': 22,
  'git:': 9418,
  'http:': 80,
  'https:': 443,
};

/**
 * The host and port of a git remote URL: `ssh://[user@]host[:port]/path`,
 * scp-like `[user@]host:path`, `https://`, `http://`, `git://`; `file://` and local paths are
 * `local`. Undefined when it is none of these (e.g. a `ext::` transport). Pure.
 */
export function remoteEndpoint(url: string): RemoteEndpoint | undefined {
  const u = url.trim();
  if (!u) return undefined;
  if (u.startsWith('file://') || u.startsWith('/') || u.startsWith('./') || u.startsWith('../'))
    return { kind: 'local' };
  // git's remote helpers (`ext::`, `fd::`, `<transport>::<address>`): nothing to connect to that we know
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(u)) return undefined;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(u)?.[1]?.toLowerCase();
  if (scheme) {
    const port = DEFAULT_PORTS[`${scheme}:`];
    if (port === undefined) return undefined;
    let parsed: URL;
    try {
      // URL parses ssh:// and git:// as opaque hosts: give it a scheme it knows for the authority
      parsed = new URL(`http://${u.slice(scheme.length + 3)}`);
    } catch {
      return undefined;
    }
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    if (!host) return undefined;
    const explicit = /^(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/]*):(\d+)/.exec(u.slice(scheme.length + 3));
    return { kind: 'network', host, port: explicit ? Number(explicit[1]) : port };
  }
  // scp-like: [user@]host:path; no slash before the first colon (else it is a local path)
  const scp = /^(?:[^@/:]+@)?(\[[^\]]+\]|[^:/]+):/.exec(u);
  if (scp) return { kind: 'network', host: scp[1]!.replace(/^\[(.*)\]$/, '$1'), port: 22 };
  return { kind: 'local' };
}

/**
 * The URL of the remote the checkout of `file` follows: its branch's `remote` (else
 * `origin`). Undefined outside a checkout or without one.
 */
export function gitRemoteUrlOf(file: string): string | undefined {
  const gitDir = gitDirOf(resolve(file, '..'));
  if (!gitDir) return undefined;
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  };
  const common = read(join(gitDir, 'commondir'))?.trim();
  const config = read(join(common ? resolve(gitDir, common) : gitDir, 'config'));
  if (!config) return undefined;
  const branch = /^ref:\s*refs\/heads\/(\S+)$/m.exec(read(join(gitDir, 'HEAD')) ?? '')?.[1];
  const sections = parseGitConfig(config);
  const remote = (branch && sections.get(`branch "${branch}"`)?.get('remote')) || 'origin';
  return sections.get(`remote "${remote}"`)?.get('url');
}

/** `[section "sub"]` → key → value (the first value; keys lower-cased). Enough for remotes. Pure. */
export function parseGitConfig(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let cur: Map<string, string> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]$/.exec(line);
    if (sec) {
      const name = `${sec[1]!.toLowerCase()}${sec[2] !== undefined ? ` "${sec[2]}"` : ''}`;
      cur = out.get(name) ?? new Map();
      out.set(name, cur);
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$/.exec(line);
    if (kv && cur) {
      const key = kv[1]!.toLowerCase();
      let v = (kv[2] ?? 'true').replace(/\s+[#;].*$/, '');
      if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      if (!cur.has(key)) cur.set(key, v);
    }
  }
  return out;
}
