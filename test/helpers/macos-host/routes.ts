/** The model's routing table as `netstat -rn`, `route -n get` and `route -n add|change|delete` see it. */
import ipaddr from 'ipaddr.js';
import type { ExecResult } from '../../../src/util/exec.js';
import type { MacHost } from './model.js';
import { fail, ok, type MRoute } from './state.js';

/** canonical network CIDR of `a/len` */
function canon(cidr: string): string {
  const [a, l] = ipaddr.parseCIDR(cidr);
  const bytes = a.toByteArray();
  for (let i = 0; i < bytes.length * 8; i++) if (i >= l) bytes[i >> 3]! &= ~(0x80 >> (i & 7));
  return `${ipaddr.fromByteArray(bytes).toString()}/${l}`;
}

function inPrefix(addr: string, cidr: string): boolean {
  const a = ipaddr.parse(addr);
  const [net, len] = ipaddr.parseCIDR(cidr);
  return a.kind() === net.kind() && a.match(net, len);
}

/**
 * netstat's destination column: `default`; a host route (flag H) without its length; IPv4
 * networks as network_cmds netstat.tproj/route.c `netname()` prints them — trailing zero
 * octets dropped down to the address's classful mask, and `/len` only when the mask is not
 * that classful mask (`0/1`, `128.0/1`, `127`, `169.254`, `192.168.1`, `224.0.0/4`,
 * `192.168.1.1/32`, `10.66/16`).
 */
function netstatDst(r: MRoute): string {
  const [a, l] = r.dst.split('/') as [string, string];
  const len = Number(l);
  if (len === 0) return 'default';
  if (r.flags.includes('H')) return a;
  if (r.family === 6) return `${a}/${l}`;
  const o = a.split('.').map(Number);
  // forgemask(): class A /8, B /16, everything else (C and D) /24
  const classful = o[0]! < 128 ? 8 : o[0]! < 192 ? 16 : 24;
  let keep = 4;
  if (classful <= 8 && o[1] === 0 && o[2] === 0 && o[3] === 0) keep = 1;
  else if (classful <= 16 && o[2] === 0 && o[3] === 0) keep = 2;
  else if (o[3] === 0) keep = 3;
  return `${o.slice(0, keep).join('.')}${len === classful ? '' : `/${len}`}`;
}

export function netstat(host: MacHost, args: string[]): ExecResult {
  // 0: both families
  const only = new Map<string, 0 | 4 | 6>([
    ['-rn', 0],
    ['-rn -f inet', 4],
    ['-rn -f inet6', 6],
  ]).get(args.join(' '));
  if (only === undefined) throw new Error(`macos-host: netstat ${args.join(' ')}`);
  const row = (r: MRoute) =>
    `${netstatDst(r).padEnd(18)} ${r.gateway.padEnd(18)} ${r.flags.padEnd(12)} ${r.netif.padStart(5)}${r.expire === undefined ? '' : ` ${r.expire.padStart(6)}`}`;
  // the radix tree's walk: by destination, the more specific mask first
  const key = (r: MRoute) => {
    const [a, l] = r.dst.split('/') as [string, string];
    return [...ipaddr.parse(a).toByteArray(), 255 - Number(l)];
  };
  const order = (a: MRoute, b: MRoute) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
    return 0;
  };
  const byFamily = (f: 4 | 6) => host.routes.filter((r) => r.family === f).sort(order);
  const v4 = byFamily(4).map(row);
  const v6 = byFamily(6).map(
    (r) =>
      `${netstatDst(r).padEnd(39)} ${r.gateway.padEnd(39)} ${r.flags.padEnd(12)} ${r.netif.padStart(5)}`,
  );
  const sec4 = [
    'Internet:',
    'Destination        Gateway            Flags        Netif Expire',
    ...v4,
    '',
  ];
  const sec6 = [
    'Internet6:',
    'Destination                             Gateway                                 Flags         Netif Expire',
    ...v6,
    '',
  ];
  return ok(
    ['Routing tables', '', ...(only === 6 ? [] : sec4), ...(only === 4 ? [] : sec6)].join('\n'),
  );
}

