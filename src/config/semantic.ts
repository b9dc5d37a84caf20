/**
 * Checks that relate several fields or objects. Pure: (config) → located findings.
 * Shape rules are in schema.ts; these run only once the shape is valid.
 */
import { cidrsOverlap as overlaps, parseCidr } from './cidr.js';
import {
  BAND_SIZE,
  isWgLike,
  MAX_TUNNEL_NAME,
  RESERVED_TARGETS,
  TUNNEL_NAME_RE,
  rangeOf,
  type AwgObfuscation,
  type Config,
  killSwitchOf,
} from './schema.js';
import { checkMtu, effectiveMtu } from './mtu.js';
import type { PathKey } from './positions.js';
import { checkHealth } from './semantic-health.js';
import { checkKeepalive } from './semantic-keepalive.js';
import { checkFleet } from './semantic-fleet.js';
import { parseTagString } from './tags.js';
import { parseInlineDestinations } from './lists.js';
import { matchedInPlace } from './schema-rules.js';
import { MAX_LIMITS, SHAPE_PORT_FIRST, SHAPE_PORT_LAST } from './rate.js';
import { checkListRefs } from './semantic-lists.js';
import { checkProfileMtu, checkProfiles } from './semantic-profiles.js';
import { profileObfuscation } from './profiles.js';

export interface Finding {
  path: PathKey[];
  message: string;
  severity: 'error' | 'warning';
  /** point at the key instead of the value (names of map entries) */
  atKey?: boolean;
}

