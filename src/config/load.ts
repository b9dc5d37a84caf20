/**
 * Load a config: YAML with source positions → zod model → semantic checks. Every problem
 * is collected and reported at once as `file:line:col: path: message`. Never throws on
 * bad input; returns `config` only when there are no errors.
 */
import { isPair, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import type * as z from 'zod';
import type { Issue } from '../errors.js';
import { dirname, isAbsolute, resolve } from 'node:path';
import { FileRefusedError, LIMITS, readTextFile, readTextFileSync } from '../util/files.js';
import { localSelection } from './host-selection.js';
import {
  matches,
  MergedPositions,
  Merger,
  overlayName,
  Overlays,
  type HostSelection,
  type Overlay,
  type Source,
} from './overlay.js';
import { Config } from './schema.js';
import { SourcePositions, countLines, formatPath, lineCol, type PathKey } from './positions.js';
import { checkSemantics } from './semantic.js';
import type { DestinationSet } from './lists.js';
import {
  loadDestinations,
  type DestinationLoadOptions,
  type UrlListLoad,
} from './load-destinations.js';

export { listFilePath, type UrlListCopy, type UrlListLoad } from './load-destinations.js';

export interface LoadResult {
  config?: Config;
  issues: Issue[];
  positions?: MergedPositions;
  /** the files read: the config first, then the overlay files applied */
  sources: string[];
  /** the overlays applied, in order (none without `overlays`) */
  overlays: AppliedOverlay[];
  /** the host the overlays were selected for (only when the config has overlays) */
  selection?: HostSelection;
  /** the effective config as written (overlays merged, no defaults): `awg render` */
  raw?: Record<string, unknown>;
  /**
   * per rule with `to`, by rule name (`rule-<index>` when unnamed): its destinations, the
   * inline values and every list file merged (only with `config`)
   */
  destinations?: Map<string, DestinationSet>;
  /** the list files read (absolute paths), for watchers */
  listFiles?: string[];
  /** the lists by URL and what became of each (only with `config`): status, `awg diff` */
  urlLists?: UrlListLoad[];
}

export function hasErrors(issues: Issue[]): boolean {
  return issues.some((i) => i.severity === 'error');
}

type ZIssue = z.core.$ZodIssue;

function isMissing(raw: unknown, path: PathKey[]): boolean {
  if (path.length === 0) return false;
  let cur: unknown = raw;
  for (const k of path.slice(0, -1)) {
    if (cur === null || typeof cur !== 'object') return false;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return (
    cur !== null &&
    typeof cur === 'object' &&
    !Array.isArray(cur) &&
    !Object.hasOwn(cur, path[path.length - 1]!)
  );
}

/** Unions: report the one branch whose shape matched, else the union's own message. */
function flatten(
  issue: ZIssue,
  raw: unknown,
  prefix: PathKey[] = [],
): { path: PathKey[]; message: string; code: string; keys?: string[] }[] {
  const path = [...prefix, ...(issue.path as PathKey[])];
  if (issue.code !== 'unrecognized_keys' && isMissing(raw, path)) {
    const message = issue.message.startsWith('missing ')
      ? issue.message
      : issue.code === 'invalid_type'
        ? `required field is missing (expected ${issue.expected})`
        : 'required field is missing';
    return [{ path, message, code: 'missing' }];
  }
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const shaped = issue.errors.filter(
      (branch) =>
        !branch.some(
          (b) =>
            b.path.length === 0 &&
            (b.code === 'invalid_type' ||
              b.code === 'unrecognized_keys' ||
              b.code === 'invalid_value'),
        ),
    );
    if (shaped.length > 0) {
      const fewest = Math.min(...shaped.map((b) => b.length));
      const best = shaped.filter((b) => b.length === fewest);
      if (best.length === 1) return best[0]!.flatMap((b) => flatten(b, raw, path));
    }
  }
  if (issue.code === 'unrecognized_keys')
    return issue.keys.map((k) => ({
      path: [...path, k],
      message: `unknown field "${k}"`,
      code: issue.code,
      keys: [k],
    }));
  const message = issue.message
    .replace(/^Invalid input: /, '')
    .replace(/expected record/, 'expected a mapping');
  return [{ path, message, code: issue.code }];
}

/** YAML → a plain mapping, with positions. Issues carry `file`; no schema check yet. */
function parseSource(
  text: string,
  file: string,
): { raw?: Record<string, unknown>; positions: SourcePositions; issues: Issue[] } {
  const lc = new LineCounter();
  // yaml's own unique-key check compares each key with every earlier one, quadratic in the
  // keys of a mapping (bench/RESULTS.md "error positions"); duplicates are found below with
  // one set per mapping instead, with the same message
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  const positions = new SourcePositions(doc, lc);
  countLines(lc, text);
  const issues: Issue[] = [];
  for (const e of doc.errors) {
    const p = positions.at(e.pos[0]);
    issues.push({
      file,
      line: p.line,
      col: p.col,
      path: '',
      message: `YAML: ${e.message.split('\n')[0]}`,
      severity: 'error',
    });
  }
  visit(doc, {
    Map(_k, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        if (!seen.has(pair.key.value)) {
          seen.add(pair.key.value);
          continue;
        }
        const p = positions.at(pair.key.range?.[0] ?? 0);
        issues.push({
          file,
          line: p.line,
          col: p.col,
          path: '',
          message: 'YAML: Map keys must be unique',
          severity: 'error',
        });
      }
    },
  });
  if (issues.length) return { issues: sortIssues(issues), positions };
  for (const w of doc.warnings) {
    const p = positions.at(w.pos[0]);
    issues.push({
      file,
      line: p.line,
      col: p.col,
      path: '',
      message: `YAML: ${w.message.split('\n')[0]}`,
      severity: 'warning',
    });
  }
  // `__proto__` as a key would become the object's prototype in toJS and vanish silently.
  visit(doc, {
    Pair(_k, pair, ancestors) {
      if (isScalar(pair.key) && pair.key.value === '__proto__' && pair.key.range) {
        const p = positions.at(pair.key.range[0]);
        const keys: PathKey[] = [];
        for (let i = 0; i < ancestors.length; i++) {
          const a = ancestors[i];
          if (isPair(a) && isScalar(a.key)) keys.push(String(a.key.value));
          else if (isSeq(a)) {
            const next = ancestors[i + 1] ?? pair;
            keys.push(a.items.indexOf(next as never));
          }
        }
        keys.push('__proto__');
        issues.push({
          file,
          line: p.line,
          col: p.col,
          path: formatPath(keys),
          message: '"__proto__" is not allowed as a key',
          severity: 'error',
        });
      }
    },
  });
  if (issues.some((i) => i.severity === 'error')) return { issues, positions };
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return {
      issues: [
        ...issues,
        {
          file,
          line: 1,
          col: 1,
          path: '',
          message: `YAML: ${(e as Error).message}`,
          severity: 'error',
        },
      ],
      positions,
    };
  }
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) {
    return {
      issues: [
        ...issues,
        {
          file,
          line: 1,
          col: 1,
          path: '',
          message: 'the config must be a YAML mapping with at least `version: 1`',
          severity: 'error',
        },
      ],
      positions,
    };
  }
  return { raw: raw as Record<string, unknown>, positions, issues };
}

