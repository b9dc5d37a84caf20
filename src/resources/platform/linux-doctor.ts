/**
 * What `awg doctor` observes of a Linux host (model/doctor.ts judges it): links, default routes
 * and rules (`ip -j`, the drivers' reads), nft tables and chains (`nft -j`), systemd units
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

export interface DoctorGatherOptions {
  exec: Pick<Exec, 'read'>;
  claims: DoctorObservation['claims'];
  config?: DoctorObservation['config'];
  /** the host's file system root (tests) */
  root?: string;
  /** /run/systemd/system exists: systemd is PID 1 (default: looked up under root) */
  systemdBooted?: boolean;
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
  const [links, r4, r6, u4, u6, tables, chains] = await Promise.all([
    read(...LINK_READ),
    read(...routeRead(4)),
    read(...routeRead(6)),
    read(...ruleRead(4)),
    read(...ruleRead(6)),
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
    defaultRoutes: [
      ...(r4 ? parseDefaultRoutes(r4, 4) : []),
      ...(r6 ? parseDefaultRoutes(r6, 6) : []),
    ],
    rules: [...(u4 ? parseRules(u4, 4) : []), ...(u6 ? parseRules(u6, 6) : [])],
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

export function parseDefaultRoutes(json: string, family: 4 | 6): ObservedRoute[] {
  const rows = JSON.parse(json) as {
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

export function parseRules(json: string, family: 4 | 6): ObservedRule[] {
  const rows = JSON.parse(json) as {
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