export function checkSemantics(c: Config): Finding[] {
  const out: Finding[] = [];
  const err = (path: PathKey[], message: string, atKey = false) =>
    out.push({ path, message, severity: 'error', atKey });
  const warn = (path: PathKey[], message: string) =>
    out.push({ path, message, severity: 'warning' });
  const names = Object.keys(c.tunnels);

  for (const name of names) {
    if (!TUNNEL_NAME_RE.test(name))
      err(
        ['tunnels', name],
        `tunnel name "${name}" must start with a lowercase letter or digit and contain only a-z, 0-9, "_" and "-"`,
        true,
      );
    if (name.length > MAX_TUNNEL_NAME)
      err(
        ['tunnels', name],
        `tunnel name "${name}" is ${name.length} characters; the link "awg-${name}" must fit 15 (use at most ${MAX_TUNNEL_NAME})`,
        true,
      );
    if ((RESERVED_TARGETS as readonly string[]).includes(name))
      err(
        ['tunnels', name],
        `"${name}" is reserved as a rule target; choose another tunnel name`,
        true,
      );
  }

  // References
  const hasTunnel = (t: string) => Object.hasOwn(c.tunnels, t);
  const isTarget = (t: string) =>
    (RESERVED_TARGETS as readonly string[]).includes(t) || hasTunnel(t);
  if (c.default !== 'direct' && !hasTunnel(c.default)) {
    err(
      ['default'],
      c.default === 'block'
        ? '"block" is not allowed as default; enable the kill switch instead'
        : `unknown tunnel "${c.default}" (known: ${names.join(', ') || 'none'})`,
    );
  }
  const ruleNames = new Map<string, number>();
  c.rules.forEach((r, i) => {
    if (!isTarget(r.target))
      err(
        ['rules', i, 'target'],
        `unknown tunnel "${r.target}" (known: ${[...names, 'direct', 'block'].join(', ')})`,
      );
    if (r.name) {
      const prev = ruleNames.get(r.name);
      if (prev !== undefined)
        err(['rules', i, 'name'], `duplicate rule name "${r.name}" (also rules[${prev}])`);
      else ruleNames.set(r.name, i);
    }
    if (r.match && 'regex' in r.match) {
      try {
        new RegExp(r.match.regex);
      } catch (e) {
        err(
          ['rules', i, 'match', 'regex'],
          (e as Error).message.replace(
            /^Invalid regular expression: /,
            'invalid regular expression: ',
          ),
        );
      }
    }
    if (r.to) checkInlineDestinations(r.to, i, err);
    // a process sits in the cgroup of its first fitting program rule: a rule with both a
    // placing `match` and `to` hands its program's other traffic to the rules without
    // `match` and to `default`, never to a later program rule (docs/platform-linux.md)
    if (r.to && r.enabled && r.match !== undefined && !matchedInPlace(r.match)) {
      const j = c.rules.findIndex(
        (x, k) => k > i && x.enabled && x.match !== undefined && !matchedInPlace(x.match),
      );
      if (j >= 0)
        warn(
          ['rules', i, 'to'],
          `rules[${i}] has both \`match\` and \`to\`: the program's traffic to other destinations goes on to rules without \`match\` and to \`default\`, never to a later program rule such as rules[${j}]${c.rules[j]!.name ? ` (${c.rules[j]!.name})` : ''}; for "these destinations one way, the rest another", give the later choice as \`default\` or as a rule without \`match\``,
        );
    }
    if (
      (r.target === 'direct' || r.target === 'block') &&
      (r.fallback === 'failover' || r.fallback === 'allow-direct')
    ) {
      warn(
        ['rules', i, 'fallback'],
        `fallback "${r.fallback}" has no effect: target "${r.target}" is never down`,
      );
    }
    if (r.sticky && (r.target === 'direct' || r.target === 'block' || r.fallback === 'drop'))
      warn(
        ['rules', i, 'sticky'],
        r.fallback === 'drop'
          ? 'sticky has no effect: fallback "drop" sends nothing, tunnel up or not'
          : `sticky has no effect: target "${r.target}" is never down`,
      );
    const byNft = r.match !== undefined && matchedInPlace(r.match);
    if (byNft && r.fallback === 'failover' && r.enabled)
      warn(
        ['rules', i, 'fallback'],
        'a user/unit/cgroup rule does not move its processes: while its tunnel is down, only later user, unit, cgroup or destination-only rules can take them over (their executables are not matched), else the default route',
      );
    if (r.fallback === 'failover' && r.enabled) {
      const later = c.rules.slice(i + 1).some((o) => o.enabled);
      if (!later)
        warn(
          ['rules', i, 'fallback'],
          'failover with no later enabled rule behaves as "block" while the tunnel is down',
        );
    }
  });

  checkLimits(c, err);
  warnTcpOnlyRules(c, warn);
  checkFleet(c.fleet, names, err, warn);

  // Addresses: no overlap between tunnels; unique listen ports and table/fwmark overrides.
  const addrOwners: { tunnel: string; idx: number; cidr: string }[] = [];
  const ports = new Map<number, string>();
  const tables = new Map<number, string>();
  const marks = new Map<number, string>();
  for (const name of names) {
    const t = c.tunnels[name]!;
    if (t.fwmark !== undefined) {
      if ((t.fwmark & ~c.routing.fwmarkMask) !== 0)
        err(
          ['tunnels', name, 'fwmark'],
          `fwmark 0x${t.fwmark.toString(16)} lies outside the claimed mask 0x${c.routing.fwmarkMask.toString(16)} (routing.fwmarkMask)`,
        );
      const o = marks.get(t.fwmark);
      if (o) err(['tunnels', name, 'fwmark'], `fwmark ${t.fwmark} is also used by tunnel "${o}"`);
      marks.set(t.fwmark, name);
    }
    if (t.health) checkHealth(t.health, isWgLike(t), ['tunnels', name, 'health'], err);
    if (!isWgLike(t)) {
      if (t.type === 'http' && c.default === name)
        warn(
          ['default'],
          `HTTP CONNECT carries TCP only: UDP from unmatched apps is dropped${t.dns.length ? " (DNS to the tunnel's `dns` goes over TCP)" : ''}`,
        );
      if (t.type === 'socks5' && !t.udp && c.default === name)
        warn(
          ['default'],
          `this SOCKS5 tunnel has udp: false: UDP from unmatched apps is dropped${t.dns.length ? " (DNS to the tunnel's `dns` goes over TCP)" : ''}`,
        );
      continue;
    }
    t.addresses.forEach((a, idx) => {
      for (const o of addrOwners) {
        if (o.tunnel !== name && overlaps(a, o.cidr))
          err(
            ['tunnels', name, 'addresses', idx],
            `address ${a} overlaps ${o.cidr} of tunnel "${o.tunnel}"`,
          );
      }
      addrOwners.push({ tunnel: name, idx, cidr: a });
    });
    if (t.listenPort !== undefined) {
      const o = ports.get(t.listenPort);
      if (o)
        err(
          ['tunnels', name, 'listenPort'],
          `listen port ${t.listenPort} is also used by tunnel "${o}"`,
        );
      ports.set(t.listenPort, name);
    }
    if (t.table !== undefined) {
      const o = tables.get(t.table);
      if (o) err(['tunnels', name, 'table'], `table ${t.table} is also used by tunnel "${o}"`);
      if ([253, 254, 255, 0].includes(t.table))
        err(
          ['tunnels', name, 'table'],
          `table ${t.table} is a kernel table (main/local/default); pick another`,
        );
      // the band's last table holds the first route of hosts without a default route (model/unrouted.ts)
      if (t.table === c.routing.tableBase + BAND_SIZE - 1)
        err(
          ['tunnels', name, 'table'],
          `table ${t.table} is the last of the claimed band, which awg keeps for hosts without a default route; pick another`,
        );
      tables.set(t.table, name);
    }
    const has6 = t.addresses.some((a) => a.includes(':'));
    if (has6 && effectiveMtu(t) < 1280)
      err(
        ['tunnels', name, 'mtu'],
        `MTU ${effectiveMtu(t)} is below 1280, the IPv6 minimum, but the tunnel has IPv6 addresses`,
      );
    out.push(...checkMtu(t, ['tunnels', name]));
    checkKeepalive(t, ['tunnels', name], err);
    const pubs = new Map<string, number>();
    t.peers.forEach((p, pi) => {
      const prev = pubs.get(p.publicKey);
      if (prev !== undefined)
        err(
          ['tunnels', name, 'peers', pi, 'publicKey'],
          `duplicate peer public key (also peers[${prev}])`,
        );
      // the all-zero point: no handshake with it can succeed (the shared secret is zero)
      else if (/^A{43}=$/.test(p.publicKey))
        err(
          ['tunnels', name, 'peers', pi, 'publicKey'],
          'an all-zero public key is no peer: no handshake with it can succeed',
        );
      pubs.set(p.publicKey, pi);
    });
    // Two peers may not claim the same allowed IP prefix (cryptokey routing is a function).
    const seen = new Map<string, number>();
    t.peers.forEach((p, pi) =>
      p.allowedIPs.forEach((a, ai) => {
        const c = parseCidr(a)!;
        if (c.network !== c.addr)
          warn(
            ['tunnels', name, 'peers', pi, 'allowedIPs', ai],
            `${a} has host bits set; it means ${c.network}/${c.len}`,
          );
        const k = `${c.network}/${c.len}`;
        const prev = seen.get(k);
        if (prev !== undefined && prev !== pi)
          err(
            ['tunnels', name, 'peers', pi, 'allowedIPs', ai],
            `${a} is also an allowed IP of peers[${prev}]; each prefix belongs to one peer`,
          );
        seen.set(k, pi);
      }),
    );
    if (t.type === 'amneziawg') {
      checkObfuscation(t.obfuscation, ['tunnels', name, 'obfuscation'], out);
      if (t.profiles) {
        checkProfiles(
          t.obfuscation,
          t.profiles,
          ['tunnels', name, 'profiles'],
          checkObfuscation,
          out,
        );
        checkProfileMtu(t, t.profiles, ['tunnels', name, 'profiles'], out);
      }
    }
    if (t.type === 'amneziawg' && t.engine === 'kernel') {
      const set = [
        ...new Set(
          [
            t.obfuscation,
            ...(t.profiles ?? []).map((p) => profileObfuscation(t.obfuscation, p)),
          ].flatMap(obfuscationKeysSet),
        ),
      ];
      if (set.length)
        err(
          ['tunnels', name, 'engine'],
          `Linux's WireGuard module has no AmneziaWG obfuscation, but ${set.join(', ')} ${set.length > 1 ? 'are' : 'is'} set: use engine: embedded or {external: …amneziawg-go}, or remove them`,
        );
    }
  }

  // IPv6 policy
  if (c.ipv6 === 'tunnel') {
    const targets = new Set<string>([
      c.default,
      ...c.rules.filter((r) => r.enabled).map((r) => r.target),
    ]);
    for (const t of targets) {
      const tun = c.tunnels[t];
      if (tun && isWgLike(tun) && !tun.addresses.some((a) => a.includes(':'))) {
        warn(
          ['ipv6'],
          `ipv6: tunnel, but tunnel "${t}" has no IPv6 address: IPv6 from its apps will be blocked`,
        );
      }
    }
  }
  const ks = killSwitchOf(c);
  if (ks.enabled && names.length === 0)
    warn(
      ['killSwitch'],
      'kill switch is on but no tunnel is defined: all egress except loopback, DHCP and allowed LAN is blocked',
    );
  if (ks.enabled) {
    const lan = ks.allowLan ? ' (LAN destinations still pass)' : '';
    c.rules.forEach((r, i) => {
      if (!r.enabled) return;
      if (r.target === 'direct')
        warn(
          ['rules', i, 'target'],
          `the kill switch drops direct egress: this rule's apps are blocked, not sent direct${lan}`,
        );
      else if (r.fallback === 'allow-direct')
        warn(
          ['rules', i, 'fallback'],
          `the kill switch drops direct egress: while the tunnel is down this rule's apps are blocked, not sent direct${lan}`,
        );
    });
  }
  if (c.dns.system === 'default-tunnel' && c.default === 'direct')
    err(['dns', 'system'], '"default-tunnel" needs `default:` to name a tunnel');
  else if (
    c.dns.system === 'default-tunnel' &&
    hasTunnel(c.default) &&
    !c.tunnels[c.default]!.dns.length
  )
    warn(
      ['dns', 'system'],
      `"default-tunnel", but tunnel "${c.default}" lists no dns servers: the system resolver is left as it is`,
    );
  if (c.dns.leakProtection) {
    const withDns = names.filter((n) => (c.tunnels[n] as { dns?: string[] }).dns?.length);
    if (withDns.length === 0)
      err(
        ['dns', 'leakProtection'],
        'leak protection drops all DNS except to tunnel resolvers, but no tunnel lists `dns` servers',
      );
  }
  out.push(...checkListRefs(c));
  return out;
}

