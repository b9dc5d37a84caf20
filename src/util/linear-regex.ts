/**
 * Regular expressions in linear time, for `match.regex` (tested by the SCHED_FIFO placer on
 * every exec). V8's backtracking engine takes exponential time on patterns such as `(a+)+$`
 * against a long path, and the placer would spin at real-time priority; so rules are
 * compiled here instead, to a Thompson NFA simulated breadth-first (Pike VM without
 * captures): the work per tested path is at most (path length + 1) × program size, whatever
 * the pattern. Pure, no dependencies.
 *
 * The syntax is JavaScript's (no flags but `i`), minus what cannot run in linear time or is
 * ambiguous, which compileLinearRegex refuses with a message:
 * - supported: literals; `.`; classes `[a-z]`, `[^…]`, with `\d \D \w \W \s \S` (also outside
 *   classes); escapes `\t \n \r \v \f \0 \cX \xHH \uHHHH` and `\` before any character that
 *   is not a letter or digit; groups `( )`, `(?: )`, `(?<name> )`; alternation `|`;
 *   quantifiers `* + ? {n} {n,} {n,m}` and their lazy forms (laziness cannot change whether
 *   a path matches); anchors `^ $` (whole input: no `m` flag) and `\b \B`.
 * - refused: backreferences (`\1`, `\k<n>`), lookahead and lookbehind, octal escapes, `\`
 *   before a letter with no meaning (`\p`, `\a`: literal letters in legacy JavaScript), a `{`
 *   or `}` that is not a quantifier, a quantifier on an assertion, ranges with a class
 *   escape at one end (`[\d-z]`), and programs over MAX_PROGRAM instructions (counted
 *   repetition is expanded: `(a{100}){100}` is refused).
 * Semantics of what is accepted equal `RegExp.prototype.test` with the same source and flag
 * (non-unicode mode, UTF-16 code units; `i` folds with the specification's Canonicalize).
 * test/unit/util/linear-regex.test.ts checks this against V8 on generated patterns.
 */

export const MAX_PROGRAM = 1024;

export class LinearRegexError extends Error {
  constructor(
    message: string,
    readonly index: number,
  ) {
    super(message);
    this.name = 'LinearRegexError';
  }
}

export interface LinearRegex {
  readonly source: string;
  readonly ignoreCase: boolean;
  /** instructions of the compiled program: each tested character costs at most this many steps */
  readonly size: number;
  /** as RegExp.prototype.test: is there a match anywhere in `s` */
  test(s: string): boolean;
  /** thread steps taken by the last test() (for linearity checks; not a timing) */
  readonly lastSteps: number;
}

// ---- syntax tree --------------------------------------------------------------------------

type Range = readonly [lo: number, hi: number];
type Node =
  | { t: 'set'; ranges: Range[]; negate: boolean }
  | { t: 'assert'; kind: '^' | '$' | 'b' | 'B' }
  | { t: 'cat'; items: Node[] }
  | { t: 'alt'; items: Node[] }
  | { t: 'rep'; node: Node; min: number; max: number };

const DIGIT: Range[] = [[0x30, 0x39]];
const WORD: Range[] = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x5f, 0x5f],
  [0x61, 0x7a],
];
/** WhiteSpace and LineTerminator (ECMA-262 `\s`) */
const SPACE: Range[] = [
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
];
const LINE_TERMINATORS: Range[] = [
  [0x0a, 0x0a],
  [0x0d, 0x0d],
  [0x2028, 0x2029],
];

function complement(rs: readonly Range[]): Range[] {
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of [...rs].sort((a, b) => a[0] - b[0])) {
    if (lo > next) out.push([next, lo - 1]);
    next = Math.max(next, hi + 1);
  }
  if (next <= 0xffff) out.push([next, 0xffff]);
  return out;
}

