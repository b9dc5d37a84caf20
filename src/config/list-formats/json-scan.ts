/**
 * A small pull scanner of JSON text (RFC 8259) that knows where it is: the reader walks the
 * document and asks for what it expects, keeping values it needs and skipping the rest, so a
 * big list is never held twice (no tree). Nesting is bounded (`MAX_DEPTH`); a syntax error
 * throws `JsonError` at its line and column (columns count UTF-16 units, as the plain list's do).
 */
import type { ListPlace } from './types.js';

export const MAX_DEPTH = 64;

export class JsonError extends Error {
  constructor(
    message: string,
    readonly at: ListPlace,
  ) {
    super(message);
    this.name = 'JsonError';
  }
}

export type JsonKind = 'object' | 'array' | 'string' | 'number' | 'true' | 'false' | 'null';

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

export class JsonScanner {
  pos = 0;
  private line = 1;
  private lineStart = 0;

  constructor(readonly s: string) {
    if (s.charCodeAt(0) === 0xfeff) this.pos = this.lineStart = 1;
  }

  place(): ListPlace {
    return { line: this.line, col: this.pos - this.lineStart + 1 };
  }

  fail(message: string, at: ListPlace = this.place()): never {
    throw new JsonError(message, at);
  }

  /** skip whitespace; the next character (or '' at the end) */
  peek(): string {
    const s = this.s;
    for (;;) {
      const c = s.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0d) this.pos++;
      else if (c === 0x0a) {
        this.pos++;
        this.line++;
        this.lineStart = this.pos;
      } else return this.pos < s.length ? s[this.pos]! : '';
    }
  }

  kind(): JsonKind {
    const c = this.peek();
    switch (c) {
      case '{':
        return 'object';
      case '[':
        return 'array';
      case '"':
        return 'string';
      case 't':
        return 'true';
      case 'f':
        return 'false';
      case 'n':
        return 'null';
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return 'number';
        return this.fail(
          c === '' ? 'unexpected end of the JSON text' : `unexpected ${JSON.stringify(c)}`,
        );
    }
  }

  private expect(c: string): void {
    if (this.peek() !== c)
      this.fail(
        this.pos >= this.s.length
          ? `unexpected end of the JSON text (expected ${JSON.stringify(c)})`
          : `expected ${JSON.stringify(c)}, found ${JSON.stringify(this.s[this.pos])}`,
      );
    this.pos++;
  }

  string(): string {
    this.expect('"');
    const s = this.s;
    let out = '';
    let from = this.pos;
    for (;;) {
      if (this.pos >= s.length) this.fail('unterminated string');
      const c = s.charCodeAt(this.pos);
      if (c === 0x22) {
        out += s.slice(from, this.pos++);
        return out;
      }
      if (c < 0x20) this.fail('a control character inside a string (write it escaped)');
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += s.slice(from, this.pos);
      const e = s[this.pos + 1] ?? '';
      if (e === 'u') {
        const hex = s.slice(this.pos + 2, this.pos + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('a bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 6;
      } else {
        const r = ESCAPES[e];
        if (r === undefined) this.fail(`a bad escape \\${e}`);
        out += r;
        this.pos += 2;
      }
      from = this.pos;
    }
  }

  number(): number {
    this.peek();
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.s);
    if (!m) this.fail('a bad number');
    this.pos += m[0].length;
    return Number(m[0]);
  }

  literal(): boolean | null {
    for (const [w, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (this.s.startsWith(w, this.pos)) {
        this.pos += w.length;
        return v;
      }
    }
    return this.fail(`unexpected ${JSON.stringify(this.s[this.pos])}`);
  }

  /** the members of an object: `member` reads (or skips) each value */
  object(depth: number, member: (key: string, at: ListPlace) => void): void {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.expect('{');
    if (this.peek() === '}') {
      this.pos++;
      return;
    }
    for (;;) {
      this.peek();
      const at = this.place();
      if (this.s[this.pos] !== '"') this.fail('expected a member name in double quotes');
      const key = this.string();
      this.expect(':');
      member(key, at);
      const c = this.peek();
      this.pos++;
      if (c === '}') return;
      if (c !== ',')
        this.fail(c === '' ? 'unexpected end of the JSON text' : 'expected , or }', this.back());
    }
  }

  /** the elements of an array: `element` reads (or skips) each */
  array(depth: number, element: (at: ListPlace) => void): void {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.expect('[');
    if (this.peek() === ']') {
      this.pos++;
      return;
    }
    for (;;) {
      this.peek();
      element(this.place());
      const c = this.peek();
      this.pos++;
      if (c === ']') return;
      if (c !== ',')
        this.fail(c === '' ? 'unexpected end of the JSON text' : 'expected , or ]', this.back());
    }
  }

  private back(): ListPlace {
    this.pos--;
    return this.place();
  }

  /** read past one value of any kind; whether it was "empty" (false, null, "", [], {}, 0) */
  skip(depth: number): boolean {
    let empty = true;
    switch (this.kind()) {
      case 'object':
        this.object(depth + 1, () => {
          empty = false;
          this.skip(depth + 1);
        });
        return empty;
      case 'array':
        this.array(depth + 1, () => {
          empty = false;
          this.skip(depth + 1);
        });
        return empty;
      case 'string':
        return this.string() === '';
      case 'number':
        return this.number() === 0;
      default:
        return this.literal() !== true;
    }
  }

  /** nothing but whitespace left */
  end(): void {
    if (this.peek() !== '') this.fail('text after the end of the JSON value');
  }
}