/**
 * Limits (docs/limits.md): none where everything is dropped; at most MAX_LIMITS rules with
 * one; no WireGuard listen port inside the ports limited connections are NATed to (the
 * ingress shaper classifies by destination port, so it would shape the tunnel's own UDP).
 */
/** `to.domains` and `to.cidrs` in the list grammar (config/lists.ts), one finding per bad value */
function checkInlineDestinations(
  to: NonNullable<Config['rules'][number]['to']>,
  i: number,
  err: (path: PathKey[], message: string) => void,
): void {
  for (const kind of ['domains', 'cidrs'] as const) {
    const values = to[kind];
    if (!values) continue;
    // one value at a time: each issue is located at its own element
    values.forEach((v, j) => {
      for (const issue of parseInlineDestinations([v], kind, '', '').issues)
        err(['rules', i, 'to', kind, j], issue.message);
    });
  }
}

/**
 * A rule through a proxy tunnel that cannot carry UDP (HTTP CONNECT, SOCKS5 without `udp:
 * true`): its UDP takes the rule's fallback (resources/firewall/render-proxy.ts), said once
 * per rule.
 */
function warnTcpOnlyRules(c: Config, warn: (path: PathKey[], message: string) => void): void {
  c.rules.forEach((r, i) => {
    const t = Object.hasOwn(c.tunnels, r.target) ? c.tunnels[r.target]! : undefined;
    if (!r.enabled || !t || isWgLike(t) || (t.type === 'socks5' && t.udp)) return;
    // fallback drop: the rule sends nothing at all
    if (r.fallback === 'drop') return;
    const what =
      t.type === 'http'
        ? 'HTTP CONNECT carries TCP only'
        : 'SOCKS5 without udp: true carries TCP only';
    const fallback = r.fallback ?? 'block';
    const udp =
      fallback === 'allow-direct'
        ? 'is sent directly (fallback allow-direct)'
        : `is dropped (fallback ${fallback})`;
    warn(
      ['rules', i, 'target'],
      `${what}: this rule's UDP ${udp}${t.dns.length ? "; its DNS to the tunnel's `dns` goes over TCP" : ''}`,
    );
  });
}