const CLASS_ESCAPES: Record<string, Range[]> = {
  d: DIGIT,
  D: complement(DIGIT),
  w: WORD,
  W: complement(WORD),
  s: SPACE,
  S: complement(SPACE),
};
const CONTROL_ESCAPES: Record<string, number> = { t: 9, n: 10, v: 11, f: 12, r: 13 };
const isAlnum = (c: string) => /^[A-Za-z0-9]$/.test(c);

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  private fail(message: string, at = this.i): never {
    throw new LinearRegexError(message, at);
  }

  parse(): Node {
    const n = this.disjunction();
    if (this.i < this.s.length)
      this.fail(this.s[this.i] === ')' ? 'unmatched ")"' : `unexpected "${this.s[this.i]}"`);
    return n;
  }

  private disjunction(): Node {
    const items = [this.alternative()];
    while (this.s[this.i] === '|') {
      this.i++;
      items.push(this.alternative());
    }
    return items.length === 1 ? items[0]! : { t: 'alt', items };
  }

  private alternative(): Node {
    const items: Node[] = [];
    while (this.i < this.s.length && this.s[this.i] !== '|' && this.s[this.i] !== ')')
      items.push(this.term());
    return { t: 'cat', items };
  }

  private term(): Node {
    const start = this.i;
    const c = this.s[this.i]!;
    let atom: Node;
    if (c === '^' || c === '$') {
      this.i++;
      atom = { t: 'assert', kind: c };
    } else if (c === '\\' && (this.s[this.i + 1] === 'b' || this.s[this.i + 1] === 'B')) {
      atom = { t: 'assert', kind: this.s[this.i + 1] as 'b' | 'B' };
      this.i += 2;
    } else atom = this.atom();
    const q = this.quantifier();
    if (!q) return atom;
    if (atom.t === 'assert') this.fail('a quantifier on an assertion is not supported', start);
    return { t: 'rep', node: atom, min: q.min, max: q.max };
  }

  private quantifier(): { min: number; max: number } | undefined {
    const c = this.s[this.i];
    let q: { min: number; max: number } | undefined;
    if (c === '*') q = { min: 0, max: Infinity };
    else if (c === '+') q = { min: 1, max: Infinity };
    else if (c === '?') q = { min: 0, max: 1 };
    if (q) this.i++;
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i));
      if (!m) this.fail('"{" that is not a quantifier {n}, {n,} or {n,m}: write \\{');
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (max < min) this.fail(`numbers out of order in quantifier ${m[0]}`);
      if (min > MAX_PROGRAM) this.fail(`quantifier ${m[0]} is too large`);
      this.i += m[0].length;
      q = { min, max };
    }
    if (!q) return undefined;
    if (this.s[this.i] === '?') this.i++; // lazy: the same set of matching inputs
    const n = this.s[this.i];
    if (n === '*' || n === '+' || n === '?' || n === '{') this.fail('nothing to repeat');
    return q;
  }

  private atom(): Node {
    const c = this.s[this.i]!;
    switch (c) {
      case '.':
        this.i++;
        return { t: 'set', ranges: LINE_TERMINATORS, negate: true };
      case '(':
        return this.group();
      case '[':
        return this.charClass();
      case '\\':
        return this.atomEscape();
      case '*':
      case '+':
      case '?':
        return this.fail('nothing to repeat');
      case '{':
      case '}':
        return this.fail(`a literal "${c}" must be escaped: \\${c}`);
      case ']':
        return this.fail('a literal "]" must be escaped: \\]');
      default:
        this.i++;
        return lit(c.charCodeAt(0));
    }
  }

  private group(): Node {
    const start = this.i;
    this.i++;
    if (this.s[this.i] === '?') {
      const rest = this.s.slice(this.i);
      if (rest.startsWith('?:')) this.i += 2;
      else if (/^\?<[A-Za-z_$][A-Za-z0-9_$]*>/.test(rest)) this.i += rest.indexOf('>') + 1;
      else if (/^\?(=|!|<=|<!)/.test(rest))
        this.fail('lookahead and lookbehind are not supported (no linear-time matching)', start);
      else this.fail('invalid group', start);
    }
    const n = this.disjunction();
    if (this.s[this.i] !== ')') this.fail('unterminated group', start);
    this.i++;
    return n;
  }

  /** after `\`: a character value, or undefined when it is not one (caller decides) */
  private characterEscape(inClass: boolean): number | Range[] {
    const at = this.i;
    const c = this.s[this.i + 1];
    if (c === undefined) this.fail('"\\" at the end of the pattern');
    this.i += 2;
    if (CLASS_ESCAPES[c]) return CLASS_ESCAPES[c];
    if (c in CONTROL_ESCAPES) return CONTROL_ESCAPES[c]!;
    if (c === '0' && !/[0-9]/.test(this.s[this.i] ?? '')) return 0;
    if (/[0-9]/.test(c))
      this.fail(
        c === '0'
          ? 'octal escapes are not supported'
          : 'backreferences (and octal escapes) are not supported',
        at,
      );
    if (c === 'b' && inClass) return 8;
    if (c === 'c') {
      const l = this.s[this.i];
      if (!l || !/[A-Za-z]/.test(l)) this.fail('\\c needs a letter', at);
      this.i++;
      return l.charCodeAt(0) % 32;
    }
    if (c === 'x' || c === 'u') {
      const len = c === 'x' ? 2 : 4;
      const h = this.s.slice(this.i, this.i + len);
      if (!new RegExp(`^[0-9A-Fa-f]{${len}}$`).test(h))
        this.fail(`\\${c} needs ${len} hex digits`, at);
      this.i += len;
      return parseInt(h, 16);
    }
    if (c === 'k') this.fail('backreferences are not supported', at);
    if (isAlnum(c))
      this.fail(
        `"\\${c}" has no meaning (legacy JavaScript reads it as "${c}"): write ${c} or escape what you meant`,
        at,
      );
    return c.charCodeAt(0);
  }

  private atomEscape(): Node {
    const e = this.characterEscape(false);
    return typeof e === 'number' ? lit(e) : { t: 'set', ranges: e, negate: false };
  }

  private charClass(): Node {
    const start = this.i;
    this.i++;
    const negate = this.s[this.i] === '^';
    if (negate) this.i++;
    const ranges: Range[] = [];
    const classAtom = (): number | Range[] => {
      const c = this.s[this.i];
      if (c === undefined) this.fail('unterminated character class', start);
      if (c === '\\') return this.characterEscape(true);
      this.i++;
      return c.charCodeAt(0);
    };
    while (this.s[this.i] !== ']') {
      const at = this.i;
      const a = classAtom();
      if (
        this.s[this.i] === '-' &&
        this.s[this.i + 1] !== ']' &&
        this.s[this.i + 1] !== undefined
      ) {
        this.i++;
        const b = classAtom();
        if (typeof a !== 'number' || typeof b !== 'number')
          this.fail(
            'a range with a class escape at one end is ambiguous: escape the "-" as \\-',
            at,
          );
        if (a > b) this.fail('range out of order in character class', at);
        ranges.push([a, b]);
      } else if (typeof a === 'number') ranges.push([a, a]);
      else ranges.push(...a);
    }
    this.i++;
    return { t: 'set', ranges, negate };
  }
}

