/**
 * What `awg doctor` observes of a Linux host (model/doctor.ts judges it): links (`ip -j`),
 * default routes and rules (over rtnetlink in this process when the Exec runs on this host,
 * route/probe-netlink.ts, as the route and rule drivers read them; else `ip -j`, the drivers'
 * reads through another Exec), nft tables and chains (`nft -j`), systemd units
 * (`systemctl show`, the *.wants directories for enabled template instances), NetworkManager
 * (`nmcli -t`, `NetworkManager --print-config`) and /etc/resolv.conf. Read-only; a part that
 * cannot be read is left out (the analysis says which checks it skipped). Parsers are pure
 * and exported for the tests.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type {
  DoctorObservation,
  ObservedLink,
  ObservedNm,
  ObservedRoute,
  ObservedRule,
  ObservedUnit,
} from '../../model/doctor.js';
import { isDefaultDst } from '../../model/doctor.js';
import type { Exec } from '../../util/exec.js';
import { LINK_READ, routeRead, ruleRead } from '../reads.js';
import type { RoutingReader } from '../route/probe-netlink.js';

export interface DoctorGatherOptions {
  exec: Pick<Exec, 'read'>;
  claims: DoctorObservation['claims'];
  config?: DoctorObservation['config'];
  /** the host's file system root (tests) */
  root?: string;
  /** /run/systemd/system exists: systemd is PID 1 (default: looked up under root) */
  systemdBooted?: boolean;
  /**
   * where routes and rules are read over netlink (tests); default: a reader of its own when
   * `exec` runs on this host (closed after), else `ip` through `exec`
   */
  reader?: RoutingReader;
}

const AWG_UNITS = [
  'awg.service',
  'awg-killswitch.service',
  'systemd-resolved.service',
  'NetworkManager.service',
];
const QUICK = /^(wg-quick|awg-quick)@[^/]+\.service$/;

export async function gatherLinux(o: DoctorGatherOptions): Promise<DoctorObservation> {
  const root = o.root ?? '/';
  // a failed read or a missing program (nmcli on a host without NM): that part is unknown
  const read = async (cmd: string, args: readonly string[]) => {
    const r = await o.exec.read(cmd, [...args], { allowFail: true }).catch(() => undefined);
    return r?.code === 0 ? r.stdout : undefined;
  };
  const [links, routing, tables, chains] = await Promise.all([
    read(...LINK_READ),
    readRouting(o, read),
    read('nft', ['-j', 'list', 'tables']),
    read('nft', ['-j', 'list', 'chains']),
  ]);
  const booted = o.systemdBooted ?? existsSync(`${root}/run/systemd/system`);
  const systemd = booted ? await gatherSystemd(read, root) : undefined;
  const nmActive = systemd?.units['NetworkManager.service']?.active === 'active';
  const nm = nmActive ? await gatherNm(read) : undefined;
  const resolvConf = `${root}/etc/resolv.conf`.replace(/\/+/g, '/');
  const link = await readlink(resolvConf).catch(() => '');
  const text = await readFile(resolvConf, 'utf8').catch(() => '');
  return {
    links: links ? parseLinks(links) : [],
    ...routing,
    ...(tables !== undefined ? { nft: parseNftTables(tables, chains ?? '{}') } : {}),
    ...(systemd ? { systemd } : {}),
    ...(nm ? { nm } : {}),
    resolvConfStub:
      link.includes('/run/systemd/resolve/') || /^\s*nameserver\s+127\.0\.0\.53\s*$/m.test(text),
    claims: o.claims,
    ...(o.config ? { config: o.config } : {}),
  };
}

type Read = (cmd: string, args: readonly string[]) => Promise<string | undefined>;
type Rows = Record<string, unknown>[];

/**
 * Every table's default routes and every rule of both families: over netlink (the rows
 * `ip -j -N` prints, route/probe-netlink.ts) when there is a reader, else by `ip`. A family
 * whose read fails is left out and named in `unread` (the analysis skips its check).
 */