function checkLimits(c: Config, err: (path: PathKey[], message: string) => void): void {
  const proxy = (t: string) => Object.hasOwn(c.tunnels, t) && !isWgLike(c.tunnels[t]!);
  let count = 0;
  c.rules.forEach((r, i) => {
    if (!r.limit) return;
    if (r.match !== undefined && matchedInPlace(r.match))
      err(
        ['rules', i, 'limit'],
        "limits are not supported yet for user, unit and cgroup rules (their processes stay where they are, outside awg's cgroups)",
      );
    else if (r.target === 'block')
      err(['rules', i, 'limit'], 'a rule with target "block" sends nothing; remove its limit');
    else if (r.fallback === 'drop')
      err(['rules', i, 'limit'], 'a rule with fallback "drop" sends nothing; remove its limit');
    else if (r.match === undefined)
      err(
        ['rules', i, 'limit'],
        'a limit shapes the processes a rule places; this rule has no `match` (it names destinations only)',
      );
    else if (proxy(r.target))
      err(
        ['rules', i, 'limit'],
        `limits are not supported yet for rules through a proxy tunnel ("${r.target}" is ${c.tunnels[r.target]!.type})`,
      );
    if (r.enabled && ++count === MAX_LIMITS + 1)
      err(
        ['rules', i, 'limit'],
        `at most ${MAX_LIMITS} rules can have a limit (this is number ${count}); runtime limits (awg limit) share these ${MAX_LIMITS} classes`,
      );
  });
  const any =
    c.rules.some((r) => r.limit !== undefined) ||
    Object.values(c.tunnels).some((t) => t.limit !== undefined);
  if (!any) return;
  for (const [name, t] of Object.entries(c.tunnels)) {
    if (!isWgLike(t) && t.limit)
      err(['tunnels', name, 'limit'], `limits are not supported yet for ${t.type} tunnels`);
    if (!isWgLike(t) || t.listenPort === undefined) continue;
    if (t.listenPort >= SHAPE_PORT_FIRST && t.listenPort <= SHAPE_PORT_LAST)
      err(
        ['tunnels', name, 'listenPort'],
        `listen port ${t.listenPort} lies in ${SHAPE_PORT_FIRST}-${SHAPE_PORT_LAST}, the ports limited connections are given; with limits, pick a port outside it`,
      );
  }
}