const lit = (c: number): Node => ({ t: 'set', ranges: [[c, c]], negate: false });

// ---- case folding (ECMA-262 Canonicalize, non-unicode mode) -------------------------------

function canonicalize(ch: number): number {
  const u = String.fromCharCode(ch).toUpperCase();
  if (u.length !== 1) return ch;
  const cu = u.charCodeAt(0);
  return ch >= 128 && cu < 128 ? ch : cu;
}

let canonTable: Uint16Array | undefined;
/** for each canonical value with more than one member: its members */
let equivalents: Map<number, number[]> | undefined;

function caseTables(): { canon: Uint16Array; equiv: Map<number, number[]> } {
  if (!canonTable || !equivalents) {
    const canon = new Uint16Array(0x10000);
    const groups = new Map<number, number[]>();
    for (let c = 0; c <= 0xffff; c++) {
      const k = canonicalize(c);
      canon[c] = k;
      const g = groups.get(k);
      if (g) g.push(c);
      else groups.set(k, [c]);
    }
    for (const [k, g] of groups) if (g.length < 2) groups.delete(k);
    canonTable = canon;
    equivalents = groups;
  }
  return { canon: canonTable, equiv: equivalents };
}

// ---- program ------------------------------------------------------------------------------

const enum Op {
  Char,
  Split,
  Jmp,
  Assert,
  Match,
}

