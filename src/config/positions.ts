/**
 * Map document paths to source positions in a parsed YAML document. Pure. Each mapping's
 * keys are indexed on first use, so locating n paths costs O(n · depth), not O(n · keys):
 * a file with tens of thousands of unknown keys is still reported at once
 * (bench/RESULTS.md "error positions").
 */
import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Document,
  type Node,
  type Pair,
  type YAMLMap,
} from 'yaml';

export type PathKey = string | number;

export interface Pos {
  line: number;
  col: number;
}

export class SourcePositions {
  /** per mapping node: key text → its first pair */
  private readonly index = new WeakMap<YAMLMap, Map<string, Pair>>();

  constructor(
    private readonly doc: Document | undefined,
    private readonly lc: LineCounter,
  ) {}

  at(offset: number): Pos {
    const p = this.lc.linePos(offset);
    // offset 0 of a file with a BOM lies before line 1 (countLines)
    return { line: Math.max(1, p.line), col: Math.max(1, p.col) };
  }

  /**
   * Position of the node at `path`; `key: true` points at the key of the last segment
   * (for unknown-key errors). Falls back to the deepest existing ancestor.
   */
  locate(path: readonly PathKey[], opts: { key?: boolean | undefined } = {}): Pos | undefined {
    if (!this.doc) return undefined;
    let node: unknown = this.doc.contents;
    let best: Node | undefined = (node as Node) ?? undefined;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = this.pairs(node).get(String(seg));
        if (!pair) break;
        if (last && opts.key && pair.key && (pair.key as Node).range)
          return this.at((pair.key as Node).range![0]);
        node = pair.value;
        if (pair.value && (pair.value as Node).range) best = pair.value as Node;
        else if (pair.key && (pair.key as Node).range) best = pair.key as Node;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (!item) break;
        node = item;
        if ((item as Node).range) best = item as Node;
      } else break;
    }
    return best?.range ? this.at(best.range[0]) : undefined;
  }

  private pairs(map: YAMLMap): Map<string, Pair> {
    let m = this.index.get(map);
    if (!m) {
      m = new Map();
      for (const p of map.items) {
        if (!isPair(p)) continue;
        const k = keyString(p.key);
        if (k !== undefined && !m.has(k)) m.set(k, p as Pair);
      }
      this.index.set(map, m);
    }
    return m;
  }
}

function keyString(k: unknown): string | undefined {
  if (isScalar(k)) return String(k.value);
  return typeof k === 'string' ? k : undefined;
}

/**
 * Refills `lc` with the line starts of `text` (after LF, CRLF or a lone CR; line 1 after a
 * byte-order mark). yaml's own
 * counter records only the line breaks its lexer emits as tokens; inside a plain scalar that
 * error recovery swallows (`type: x\n  key: …` after a broken flow collection) it misses
 * them, and later errors were placed on an earlier line, past its end.
 */
export function countLines(lc: LineCounter, text: string): void {
  // an editor does not count a byte-order mark as a column
  const starts = [text.startsWith('\uFEFF') ? 1 : 0];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) starts.push(i + 1);
  }
  lc.lineStarts.splice(0, lc.lineStarts.length, ...starts);
}

/**
 * An issue's `line` and `col` from a position that may be missing: the keys are left out
 * rather than set to undefined (issues are serialised; errors.ts Issue).
 */
export function lineCol(p: Partial<Pos> | undefined): Partial<Pos> {
  return {
    ...(p?.line !== undefined ? { line: p.line } : {}),
    ...(p?.col !== undefined ? { col: p.col } : {}),
  };
}

export function formatPath(path: readonly PathKey[]): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else s += s ? `.${p}` : p;
  }
  return s;
}
