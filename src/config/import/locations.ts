/**
 * Config paths and INI locations for `awg import`: a path into the config model, the INI
 * line/column it came from, the comments that go above it, and the lookup that finds the
 * nearest located path for a finding. Pure.
 */
export type Path = (string | number)[];
export interface Loc {
  line: number;
  col: number;
}
export interface Note {
  path: Path;
  before: string[];
  trailing?: string;
}

export function pathString(p: Path): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s === '' ? k : `.${k}`;
  return s;
}

/** The nearest recorded location for a config path (longest known prefix). */
export function locate(locs: Map<string, Loc>, p: string): Loc | undefined {
  for (let q = p; q !== ''; q = q.replace(/(\.[^.[]*|\[\d+\])$/, '')) {
    const l = locs.get(q);
    if (l) return l;
    if (!/[.[]/.test(q)) break;
  }
  return undefined;
}