/**
 * The route a socket's packet to `dst` takes: unbound (unscoped), or bound to `ifscope`
 * (IP_BOUND_IF), after xnu bsd/net/route.c rt_lookup_common: the unscoped longest match is
 * kept for a bound socket only when it leaves by that interface; otherwise the longest match
 * among the routes scoped to it; the unscoped match still wins over a scoped default, and an
 * unscoped host route over a scoped net route; last, the unscoped default if it leaves by
 * that interface. Undefined: no route (the connect fails, EHOSTUNREACH). Not modelled: the
 * primary interface's implicit scope of unbound lookups, loopback's exceptions, link-layer
 * (ARP/ND, flag L) entries (as `route get` here).
 */
export function lookupRoute(host: MacHost, dst: string, ifscope?: string): MRoute | undefined {
  const family = ipaddr.parse(dst).kind() === 'ipv4' ? 4 : 6;
  const len = (r: MRoute) => Number(r.dst.split('/')[1]);
  const longest = (rs: MRoute[]) => rs.sort((a, b) => len(b) - len(a))[0];
  const matching = host.routes.filter(
    (r) => r.family === family && !r.flags.includes('L') && inPrefix(dst, r.dst),
  );
  const unscoped = longest(matching.filter((r) => !r.flags.includes('I')));
  if (!ifscope) return unscoped;
  const rn0 = unscoped && unscoped.netif === ifscope ? unscoped : undefined;
  const scoped = longest(matching.filter((r) => r.flags.includes('I') && r.netif === ifscope));
  const isDefault = (r: MRoute) => len(r) === 0;
  const isHost = (r: MRoute) => len(r) === (family === 4 ? 32 : 128);
  if (
    scoped &&
    !(rn0 && ((isDefault(scoped) && !isDefault(rn0)) || (!isHost(scoped) && isHost(rn0))))
  )
    return scoped;
  if (rn0) return rn0;
  const def = host.routes.find(
    (r) => r.family === family && isDefault(r) && !r.flags.includes('I'),
  );
  return def && def.netif === ifscope ? def : undefined;
}

/** `route -n get <dst>`: the longest matching unscoped route, in the layout of the route-get captures */
export function routeGet(host: MacHost, dstArg: string): ExecResult {
  const addr = dstArg === 'default' ? '0.0.0.0' : dstArg;
  if (!ipaddr.isValid(addr)) return ok('', `route: bad address: ${dstArg}\n`);
  const family = ipaddr.parse(addr).kind() === 'ipv4' ? 4 : 6;
  const best = lookupRoute(host, addr);
  if (!best) return ok('', 'route: writing to routing socket: not in table\n');
  const [net, len] = best.dst.split('/') as [string, string];
  const mask =
    family === 4
      ? ipaddr.IPv4.subnetMaskFromPrefixLength(Number(len)).toString()
      : ipaddr.IPv6.subnetMaskFromPrefixLength(Number(len)).toString();
  const names = [...best.flags]
    .map(
      (c) =>
        ({
          U: 'UP',
          G: 'GATEWAY',
          H: 'HOST',
          S: 'STATIC',
          c: 'PRCLONING',
          g: 'GLOBAL',
          C: 'CLONING',
          B: 'BLACKHOLE',
          R: 'REJECT',
          m: 'MULTICAST',
        })[c],
    )
    .filter(Boolean);
  names.splice(names.includes('GATEWAY') ? 2 : 1, 0, 'DONE');
  return ok(
    [
      `   route to: ${dstArg}`,
      `destination: ${net === '0.0.0.0' || net === '::' ? 'default' : net}`,
      ...(best.flags.includes('H') ? [] : [`       mask: ${len === '0' ? 'default' : mask}`]),
      ...(best.gateway.startsWith('link#') ? [] : [`    gateway: ${best.gateway}`]),
      `  interface: ${best.netif}`,
      `      flags: <${names.join(',')}>`,
      ' recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire',
      `       0         0         0         0         0         0      ${String(host.interfaces.get(best.netif)?.mtu ?? 1500).padStart(4)}         0`,
      '',
    ].join('\n'),
  );
}

