/**
 * The canonical comparison form of an nft table: what the renderer's text and a listing of
 * the loaded table are both reduced to, so that drift and a load's read-back are a plain string
 * comparison. Pure.
 *
 * nft prints a protocol number through getprotobynumber(3): by the name /etc/protocols gives it
 * (`tcp`, `ipv6-icmp`), or as the bare number on a host without that file (no `netbase`:
 * minimal and container images), `meta l4proto { 6, 17 }` for `{ tcp, udp }`. Ports are printed
 * as numbers (nft resolves /etc/services only under `-S`), and the other symbols the renderer
 * writes (`icmpv6 type`, `fib … type`, `ct state`, `reject with icmpx`) come from tables built
 * into nft. So protocol values are the one part of a listing that depends on the host's files:
 * in the selectors that carry one (`meta l4proto`, `ip protocol`, `ip6 nexthdr`,
 * `ct [original|reply] protocol`), single, negated, in an anonymous set or as a map's keys,
 * each is written as nft's own keyword for that number when it has one (`tcp`, `udp`, `icmpv6`,
 * …: they parse without /etc/protocols, and are what the renderer writes) and as the number
 * otherwise. The canonical text therefore also loads on a host without the file.
 */

/** the protocols nft's grammar names by keyword (parser_bison.y): they load without /etc/protocols */
const KEYWORDS: ReadonlyMap<number, string> = new Map([
  [1, 'icmp'],
  [2, 'igmp'],
  [6, 'tcp'],
  [17, 'udp'],
  [33, 'dccp'],
  [50, 'esp'],
  [51, 'ah'],
  [58, 'icmpv6'],
  [108, 'comp'],
  [132, 'sctp'],
  [136, 'udplite'],
]);

/**
 * The official names of netbase's /etc/protocols (Debian netbase 6.4; musl's built-in table has
 * the same names): what nft prints where the file exists. Aliases are never printed.
 */
const NETBASE =
  'ip 0 icmp 1 igmp 2 ggp 3 ipencap 4 st 5 tcp 6 egp 8 igp 9 pup 12 udp 17 hmp 20 xns-idp 22 ' +
  'rdp 27 iso-tp4 29 dccp 33 xtp 36 ddp 37 idpr-cmtp 38 ipv6 41 ipv6-route 43 ipv6-frag 44 ' +
  'idrp 45 rsvp 46 gre 47 esp 50 ah 51 skip 57 ipv6-icmp 58 ipv6-nonxt 59 ipv6-opts 60 ' +
  'rspf 73 vmtp 81 eigrp 88 ospf 89 ax.25 93 ipip 94 etherip 97 encap 98 pim 103 ipcomp 108 ' +
  'vrrp 112 l2tp 115 isis 124 sctp 132 fc 133 mobility-header 135 udplite 136 mpls-in-ip 137 ' +
  'manet 138 hip 139 shim6 140 wesp 141 rohc 142 ethernet 143';

const NUMBER_OF: ReadonlyMap<string, number> = (() => {
  const m = new Map<string, number>();
  const w = NETBASE.split(' ');
  for (let i = 0; i < w.length; i += 2) m.set(w[i]!, Number(w[i + 1]));
  for (const [n, k] of KEYWORDS) m.set(k, n);
  return m;
})();

/** one protocol value (`6`, `tcp`, `ipv6-icmp`) in canonical form; anything else as it is */
export function canonicalProtocol(value: string): string {
  const n = /^\d{1,3}$/.test(value) ? Number(value) : NUMBER_OF.get(value);
  if (n === undefined || n > 255) return value;
  return KEYWORDS.get(n) ?? String(n);
}

/** a selector with a protocol value, its operator, and the value: one word or a `{ … }` set/map */
const PROTOCOL_MATCH =
  /(^| )(meta l4proto|ip protocol|ip6 nexthdr|ct (?:original |reply )?protocol)( !=| ==)?( vmap| map)? (\{ [^{}]* \}|[^ {]+)/g;
const CHEAP = /l4proto|protocol|nexthdr/;

/** one statement with the protocol values of its selectors in canonical form */
export function canonicalProtocols(statement: string): string {
  if (!CHEAP.test(statement)) return statement;
  return statement.replace(
    PROTOCOL_MATCH,
    (_m, lead: string, sel: string, op = '', map = '', v: string) => {
      const value = v.startsWith('{ ')
        ? `{ ${v
            .slice(2, -2)
            .split(', ')
            // a map's element is `key : value`: only its key is a protocol
            .map((e) => {
              const at = e.indexOf(' : ');
              return at < 0
                ? canonicalProtocol(e)
                : canonicalProtocol(e.slice(0, at)) + e.slice(at);
            })
            .join(', ')} }`
        : canonicalProtocol(v);
      return `${lead}${sel}${op}${map} ${value}`;
    },
  );
}

/**
 * Canonical comparison form of a table listing: counters zeroed away, handles dropped,
 * wrapped set elements joined, indentation and blank lines removed, protocol values in one
 * form (above). Also loadable by nft.
 */
export function normaliseRuleset(text: string): string {
  const out: string[] = [];
  // the lines of one statement nft wrapped (each but the last ends with a comma); a set's
  // elements are tens of thousands of such lines: kept as parts, never one growing string
  // whose every test (endsWith) would copy it again
  let parts: string[] = [];
  let elements = false;
  for (const raw of text.split('\n')) {
    let l = raw.replace(/\s+# handle \d+\s*$/, '').trim();
    if (!l) continue;
    l = l.replace(/counter packets \d+ bytes \d+/g, 'counter');
    if (parts.length === 0) elements = l.startsWith('elements = {');
    parts.push(l);
    if (l.endsWith(',')) continue;
    // set contents are not the ruleset: static sets are compared by the digest in their
    // comment, learned and cgroup sets are filled at run time (set-elements.ts)
    if (!elements) out.push(canonicalProtocols(parts.join(' ')));
    parts = [];
  }
  if (parts.length) out.push(canonicalProtocols(parts.join(' ')));
  return out.join('\n') + '\n';
}
