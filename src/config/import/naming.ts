/**
 * The tunnel name of an import: from `--name` or the file's base name, checked against the
 * model's rules for tunnel names, with a valid suggestion when the given one is not. Pure.
 */
import type { Issue } from '../../errors.js';
import { MAX_TUNNEL_NAME, RESERVED_TARGETS, TUNNEL_NAME_RE } from '../schema.js';
import type { Path } from './locations.js';

/** `wg0.conf` → `wg0`; directories and any extension are dropped. */
export function nameFromFile(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? '';
  return base.replace(/\.[^.]*$/, '');
}

/**
 * A valid tunnel name close to `s`: lower-cased, runs of other characters turned into "-",
 * leading separators dropped, cut to MAX_TUNNEL_NAME, trailing separators dropped.
 * Deterministic; undefined when nothing valid remains (empty or reserved).
 */
export function suggestName(s: string): string | undefined {
  const n = s
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, MAX_TUNNEL_NAME)
    .replace(/[-_]+$/, '');
  return tunnelNameProblem(n) === undefined ? n : undefined;
}

/** Why `n` is not a valid tunnel name, or undefined when it is one. */
export function tunnelNameProblem(n: string): string | undefined {
  if (n === '') return 'it is empty';
  if (n.length > MAX_TUNNEL_NAME)
    return `at most ${MAX_TUNNEL_NAME} characters, as the link awg-<name> has 15 at most`;
  if (!TUNNEL_NAME_RE.test(n))
    return 'lower-case letters, digits, "_" and "-", starting with a letter or digit';
  if ((RESERVED_TARGETS as readonly string[]).includes(n)) return `"${n}" is reserved`;
  return undefined;
}

/** stands in for the tunnel name in results that carry a name error */
const PLACEHOLDER_NAME = 'wg0';

export interface NameChoice {
  name: string;
  /** what to report about the choice, if anything */
  issue?: { message: string; severity: Issue['severity']; path: Path };
}

/**
 * The tunnel name: `--name` when given (an invalid one is an error, with a suggestion);
 * else the file's base name; else, when that is not a valid name, one derived from it by
 * `suggestName` (a warning says which); else an error asking for --name.
 */
export function chooseTunnelName(file: string, requested?: string): NameChoice {
  if (requested !== undefined) {
    const problem = tunnelNameProblem(requested);
    if (problem === undefined) return { name: requested };
    const s = suggestName(requested);
    return {
      name: s ?? PLACEHOLDER_NAME,
      issue: {
        severity: 'error',
        path: ['tunnels', requested],
        message: `tunnel name "${requested}" (from --name) is invalid: ${problem}; ${s !== undefined ? `use --name ${s}` : 'choose another with --name'}`,
      },
    };
  }
  const base = nameFromFile(file);
  const problem = tunnelNameProblem(base);
  if (problem === undefined) return { name: base };
  const s = suggestName(base);
  if (s === undefined)
    return {
      name: PLACEHOLDER_NAME,
      issue: {
        severity: 'error',
        path: ['tunnels', base],
        message: `the file name "${base}" is not a valid tunnel name (${problem}) and gives none; name the tunnel with --name`,
      },
    };
  return {
    name: s,
    issue: {
      severity: 'warning',
      path: ['tunnels', s],
      message: `the file name "${base}" is not a valid tunnel name (${problem}); imported as tunnel "${s}", choose another with --name`,
    },
  };
}