/**
 * The obfuscation keys whose value differs from plain WireGuard (absent, 0, `""`, false, and
 * H1-H4 equal to the message types 1-4 are plain).
 */
export function obfuscationKeysSet(o: AwgObfuscation): string[] {
  return (Object.keys(o) as (keyof AwgObfuscation)[]).filter((k) => {
    const v = o[k];
    if (v === undefined || v === 0 || v === '' || v === false) return false;
    if (k === 'headerProtectionKey' || /^i[1-5]$/.test(k)) return true;
    if (typeof v === 'boolean' || typeof v === 'number') {
      const h = /^h([1-4])$/.exec(k);
      return !(h && v === Number(h[1]));
    }
    const r = rangeOf(v as Parameters<typeof rangeOf>[0]);
    const plain = /^h([1-4])$/.exec(k)?.[1] ?? '0';
    return !(r.min === Number(plain) && r.max === Number(plain));
  });
}

function checkObfuscation(o: AwgObfuscation, base: PathKey[], out: Finding[]): void {
  const err = (k: string, message: string) =>
    out.push({ path: [...base, k], message, severity: 'error' });
  // The limits amneziawg-go and the AmneziaWG kernel module put on these parameters: junk
  // needs its size bounds, each padded message must fit a datagram, and the receiver tells
  // messages apart by size and by header value, so neither may coincide
  // (docs/dataplane.md#amneziawg-parameters).
  if (o.jc !== undefined && o.jc > 0) {
    if (o.jmin === undefined || o.jmax === undefined) err('jc', 'jc > 0 needs jmin and jmax');
    else if (o.jmin > o.jmax) err('jmin', `jmin (${o.jmin}) must be <= jmax (${o.jmax})`);
  }
  const s = [o.s1 ?? 0, o.s2 ?? 0, o.s3 ?? 0, o.s4 ?? 0];
  const sizes = [148 + s[0]!, 92 + s[1]!, 64 + s[2]!, 32 + s[3]!];
  const sk = ['s1', 's2', 's3', 's4'];
  for (let i = 0; i < 4; i++) {
    if (sizes[i]! >= 65535)
      err(sk[i]!, `${sk[i]} makes the message ${sizes[i]} bytes; it must stay below 65535`);
  }
  // S1+148 == S2+92 makes initiation and response indistinguishable by size.
  if (sizes[0] === sizes[1])
    err(
      's2',
      `s1 + 148 equals s2 + 92 (${sizes[0]}): initiations and responses would have the same size; change s1 or s2`,
    );
  for (let i = 0; i < 4; i++)
    for (let j = i + 1; j < 4; j++) {
      if (i === 0 && j === 1) continue;
      if ((s[i]! || s[j]!) && sizes[i] === sizes[j])
        err(
          sk[j]!,
          `${sk[i]} and ${sk[j]} give equal message sizes (${sizes[i]}); receivers classify by size`,
        );
    }
  const hk = ['h1', 'h2', 'h3', 'h4'] as const;
  const hs = hk.map((k, i) => ({
    k,
    set: o[k] !== undefined,
    r: o[k] === undefined ? { min: i + 1, max: i + 1 } : rangeOf(o[k]!),
  }));
  for (const h of hs) if (h.r.min > h.r.max) err(h.k, `range ${h.r.min}-${h.r.max} is reversed`);
  const show = (h: (typeof hs)[number]) =>
    `${h.k} (${h.set ? '' : 'default '}${h.r.min === h.r.max ? h.r.min : `${h.r.min}-${h.r.max}`})`;
  for (let i = 0; i < 4; i++)
    for (let j = i + 1; j < 4; j++) {
      const a = hs[i]!;
      const b = hs[j]!;
      if (!(a.r.min <= b.r.max && b.r.min <= a.r.max)) continue;
      // report at the key the user wrote (a default cannot be the culprit)
      const at = b.set ? b : a;
      const other = at === b ? a : b;
      err(at.k, `${show(at)} overlaps ${show(other)}; headers must not overlap`);
    }
  for (const k of ['i1', 'i2', 'i3', 'i4', 'i5'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    const r = parseTagString(v);
    if (!r.ok) err(k, r.error);
  }
  // AWG 3.x header protection (docs/dataplane.md#header-protection; timings:
  // docs/dataplane.md#timing-ranges). The engine XORs headers with ChaCha20 whose nonce is the
  // first 12 bytes of each S prefix, and refuses the whole set when any S is shorter.
  if (o.headerProtectionKey !== undefined) {
    const why =
      'header protection takes its nonce from the first 12 bytes of the S prefix, so s1-s4 must each be at least 12';
    const absent = sk.filter((k) => o[k as 's1'] === undefined);
    if (absent.length > 0)
      err(
        'headerProtectionKey',
        `${absent.join(', ')} ${absent.length > 1 ? 'are' : 'is'} not set; ${why}`,
      );
    for (let i = 0; i < 4; i++)
      if (o[sk[i] as 's1'] !== undefined && s[i]! < 12) err(sk[i]!, `${sk[i]} is ${s[i]}; ${why}`);
  }
  const timing = [
    'rekeyAfterTime',
    'rekeyTimeout',
    'rejectAfterTime',
    'keepaliveTimeout',
    'maxHandshakeAttempts',
  ] as const;
  const ranges = [...timing, 'contentPaddingAddition'] as const;
  const bad = new Set<string>();
  for (const k of ranges) {
    if (o[k] === undefined) continue;
    const r = rangeOf(o[k]!);
    if (r.min > r.max) {
      err(k, `range ${r.min}-${r.max} is reversed`);
      bad.add(k);
    } else if (k !== 'contentPaddingAddition' && r.min === 0 && r.max > 0) {
      // 0 means "WireGuard default" only as the whole value; a draw of 0 s would spin the timer
      err(
        k,
        `range ${r.min}-${r.max} starts at 0; use 0 alone for the WireGuard default, or start at 1`,
      );
      bad.add(k);
    }
  }
  if (timing.some((k) => bad.has(k))) return;
  // the engine's effective range: unset ([0,0]) means the WireGuard constant (seconds)
  const DEF = { rekeyAfterTime: 120, rekeyTimeout: 5, rejectAfterTime: 180, keepaliveTimeout: 10 };
  const eff = (k: keyof typeof DEF) => {
    const r = o[k] === undefined ? { min: 0, max: 0 } : rangeOf(o[k]!);
    return r.max === 0 ? { min: DEF[k], max: DEF[k], set: false } : { ...r, set: true };
  };
  const rekey = eff('rekeyAfterTime');
  const reject = eff('rejectAfterTime');
  const ka = eff('keepaliveTimeout');
  const rt = eff('rekeyTimeout');
  const showT = (k: string, r: { min: number; max: number; set: boolean }) =>
    `${k} ${r.set ? '' : 'default '}${r.min === r.max ? r.min : `${r.min}-${r.max}`}`;
  // The initiator rekeys after a draw from rekeyAfterTime; keys die at the top of rejectAfterTime.
  if (reject.min <= rekey.max)
    err(
      reject.set ? 'rejectAfterTime' : 'rekeyAfterTime',
      `${showT('rejectAfterTime', reject)} must exceed ${showT('rekeyAfterTime', rekey)} (seconds; its lowest value above the other's highest), or sessions expire before they are rekeyed`,
    );
  // The receive-side last-minute rekey fires at rejectAfterTime - keepaliveTimeout - rekeyTimeout (lows).
  else if (reject.min <= ka.min + rt.min)
    err(
      reject.set ? 'rejectAfterTime' : ka.set ? 'keepaliveTimeout' : 'rekeyTimeout',
      `${showT('rejectAfterTime', reject)} must exceed ${showT('keepaliveTimeout', ka)} + ${showT('rekeyTimeout', rt)} (seconds), or every received packet triggers a rekey`,
    );
}
