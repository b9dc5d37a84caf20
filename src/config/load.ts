/**
 * Load a config: YAML with source positions → zod model → semantic checks. Every problem
 * is collected and reported at once as `file:line:col: path: message`. Never throws on
 * bad input; returns `config` only when there are no errors.
 */
import { isPair, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import type { Issue } from '../errors.js';
import { FileRefusedError, LIMITS, readTextFile } from '../util/files.js';
import { Config } from './schema.js';
import { SourcePositions, countLines, formatPath, type PathKey } from './positions.js';
import { checkSemantics } from './semantic.js';

export interface LoadResult {
  config?: Config;
  issues: Issue[];
  positions?: SourcePositions;
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
  return cur !== null && typeof cur === 'object' && !Array.isArray(cur) && !Object.hasOwn(cur, path[path.length - 1]!);
}

/** Unions: report the one branch whose shape matched, else the union's own message. */
function flatten(issue: ZIssue, raw: unknown, prefix: PathKey[] = []): { path: PathKey[]; message: string; code: string; keys?: string[] }[] {
  const path = [...prefix, ...(issue.path as PathKey[])];
  if (issue.code !== 'unrecognized_keys' && isMissing(raw, path)) {
    const message = issue.message.startsWith('missing ') ? issue.message : issue.code === 'invalid_type' ? `required field is missing (expected ${issue.expected})` : 'required field is missing';
    return [{ path, message, code: 'missing' }];
  }
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const shaped = issue.errors.filter((branch) => !branch.some((b) => b.path.length === 0 && (b.code === 'invalid_type' || b.code === 'unrecognized_keys' || b.code === 'invalid_value')));
    if (shaped.length > 0) {
      const fewest = Math.min(...shaped.map((b) => b.length));
      const best = shaped.filter((b) => b.length === fewest);
      if (best.length === 1) return best[0]!.flatMap((b) => flatten(b, raw, path));
    }
  }
  if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => ({ path: [...path, k], message: `unknown field "${k}"`, code: issue.code, keys: [k] }));
  const message = issue.message.replace(/^Invalid input: /, '').replace(/expected record/, 'expected a mapping');
  return [{ path, message, code: issue.code }];
}

export function loadConfigText(text: string, file: string): LoadResult {
  const lc = new LineCounter();
  // yaml's own unique-key check compares each key with every earlier one (20,000 keys: 4 s);
  // duplicates are found below with one set per mapping instead, with the same message
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  const positions = new SourcePositions(doc, lc);
  countLines(lc, text);
  const issues: Issue[] = [];
  for (const e of doc.errors) {
    const p = positions.at(e.pos[0]);
    issues.push({ file, line: p.line, col: p.col, path: '', message: `YAML: ${e.message.split('\n')[0]}`, severity: 'error' });
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
        issues.push({ file, line: p.line, col: p.col, path: '', message: 'YAML: Map keys must be unique', severity: 'error' });
      }
    },
  });
  if (issues.length) return { issues: sortIssues(issues), positions };
  for (const w of doc.warnings) {
    const p = positions.at(w.pos[0]);
    issues.push({ file, line: p.line, col: p.col, path: '', message: `YAML: ${w.message.split('\n')[0]}`, severity: 'warning' });
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
        issues.push({ file, line: p.line, col: p.col, path: formatPath(keys), message: '"__proto__" is not allowed as a key', severity: 'error' });
      }
    },
  });
  if (issues.some((i) => i.severity === 'error')) return { issues, positions };
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { issues: [...issues, { file, line: 1, col: 1, path: '', message: `YAML: ${(e as Error).message}`, severity: 'error' }], positions };
  }
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) {
    return { issues: [...issues, { file, line: 1, col: 1, path: '', message: 'the config must be a YAML mapping with at least `version: 1`', severity: 'error' }], positions };
  }
  const parsed = Config.safeParse(raw);
  if (!parsed.success) {
    for (const zi of parsed.error.issues) {
      for (const f of flatten(zi, raw)) {
        const pos = positions.locate(f.path, { key: f.code === 'unrecognized_keys' });
        issues.push({ file, line: pos?.line, col: pos?.col, path: formatPath(f.path), message: f.message, severity: 'error' });
      }
    }
    return { issues: sortIssues(issues), positions };
  }
  for (const f of checkSemantics(parsed.data)) {
    const pos = positions.locate(f.path, { key: f.atKey });
    issues.push({ file, line: pos?.line, col: pos?.col, path: formatPath(f.path), message: f.message, severity: f.severity });
  }
  const sorted = sortIssues(issues);
  return hasErrors(sorted) ? { issues: sorted, positions } : { config: parsed.data, issues: sorted, positions };
}

/** Read and load a config file: a regular file of at most LIMITS.config bytes (util/files.ts). */
export async function loadConfigFile(path: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readTextFile(path, { maxBytes: LIMITS.config });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const message = e instanceof FileRefusedError ? `not read: the file is ${e.reason}` : code === 'ENOENT' ? 'file not found' : `cannot read: ${(e as Error).message}`;
    return { issues: [{ file: path, path: '', message, severity: 'error' }] };
  }
  return loadConfigText(text, path);
}

function sortIssues(issues: Issue[]): Issue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
}
