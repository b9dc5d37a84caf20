/**
 * Load a config: YAML with source positions → zod model → semantic checks. Every problem
 * is collected and reported at once as `file:line:col: path: message`. Never throws on
 * bad input; returns `config` only when there are no errors.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import type { Issue } from '../errors.js';
import { Config } from './schema.js';
import { SourcePositions, formatPath, type PathKey } from './positions.js';
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

/** Unions: report the one branch whose shape matched, else the union's own message. */
function flatten(issue: ZIssue, prefix: PathKey[] = []): { path: PathKey[]; message: string; code: string; keys?: string[] }[] {
  const path = [...prefix, ...(issue.path as PathKey[])];
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const shaped = issue.errors.filter((branch) => !branch.some((b) => b.path.length === 0 && (b.code === 'invalid_type' || b.code === 'unrecognized_keys' || b.code === 'invalid_value')));
    if (shaped.length > 0) {
      const fewest = Math.min(...shaped.map((b) => b.length));
      const best = shaped.filter((b) => b.length === fewest);
      if (best.length === 1) return best[0]!.flatMap((b) => flatten(b, path));
    }
  }
  if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => ({ path: [...path, k], message: `unknown field "${k}"`, code: issue.code, keys: [k] }));
  let message = issue.message;
  if (issue.code === 'invalid_type' && (issue as { input?: unknown }).input === undefined && /received undefined/.test(message)) message = `required field is missing (expected ${issue.expected})`;
  else message = message.replace(/^Invalid input: /, '');
  return [{ path, message, code: issue.code }];
}

export function loadConfigText(text: string, file: string): LoadResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const positions = new SourcePositions(doc, lc);
  const issues: Issue[] = [];
  for (const e of doc.errors) {
    const p = positions.at(e.pos[0]);
    issues.push({ file, line: p.line, col: p.col, path: '', message: `YAML: ${e.message.split('\n')[0]}`, severity: 'error' });
  }
  if (issues.length) return { issues, positions };
  for (const w of doc.warnings) {
    const p = positions.at(w.pos[0]);
    issues.push({ file, line: p.line, col: p.col, path: '', message: `YAML: ${w.message.split('\n')[0]}`, severity: 'warning' });
  }
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
      for (const f of flatten(zi)) {
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

export async function loadConfigFile(path: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { issues: [{ file: path, path: '', message: code === 'ENOENT' ? 'file not found' : `cannot read: ${(e as Error).message}`, severity: 'error' }] };
  }
  return loadConfigText(text, path);
}

function sortIssues(issues: Issue[]): Issue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
}