/** zod issues of `raw` against `schema`, located through `positions` (paths under `prefix`). */
function schemaIssues(
  schema: z.ZodType,
  raw: unknown,
  positions: MergedPositions,
  prefix: PathKey[] = [],
): { ok: boolean; data?: unknown; issues: Issue[] } {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { ok: true, data: parsed.data, issues: [] };
  const issues: Issue[] = [];
  for (const zi of parsed.error.issues) {
    for (const f of flatten(zi, raw)) {
      const path = [...prefix, ...f.path];
      const pos = positions.locate(path, { key: f.code === 'unrecognized_keys' });
      issues.push({
        file: pos.file,
        ...lineCol(pos),
        path: formatPath(path),
        message: f.message,
        severity: 'error',
      });
    }
  }
  return { ok: false, issues };
}

/**
 * `readList` reads a `to.lists` file (default: a regular file of at most LIMITS.list bytes);
 * `urlList` gives a URL list's last good copy (default: none, every URL list is pending:
 * load-destinations.ts). The loader itself never reads the state directory nor the network.
 */
export interface LoadOptions extends DestinationLoadOptions {
  /** the host overlays are selected for (default: this machine, host-selection.ts) */
  selection?: HostSelection | (() => HostSelection);
  /** read an overlay file (default: a regular file of at most LIMITS.config bytes) */
  readFile?: (path: string) => string;
}

/**
 * Resolve the base's `overlays` for the selected host: the merged raw config (without
 * `overlays`), its positions, the files read and the overlays applied.
 */