export function route(host: MacHost, args: string[]): ExecResult {
  const a = [...args];
  if (a.shift() !== '-n') throw new Error(`macos-host: route without -n: ${args.join(' ')}`);
  const op = a.shift();
  const fam = a.shift();
  const kindArg = a.shift();
  const dstArg = a.shift();
  if (
    !op ||
    !['add', 'delete', 'change'].includes(op) ||
    (fam !== '-inet' && fam !== '-inet6') ||
    (kindArg !== '-net' && kindArg !== '-host') ||
    !dstArg
  )
    throw new Error(`macos-host: route ${args.join(' ')}`);
  const family = fam === '-inet6' ? 6 : 4;
  const dst = canon(kindArg === '-host' ? `${dstArg}/${family === 4 ? 32 : 128}` : dstArg);
  // `-ifscope <if>` (route.c K_IFSCOPE: if_nametoindex, else errx(1, "bad interface name"))
  let scope: string | undefined;
  if (a.at(-2) === '-ifscope') {
    scope = a.pop()!;
    a.pop();
    if (!host.interfaces.has(scope)) return fail('route: bad interface name\n');
  }
  let gateway: string;
  let netif: string;
  let flags: string;
  if (a[0] === '-interface' && a.length === 2) {
    const i = host.interfaces.get(a[1]!);
    if (!i) return ok('', `route: bad address: ${a[1]}\n`);
    gateway = a[1]!;
    netif = a[1]!;
    flags = kindArg === '-host' ? 'UHS' : 'USc';
  } else if (a.length === 2 && (a[1] === '-blackhole' || a[1] === '-reject')) {
    gateway = a[0]!;
    netif = 'lo0';
    flags = a[1] === '-blackhole' ? 'UGSB' : 'UGSR';
  } else if (a.length === 1 && ipaddr.isValid(a[0]!.replace(/%\w+$/, ''))) {
    gateway = a[0]!;
    // a scoped link-local gateway (fe80::1%en0) names its interface; others go via a connected route
    const zone = /%(\w+)$/.exec(gateway)?.[1];
    const via =
      zone && host.interfaces.has(zone)
        ? { netif: zone }
        : host.routes.find(
            (r) => r.family === family && r.gateway.startsWith('link#') && inPrefix(gateway, r.dst),
          );
    if (!via)
      return ok(
        `${op} ${kindArg.slice(1)} ${dstArg}: gateway ${gateway}: Network is unreachable\n`,
        'route: writing to routing socket: Network is unreachable\n',
      );
    netif = via.netif;
    flags = kindArg === '-host' ? 'UGHS' : 'UGSc';
  } else throw new Error(`macos-host: route ${args.join(' ')}`);
  if (scope) flags += 'I';
  const what = `${op} ${kindArg.slice(1)} ${dstArg}: gateway ${gateway}`;
  // the radix key holds the scope: an unscoped and a scoped route of one prefix are two entries
  const inScope = (r: MRoute) =>
    scope ? r.flags.includes('I') && r.netif === scope : !r.flags.includes('I');
  const idx = host.routes.findIndex((r) => r.family === family && r.dst === dst && inScope(r));
  switch (op) {
    case 'add':
      if (idx >= 0)
        return ok(`${what}: File exists\n`, 'route: writing to routing socket: File exists\n');
      host.routes.push({ family, dst, gateway, flags, netif });
      return ok(`${what}\n`);
    case 'change':
      if (idx < 0)
        return ok(`${what}: not in table\n`, 'route: writing to routing socket: not in table\n');
      host.routes[idx] = { family, dst, gateway, flags, netif };
      return ok(`${what}\n`);
    default: {
      // a delete names its gateway: another owner's same-prefix route is not hit
      const j = host.routes.findIndex(
        (r) => r.family === family && r.dst === dst && r.gateway === gateway && inScope(r),
      );
      if (j < 0)
        return ok(`${what}: not in table\n`, 'route: writing to routing socket: not in table\n');
      host.routes.splice(j, 1);
      return ok(`${what}\n`);
    }
  }
}