interface Prog {
  op: Op[];
  /** Char: index into sets; Split/Jmp: first target; Assert: kind code */
  a: number[];
  /** Split: second target */
  b: number[];
  sets: ((c: number) => boolean)[];
}

function inRanges(rs: readonly Range[], c: number): boolean {
  for (const [lo, hi] of rs) if (c >= lo && c <= hi) return true;
  return false;
}

function setPredicate(n: Extract<Node, { t: 'set' }>, ignoreCase: boolean): (c: number) => boolean {
  const rs = n.ranges;
  if (!ignoreCase) return n.negate ? (c) => !inRanges(rs, c) : (c) => inRanges(rs, c);
  const { canon, equiv } = caseTables();
  // CharacterSetMatcher: some member a of the set has Canonicalize(a) = Canonicalize(c)
  const found = (c: number) => {
    const group = equiv.get(canon[c]!);
    if (!group) return inRanges(rs, c);
    for (const m of group) if (inRanges(rs, m)) return true;
    return false;
  };
  return n.negate ? (c) => !found(c) : found;
}

const ASSERT_CODE = { '^': 0, $: 1, b: 2, B: 3 } as const;

function compile(root: Node, ignoreCase: boolean): Prog {
  const p: Prog = { op: [], a: [], b: [], sets: [] };
  const emit = (op: Op, a = 0, b = 0) => {
    if (p.op.length >= MAX_PROGRAM)
      throw new LinearRegexError(
        `the pattern compiles to more than ${MAX_PROGRAM} instructions (large counted repetitions?)`,
        0,
      );
    p.op.push(op);
    p.a.push(a);
    p.b.push(b);
    return p.op.length - 1;
  };
  const gen = (n: Node): void => {
    switch (n.t) {
      case 'set':
        p.sets.push(setPredicate(n, ignoreCase));
        emit(Op.Char, p.sets.length - 1);
        return;
      case 'assert':
        emit(Op.Assert, ASSERT_CODE[n.kind]);
        return;
      case 'cat':
        for (const x of n.items) gen(x);
        return;
      case 'alt': {
        // split L1, next; L1: x1; jmp end; next: split L2, … ; last: xn; end:
        const jumps: number[] = [];
        n.items.forEach((x, k) => {
          if (k < n.items.length - 1) {
            const s = emit(Op.Split);
            p.a[s] = s + 1;
            gen(x);
            jumps.push(emit(Op.Jmp));
            p.b[s] = p.op.length;
          } else gen(x);
        });
        for (const j of jumps) p.a[j] = p.op.length;
        return;
      }
      case 'rep': {
        for (let k = 0; k < n.min; k++) gen(n.node);
        if (n.max === Infinity) {
          // L: split body, end; body; jmp L; end:
          const s = emit(Op.Split);
          p.a[s] = s + 1;
          gen(n.node);
          emit(Op.Jmp, s);
          p.b[s] = p.op.length;
        } else {
          const exits: number[] = [];
          for (let k = n.min; k < n.max; k++) {
            const s = emit(Op.Split);
            p.a[s] = s + 1;
            exits.push(s);
            gen(n.node);
          }
          for (const s of exits) p.b[s] = p.op.length;
        }
        return;
      }
    }
  };
  gen(root);
  emit(Op.Match);
  return p;
}

/**
 * A substring that every input the pattern matches contains: the longest run of literal
 * characters in sequence at the top level (outside alternation and optional or repeated
 * parts), or '' when there is none. A cheap prefilter before test() (config/domain-set.ts):
 * for a case-sensitive pattern, an input without it cannot match. Throws as compile does.
 */