function resolveOverlays(
  base: Record<string, unknown>,
  file: string,
  basePositions: SourcePositions,
  opts: LoadOptions,
): {
  raw?: Record<string, unknown>;
  positions: MergedPositions;
  issues: Issue[];
  sources: string[];
  applied: AppliedOverlay[];
  selection?: HostSelection;
} {
  const single = MergedPositions.single(file, basePositions);
  const checked = schemaIssues(Overlays, base.overlays, single, ['overlays']);
  if (!checked.ok)
    return { positions: single, issues: checked.issues, sources: [file], applied: [] };
  const overlays = checked.data as Overlay[];
  let selection: HostSelection;
  try {
    selection =
      typeof opts.selection === 'function'
        ? opts.selection()
        : (opts.selection ?? localSelection());
  } catch (e) {
    // this machine's labels file is unreadable or invalid: the overlays cannot be selected
    const at = single.locate(['overlays'], { key: true });
    return {
      positions: single,
      issues: [
        {
          file,
          ...lineCol(at),
          path: 'overlays',
          message: `cannot select overlays for this host: ${(e as Error).message}`,
          severity: 'error',
        },
      ],
      sources: [file],
      applied: [],
    };
  }
  const { overlays: _drop, ...rest } = base;
  const merger = new Merger(rest);
  const sources: Source[] = [{ file, positions: basePositions }];
  const issues: Issue[] = [];
  const applied: AppliedOverlay[] = [];
  const read = opts.readFile ?? ((p: string) => readTextFileSync(p, { maxBytes: LIMITS.config }));
  overlays.forEach((o, i) => {
    if (!matches(o.when, selection)) return;
    const name = overlayName(o, i);
    if (o.config) {
      merger.apply(o.config, 0, ['overlays', i, 'config']);
      applied.push({ name });
      return;
    }
    const path = isAbsolute(o.file!) ? o.file! : resolve(dirname(file), o.file!);
    const at = single.locate(['overlays', i, 'file']);
    let text: string;
    try {
      text = read(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why =
        e instanceof FileRefusedError
          ? `not read: the file is ${e.reason}`
          : code === 'ENOENT'
            ? 'file not found'
            : `cannot read: ${(e as Error).message}`;
      issues.push({
        file,
        ...lineCol(at),
        path: formatPath(['overlays', i, 'file']),
        message: `overlay "${name}" (${path}): ${why}`,
        severity: 'error',
      });
      return;
    }
    const parsed = parseSource(text, path);
    issues.push(...parsed.issues);
    if (!parsed.raw) return;
    if (Object.hasOwn(parsed.raw, 'overlays')) {
      const p = parsed.positions.locate(['overlays'], { key: true });
      issues.push({
        file: path,
        ...lineCol(p),
        path: 'overlays',
        message: 'an overlay cannot name overlays itself: list every overlay in the base config',
        severity: 'error',
      });
      return;
    }
    sources.push({ file: path, positions: parsed.positions });
    merger.apply(parsed.raw, sources.length - 1, []);
    applied.push({ name, file: path });
  });
  const positions = new MergedPositions(sources, merger.root);
  for (const m of merger.issues) {
    const src = sources[m.src]!;
    const p = src.positions?.locate(m.path);
    issues.push({
      file: src.file,
      ...lineCol(p),
      path: formatPath(m.path),
      message: m.message,
      severity: 'error',
    });
  }
  return {
    raw: merger.value,
    positions,
    issues,
    sources: sources.map((s) => s.file),
    applied,
    selection,
  };
}

export interface AppliedOverlay {
  name: string;
  /** absent: inline in the base config */
  file?: string;
}

export function loadConfigText(text: string, file: string, opts: LoadOptions = {}): LoadResult {
  const base = parseSource(text, file);
  let positions = MergedPositions.single(file, base.positions);
  if (!base.raw) return { issues: base.issues, positions, sources: [file], overlays: [] };
  const issues = [...base.issues];
  let raw = base.raw;
  let sources = [file];
  let applied: AppliedOverlay[] = [];
  let selection: HostSelection | undefined;
  if (Object.hasOwn(raw, 'overlays')) {
    const r = resolveOverlays(raw, file, base.positions, opts);
    issues.push(...r.issues);
    positions = r.positions;
    sources = r.sources;
    applied = r.applied;
    selection = r.selection;
    if (!r.raw || hasErrors(r.issues))
      return {
        issues: sortIssues(issues),
        positions,
        sources,
        overlays: applied,
        ...(selection ? { selection } : {}),
      };
    raw = r.raw;
  }
  const done = (extra: Partial<LoadResult>): LoadResult => ({
    issues: sortIssues(issues),
    positions,
    sources,
    overlays: applied,
    raw,
    ...(selection ? { selection } : {}),
    ...extra,
  });
  const parsed = schemaIssues(Config, raw, positions);
  if (!parsed.ok) {
    issues.push(...parsed.issues);
    return done({});
  }
  const config = parsed.data as Config;
  for (const f of checkSemantics(config)) {
    const pos = positions.locate(f.path, { key: f.atKey });
    issues.push({
      file: pos.file,
      ...lineCol(pos),
      path: formatPath(f.path),
      message: f.message,
      severity: f.severity,
    });
  }
  if (hasErrors(issues)) return done({});
  const lists = loadDestinations(config, positions, opts);
  issues.push(...lists.issues);
  return hasErrors(issues)
    ? done({})
    : done({
        config,
        destinations: lists.destinations,
        listFiles: lists.files,
        urlLists: lists.urlLists,
      });
}

/** Read and load a config file: a regular file of at most LIMITS.config bytes (util/files.ts). */
export async function loadConfigFile(path: string, opts: LoadOptions = {}): Promise<LoadResult> {
  let text: string;
  try {
    text = await readTextFile(path, { maxBytes: LIMITS.config });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const message =
      e instanceof FileRefusedError
        ? `not read: the file is ${e.reason}`
        : code === 'ENOENT'
          ? 'file not found'
          : `cannot read: ${(e as Error).message}`;
    return {
      issues: [{ file: path, path: '', message, severity: 'error' }],
      sources: [path],
      overlays: [],
    };
  }
  return loadConfigText(text, path, opts);
}

function sortIssues(issues: Issue[]): Issue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
}