async function readRouting(
  o: DoctorGatherOptions,
  read: Read,
): Promise<Pick<DoctorObservation, 'defaultRoutes' | 'rules' | 'unread'>> {
  const own = o.reader ? undefined : await ownReader(o.exec);
  const reader = o.reader ?? own;
  const families = [4, 6] as const;
  try {
    const [routes, rules] = reader
      ? [
          families.map((f) => attempt(() => ipTableRows(reader.tableRoutesJson(f, () => true)))),
          families.map((f) => attempt(() => reader.ruleRowsJson(f))),
        ]
      : await Promise.all([
          Promise.all(families.map(async (f) => jsonRows(await read(...routeRead(f))))),
          Promise.all(families.map(async (f) => jsonRows(await read(...ruleRead(f))))),
        ]);
    const unread = {
      routes: families.filter((_, i) => routes[i] === undefined),
      rules: families.filter((_, i) => rules[i] === undefined),
    };
    return {
      defaultRoutes: families.flatMap((f, i) => defaultRoutesOf(routes[i] ?? [], f)),
      rules: families.flatMap((f, i) => rulesOf(rules[i] ?? [], f)),
      ...(unread.routes.length + unread.rules.length > 0 ? { unread } : {}),
    };
  } finally {
    own?.close();
  }
}

async function ownReader(exec: Pick<Exec, 'read'>): Promise<RoutingReader | undefined> {
  try {
    return (await import('../route/probe-netlink.js')).routingReader(exec);
  } catch {
    return undefined;
  }
}

function attempt<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/** `ip -j` output → rows; undefined when the read failed or printed something else */
const jsonRows = (json: string | undefined): Rows | undefined =>
  json === undefined ? undefined : attempt(() => JSON.parse(json) as Rows);

/** `ip route show table all` names no table for main's routes (the reader's rows name 254) */
const ipTableRows = (rows: readonly object[]): Rows =>
  rows.map((r) => {
    const { table, ...rest } = r as Record<string, unknown>;
    return table === '254' ? rest : { ...rest, table };
  });

async function gatherSystemd(read: Read, root: string): Promise<DoctorObservation['systemd']> {
  const props = ['--property=Id,ActiveState,UnitFileState'];
  const shown = await read('systemctl', ['show', ...props, ...AWG_UNITS]);
  const units: Record<string, ObservedUnit> = {};
  for (const u of parseShowUnits(shown ?? '')) units[u.name] = u;
  // active instances, and enabled ones (a template instance's enablement is a *.wants symlink)
  const listed = await read('systemctl', [
    'list-units',
    '--all',
    '--plain',
    '--no-legend',
    '--no-pager',
    'wg-quick@*',
    'awg-quick@*',
  ]);
  const names = new Set<string>();
  for (const l of (listed ?? '').split('\n')) {
    const n = l.trim().split(/\s+/)[0] ?? '';
    if (QUICK.test(n)) names.add(n);
  }
  for (const dir of ['etc/systemd/system', 'usr/lib/systemd/system']) {
    const base = `${root}/${dir}`.replace(/\/+/g, '/');
    const entries = await readdir(base).catch(() => [] as string[]);
    for (const w of entries.filter((e) => e.endsWith('.wants')))
      for (const n of await readdir(`${base}/${w}`).catch(() => [] as string[]))
        if (QUICK.test(n)) names.add(n);
  }
  const quickUnits = names.size
    ? parseShowUnits((await read('systemctl', ['show', ...props, ...[...names].sort()])) ?? '')
    : [];
  return { quickUnits, units };
}

async function gatherNm(read: Read): Promise<ObservedNm | undefined> {
  const dev = await read('nmcli', ['-t', '-f', 'DEVICE,TYPE,STATE,CONNECTION', 'device']);
  if (dev === undefined) return undefined;
  const act = await read('nmcli', [
    '-t',
    '-f',
    'NAME,TYPE,DEVICE',
    'connection',
    'show',
    '--active',
  ]);
  const conf = await read('NetworkManager', ['--print-config']);
  const unmanaged = conf !== undefined ? keyfileUnmanaged(conf) : undefined;
  return {
    devices: parseNmcli(dev).map(([device = '', type = '', state = '', connection = '']) => ({
      device,
      type,
      state,
      connection,
    })),
    active: parseNmcli(act ?? '').map(([name = '', type = '', device = '']) => ({
      name,
      type,
      device,
    })),
    // unset in the effective configuration: nothing is unmanaged by name
    ...(conf !== undefined ? { unmanagedDevices: unmanaged ?? '' } : {}),
  };
}

// ---- pure parsers

interface IpLink {
  ifname?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string };
}