export function requiredLiteral(source: string): string {
  let best = '';
  let run = '';
  const flush = () => {
    if (run.length > best.length) best = run;
    run = '';
  };
  const single = (n: Node): string | undefined =>
    n.t === 'set' && !n.negate && n.ranges.length === 1 && n.ranges[0]![0] === n.ranges[0]![1]
      ? String.fromCharCode(n.ranges[0]![0])
      : undefined;
  const walk = (n: Node): void => {
    if (n.t === 'cat') return n.items.forEach(walk);
    const c = single(n);
    if (c !== undefined) run += c;
    else {
      // `x+`, `x{2,}`: at least one x here, then the run ends
      const r = n.t === 'rep' && n.min >= 1 ? single(n.node) : undefined;
      if (r !== undefined) run += r;
      flush();
    }
  };
  walk(new Parser(source).parse());
  flush();
  return best;
}

const isWord = (c: number) =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || (c >= 0x61 && c <= 0x7a);

export function compileLinearRegex(
  source: string,
  opts: { ignoreCase?: boolean } = {},
): LinearRegex {
  const ignoreCase = opts.ignoreCase === true;
  const prog = compile(new Parser(source).parse(), ignoreCase);
  const n = prog.op.length;
  // two sparse sets of program counters (current and next step) and a stack for closures
  let cur = new Int32Array(n);
  let nxt = new Int32Array(n);
  let curMark = new Int32Array(n);
  let nxtMark = new Int32Array(n);
  // a push is an edge of the program (at most two per instruction) from an unmarked state
  const stack = new Int32Array(2 * n + 1);
  let generation = 0;
  let steps = 0;

  const regex: LinearRegex = {
    source,
    ignoreCase,
    size: n,
    get lastSteps() {
      return steps;
    },
    test(s: string): boolean {
      steps = 0;
      let nCur = 0;
      let nNxt = 0;
      const len = s.length;
      // follow epsilon edges from `pc` at position `i`, adding Char/Match states to the set;
      // each state enters a set at most once per position (generation marks)
      const add = (
        set: Int32Array,
        mark: Int32Array,
        count: number,
        pc0: number,
        i: number,
        gen: number,
      ): number => {
        let sp = 0;
        stack[sp++] = pc0;
        while (sp > 0) {
          const pc = stack[--sp]!;
          if (mark[pc] === gen) continue;
          mark[pc] = gen;
          steps++;
          switch (prog.op[pc]) {
            case Op.Jmp:
              if (mark[prog.a[pc]!] !== gen) stack[sp++] = prog.a[pc]!;
              break;
            case Op.Split:
              // the order does not change the answer (no captures, no priorities)
              if (mark[prog.b[pc]!] !== gen) stack[sp++] = prog.b[pc]!;
              if (mark[prog.a[pc]!] !== gen) stack[sp++] = prog.a[pc]!;
              break;
            case Op.Assert: {
              const k = prog.a[pc]!;
              let ok: boolean;
              if (k === 0) ok = i === 0;
              else if (k === 1) ok = i === len;
              else {
                const a = i > 0 && isWord(s.charCodeAt(i - 1));
                const b = i < len && isWord(s.charCodeAt(i));
                ok = (a !== b) === (k === 2);
              }
              if (ok && mark[pc + 1] !== gen) stack[sp++] = pc + 1;
              break;
            }
            default:
              set[count++] = pc;
          }
        }
        return count;
      };
      generation += 2;
      nCur = add(cur, curMark, 0, 0, 0, generation);
      for (let i = 0; ; i++) {
        for (let k = 0; k < nCur; k++) if (prog.op[cur[k]!] === Op.Match) return true;
        if (i >= len) return false;
        const c = s.charCodeAt(i);
        const g = generation + 1;
        nNxt = 0;
        for (let k = 0; k < nCur; k++) {
          const pc = cur[k]!;
          steps++;
          if (prog.op[pc] === Op.Char && prog.sets[prog.a[pc]!]!(c))
            nNxt = add(nxt, nxtMark, nNxt, pc + 1, i + 1, g);
        }
        // unanchored: a match may also start at i + 1
        nNxt = add(nxt, nxtMark, nNxt, 0, i + 1, g);
        const t = cur;
        cur = nxt;
        nxt = t;
        const m = curMark;
        curMark = nxtMark;
        nxtMark = m;
        nCur = nNxt;
        generation = g;
      }
    },
  };
  return regex;
}
