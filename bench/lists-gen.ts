/**
 * Deterministic destination lists shaped like the ones users load (Step 21):
 *
 * - `registryList(n)`: a registry mirror (the Russian blocking registry's domain dumps, ≈ 600,000
 *   names): mostly second-level names (≈ 72 %), some third-level (≈ 22 %, `www.`, `m.`, mirrors
 *   `mirror12.`), a few deeper; `.ru` and `.com` dominate, then `.net .org .xn--p1ai .info .top
 *   .online .site .su .ua .xyz …`; labels of letters with digits and hyphens (bookmaker and
 *   casino mirrors: `vulkan-777.com`, `1xbet-mirror42.top`), some punycode (`xn--…`); ≈ 2 %
 *   wildcards, ≈ 3 % names under another entry (covered) or repeated, a few comments.
 * - `refilterList()`: Re:filter's shape, one list of ≈ 40,000 domains (`.com`-heavy, fewer
 *   `.ru`) and ≈ 40,000 IPv4 prefixes (half /24, a third hosts, the rest /16–/23).
 *
 * Same seed, same text: the bench and the tests see the same list every run.
 */

/** xorshift32 */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

type Weighted = readonly (readonly [string, number])[];

function picker(ws: Weighted): (r: () => number) => string {
  const total = ws.reduce((a, [, w]) => a + w, 0);
  return (r) => {
    let k = r() % total;
    for (const [v, w] of ws) if ((k -= w) < 0) return v;
    return ws[0]![0];
  };
}

const REGISTRY_TLDS = picker([
  ['ru', 34],
  ['com', 30],
  ['net', 5],
  ['org', 4],
  ['xn--p1ai', 3],
  ['info', 3],
  ['top', 3],
  ['online', 2],
  ['site', 2],
  ['su', 2],
  ['ua', 2],
  ['xyz', 2],
  ['club', 1],
  ['io', 1],
  ['biz', 1],
  ['pro', 1],
  ['me', 1],
  ['com.ua', 1],
  ['org.ru', 1],
  ['co', 1],
]);

const REFILTER_TLDS = picker([
  ['com', 45],
  ['net', 10],
  ['org', 8],
  ['io', 6],
  ['ru', 6],
  ['me', 3],
  ['tv', 3],
  ['info', 3],
  ['co', 3],
  ['app', 2],
  ['xyz', 2],
  ['to', 2],
  ['cc', 2],
  ['uk', 1],
  ['de', 1],
  ['ai', 1],
  ['dev', 1],
  ['xn--p1ai', 1],
]);

const SYLLABLES = [
  'ka',
  'zi',
  'no',
  'vul',
  'kan',
  'bet',
  'win',
  'slot',
  'ra',
  'me',
  'lo',
  'to',
  'stav',
  'ka',
  'pin',
  'up',
  'joy',
  'fan',
  'club',
  'play',
  'go',
  'ld',
  'ru',
  'mir',
  'film',
  'kino',
  'tv',
  'book',
  'mak',
  'ker',
  'lib',
  'tor',
  'rent',
  'hub',
  'pro',
  'x',
  'max',
  'star',
  'lux',
  'gam',
  'ble',
  'vip',
  'top',
  'best',
  'on',
  'line',
  'shop',
  'pharm',
  'apt',
  'eka',
  'zona',
  'sport',
];
const SUBS = picker([
  ['www', 40],
  ['m', 12],
  ['mirror', 10],
  ['app', 5],
  ['api', 4],
  ['cdn', 4],
  ['static', 3],
  ['mobile', 3],
  ['ru', 3],
  ['en', 2],
  ['login', 2],
  ['vk', 1],
]);

/** a second-level label: 1–4 syllables, sometimes digits, a hyphen, or punycode */
function label(r: () => number): string {
  const k = r() % 100;
  if (k < 3) {
    let s = 'xn--';
    const n = 5 + (r() % 10);
    for (let i = 0; i < n; i++) s += 'abcdefghijklmnopqrstuvwxyz0123456789'[r() % 36];
    return s;
  }
  let s = '';
  const parts = 2 + (r() % 3);
  const pick = () => SYLLABLES[r() % SYLLABLES.length]!;
  for (let i = 0; i < parts; i++) {
    if (i > 0 && r() % 6 === 0) s += '-';
    s += pick();
  }
  // two syllables alone collide too often for a 600,000-name list
  if (parts === 2 && r() % 2) s += pick();
  const d = r() % 10;
  if (d < 4) s += String(r() % 1000);
  else if (d === 4) s = `${r() % 100}${s}`;
  return s;
}

function registryName(r: () => number): string {
  const base = `${label(r)}.${REGISTRY_TLDS(r)}`;
  const depth = r() % 100;
  if (depth < 72) return base;
  const sub = SUBS(r);
  const s1 = sub === 'mirror' ? `mirror${r() % 100}` : sub;
  if (depth < 94) return `${s1}.${base}`;
  return `${label(r)}.${s1}.${base}`;
}

/** `n` entry lines (plus a few comment lines) of a registry-shaped domain list */
export function registryList(n: number, seed = 21): string {
  const r = rng(seed);
  const lines: string[] = ['# synthetic registry mirror (bench/lists-gen.ts)'];
  const recent: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 10_000 === 0) lines.push(`# part ${i / 10_000}`);
    const k = r() % 100;
    let s: string;
    if (k < 2) s = `*.${registryName(r)}`;
    else if (k < 5 && recent.length) {
      // a name below an earlier entry (covered) or the entry again
      const prev = recent[r() % recent.length]!;
      s = r() % 2 ? `www.${prev}` : prev;
    } else s = registryName(r);
    lines.push(s);
    if (!s.startsWith('*') && r() % 8 === 0) {
      if (recent.length < 64) recent.push(s);
      else recent[r() % 64] = s;
    }
  }
  return lines.join('\n') + '\n';
}

/** Re:filter's shape: `domains` names and `cidrs` IPv4 prefixes, interleaved in blocks */
export function refilterList(domains = 40_000, cidrs = 40_000, seed = 22): string {
  const r = rng(seed);
  const lines: string[] = ['# synthetic Re:filter-shaped list (bench/lists-gen.ts)'];
  const name = (): string => {
    const base = `${label(r)}.${REFILTER_TLDS(r)}`;
    const d = r() % 100;
    return d < 65 ? base : d < 92 ? `${SUBS(r)}.${base}` : `${label(r)}.${SUBS(r)}.${base}`;
  };
  const prefix = (): string => {
    const p = r() % 100;
    const len = p < 50 ? 24 : p < 83 ? 32 : 16 + (r() % 8);
    const a = (1 + (r() % 222)) * 2 ** 24 + (r() % 2 ** 24);
    const net = Math.floor(a / 2 ** (32 - len)) * 2 ** (32 - len);
    const ip = `${Math.floor(net / 2 ** 24)}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}`;
    return len === 32 ? ip : `${ip}/${len}`;
  };
  let d = 0;
  let c = 0;
  while (d < domains || c < cidrs) {
    for (let i = 0; i < 1000 && d < domains; i++, d++) lines.push(name());
    for (let i = 0; i < 1000 && c < cidrs; i++, c++) lines.push(prefix());
  }
  return lines.join('\n') + '\n';
}