export function parseLinks(json: string): ObservedLink[] {
  return (JSON.parse(json) as IpLink[]).flatMap((l) =>
    l.ifname
      ? [
          {
            name: l.ifname,
            ...(l.linkinfo?.info_kind ? { kind: l.linkinfo.info_kind } : {}),
            ours: (l.ifalias ?? '').startsWith('awg:managed'),
          },
        ]
      : [],
  );
}

export const parseDefaultRoutes = (json: string, family: 4 | 6): ObservedRoute[] =>
  defaultRoutesOf(JSON.parse(json) as Rows, family);

/** the default routes of `ip -j -N route show table all`'s rows */
export function defaultRoutesOf(json: Rows, family: 4 | 6): ObservedRoute[] {
  const rows = json as {
    dst?: string;
    dev?: string;
    table?: string | number;
    type?: string;
  }[];
  return rows.flatMap((r) =>
    r.dst && isDefaultDst(r.dst) && (r.type === undefined || r.type === 'unicast' || r.type === '1')
      ? [
          {
            family,
            dst: r.dst,
            ...(r.dev ? { dev: r.dev } : {}),
            table: String(r.table ?? 'main'),
          },
        ]
      : [],
  );
}

export const parseRules = (json: string, family: 4 | 6): ObservedRule[] =>
  rulesOf(JSON.parse(json) as Rows, family);

/** the rules of `ip -j -N rule show`'s rows */
export function rulesOf(json: Rows, family: 4 | 6): ObservedRule[] {
  const rows = json as {
    priority?: number;
    fwmark?: string;
    not?: null | boolean;
    table?: string | number;
    protocol?: string | number;
  }[];
  return rows.map((r) => ({
    family,
    priority: r.priority ?? 0,
    ...(r.fwmark !== undefined ? { fwmark: r.fwmark } : {}),
    ...(r.not !== undefined ? { not: true } : {}),
    ...(r.table !== undefined ? { table: String(r.table) } : {}),
    ...(r.protocol !== undefined ? { protocol: String(r.protocol) } : {}),
  }));
}

type NftItem = {
  table?: { family: string; name: string };
  chain?: { family: string; table: string; name: string };
};

export function parseNftTables(
  tablesJson: string,
  chainsJson: string,
): { family: string; table: string; chains: string[] }[] {
  const items = (j: string) => (JSON.parse(j) as { nftables?: NftItem[] }).nftables ?? [];
  const out = new Map<string, { family: string; table: string; chains: string[] }>();
  for (const i of items(tablesJson))
    if (i.table)
      out.set(`${i.table.family} ${i.table.name}`, {
        family: i.table.family,
        table: i.table.name,
        chains: [],
      });
  for (const i of items(chainsJson))
    if (i.chain) out.get(`${i.chain.family} ${i.chain.table}`)?.chains.push(i.chain.name);
  return [...out.values()];
}

/** `systemctl show -p Id,ActiveState,UnitFileState A B`: blocks separated by blank lines */
export function parseShowUnits(text: string): ObservedUnit[] {
  return text
    .split(/\n\s*\n/)
    .map((block) => {
      const kv: Record<string, string> = {};
      for (const l of block.split('\n')) {
        const i = l.indexOf('=');
        if (i > 0) kv[l.slice(0, i)] = l.slice(i + 1);
      }
      return kv;
    })
    .filter((kv) => kv['Id'])
    .map((kv) => ({
      name: kv['Id']!,
      active: kv['ActiveState'] ?? '',
      enabled: kv['UnitFileState'] ?? '',
    }));
}

/** `nmcli -t` lines: fields split at `:`, with nmcli's `\:` and `\\` escapes undone */
export function parseNmcli(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const fields: string[] = [];
      let cur = '';
      for (let i = 0; i < l.length; i++) {
        const c = l[i]!;
        if (c === '\\' && i + 1 < l.length) cur += l[++i]!;
        else if (c === ':') {
          fields.push(cur);
          cur = '';
        } else cur += c;
      }
      fields.push(cur);
      return fields;
    });
}

/** `[keyfile] unmanaged-devices` of `NetworkManager --print-config` (undefined: unset) */
export function keyfileUnmanaged(conf: string): string | undefined {
  let section = '';
  for (const raw of conf.split('\n')) {
    const l = raw.trim();
    const s = /^\[(.+)\]$/.exec(l);
    if (s) section = s[1]!;
    else if (section === 'keyfile' && l.startsWith('unmanaged-devices='))
      return l.slice('unmanaged-devices='.length);
  }
  return undefined;
}
