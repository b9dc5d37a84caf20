/**
 * `awg doctor`: what else on this host may fight awg, from one observation of it (pure; the
 * Linux platform gathers the observation: resources/platform/linux-doctor.ts). Each finding
 * has a stable id (scripts and docs key on it), a severity, one line of what was found and
 * one of what to do. `error`: it breaks awg now (another tunnel takes the default route, a
 * resolver that is not running); `warning`: it will, on some event (a reboot, NM's next
 * change); `info`: worth knowing.
 *
 * An observation part that could not be read is absent, and the checks that need it are
 * named in `skipped` instead of being guessed.
 */
import { IFB_PREFIX } from './shaping.js';

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  id: FindingId;
  severity: Severity;
  /** the object it is about: a link, a unit, a table, a connection */
  subject: string;
  what: string;
  fix: string;
}

export const FINDING_IDS = [
  'foreign-default-route',
  'foreign-fwmark-rule',
  'wg-quick-unit',
  'nm-vpn-active',
  'foreign-firewall',
  'nm-manages-link',
  'nm-unmanaged-missing',
  'resolved-not-running',
  'resolved-bypassed',
  'killswitch-unit-disabled',
  'service-disabled',
] as const;
export type FindingId = (typeof FINDING_IDS)[number];

export interface ObservedLink {
  name: string;
  /** `ip -d link`'s linkinfo.info_kind: wireguard, amneziawg, tun, veth, … (none: a plain device) */
  kind?: string;
  /** carries our marker (alias `awg:managed…`) */
  ours: boolean;
}

export interface ObservedRoute {
  family: 4 | 6;
  dst: string;
  dev?: string;
  table: string;
}

export interface ObservedRule {
  family: 4 | 6;
  priority: number;
  fwmark?: string;
  /** `ip rule`'s `not` */
  not?: boolean;
  table?: string;
  protocol?: string;
}

export interface ObservedUnit {
  name: string;
  /** ActiveState: active, inactive, failed, … */
  active: string;
  /** UnitFileState: enabled, disabled, static, … (empty: not installed) */
  enabled: string;
}

export interface ObservedNm {
  devices: { device: string; type: string; state: string; connection: string }[];
  active: { name: string; type: string; device: string }[];
  /** `[keyfile] unmanaged-devices` of NM's effective configuration (absent: unset or unknown) */
  unmanagedDevices?: string;
}

export interface DoctorObservation {
  links: ObservedLink[];
  /** default routes (0/0, ::/0, and the 0/1 + 128/1 halves) in every table */
  defaultRoutes: ObservedRoute[];
  rules: ObservedRule[];
  /** the families whose routes or rules could not be read (their checks are skipped, not passed) */
  unread?: { routes: (4 | 6)[]; rules: (4 | 6)[] };
  /** every nft table and chain (iptables-nft's chains are there too) */
  nft?: { family: string; table: string; chains: string[] }[];
  /** absent: systemd is not PID 1 (or systemctl cannot be asked) */
  systemd?: {
    /** wg-quick@*, awg-quick@* instances active or enabled */
    quickUnits: ObservedUnit[];
    /** awg.service, awg-killswitch.service, systemd-resolved.service, NetworkManager.service */
    units: Record<string, ObservedUnit>;
  };
  /** absent: NetworkManager is not running (or nmcli is missing) */
  nm?: ObservedNm;
  /** /etc/resolv.conf points at systemd-resolved's stub (symlink into /run/systemd/resolve, or 127.0.0.53) */
  resolvConfStub: boolean;
  /** what awg claims: our link prefix, route protocol and rule band */
  claims: { linkPrefix: string; routeProtocol: number; rulePriority: number };
  /** the config checked against the host (absent: none given and none applied) */
  config?: { file: string; killSwitch: boolean; dnsSystem: 'keep' | 'default-tunnel' };
}

export interface DoctorReport {
  findings: Finding[];
  /** checks that could not run, and why */
  skipped: string[];
}

/** the link kinds that carry another VPN's tunnel */
const TUNNEL_KINDS = new Set(['wireguard', 'amneziawg', 'tun']);
/** other VPNs' firewall tables and chains (by name; iptables-nft's chains show in nft too) */
const FOREIGN_TABLE = /^(mullvad|tailscale|netbird|nordvpn|expressvpn|protonvpn|wg-quick-)/i;
const FOREIGN_CHAIN = /^(ts-|mullvad|nordvpn|netbird|PVPN|wg-quick-)/;
const HALVES = new Set(['0.0.0.0/1', '128.0.0.0/1', '::/1', '8000::/1']);

export function isDefaultDst(dst: string): boolean {
  return dst === 'default' || dst === '0.0.0.0/0' || dst === '::/0' || HALVES.has(dst);
}

export function diagnose(o: DoctorObservation): DoctorReport {
  const findings: Finding[] = [];
  const skipped: string[] = [];
  const add = (f: Finding) => findings.push(f);
  const ours = (name: string) =>
    name.startsWith(o.claims.linkPrefix) || name.startsWith(IFB_PREFIX);

  // ---- another tunnel taking the default route, another VPN's fwmark rules
  const kinds = new Map(o.links.map((l) => [l.name, l]));
  const seen = new Set<string>();
  for (const r of o.defaultRoutes) {
    const l = r.dev ? kinds.get(r.dev) : undefined;
    if (!l || l.ours || !TUNNEL_KINDS.has(l.kind ?? '') || seen.has(l.name)) continue;
    seen.add(l.name);
    add({
      id: 'foreign-default-route',
      severity: 'error',
      subject: l.name,
      what: `${l.kind} link ${l.name} (not awg's) holds a default route (${r.dst} in table ${r.table}): traffic awg sends direct may leave through it, and its endpoint route fights awg's`,
      fix: `take that tunnel down (wg-quick down ${l.name}, or stop the program that made it); \`awg import\` converts a wg-quick file`,
    });
  }
  for (const r of o.rules) {
    if (r.fwmark === undefined || r.protocol === String(o.claims.routeProtocol)) continue;
    const ahead = r.priority < o.claims.rulePriority;
    add({
      id: 'foreign-fwmark-rule',
      severity: ahead ? 'error' : 'warning',
      subject: `${r.family === 6 ? 'ipv6 ' : ''}rule ${r.priority}`,
      what: `ip rule ${r.priority}: ${r.not ? 'not ' : ''}fwmark ${r.fwmark} lookup ${r.table ?? '?'} is another VPN's policy routing${ahead ? ", ahead of awg's rules" : ''}`,
      fix: 'stop the VPN that added it (wg-quick, tailscale, mullvad, …); awg and it cannot both route by marks',
    });
  }

  const fams = (f: (4 | 6)[]) => f.map((x) => `IPv${x}`).join(' and ');
  if (o.unread?.routes.length)
    skipped.push(`foreign-default-route: the ${fams(o.unread.routes)} routes could not be read`);
  if (o.unread?.rules.length)
    skipped.push(`foreign-fwmark-rule: the ${fams(o.unread.rules)} rules could not be read`);

  // ---- other VPNs' firewalls
  if (o.nft === undefined) skipped.push('foreign-firewall: nft could not be read');
  else
    for (const t of o.nft) {
      if (t.table === 'awg' && t.family === 'inet') continue;
      const chains = t.chains.filter((c) => FOREIGN_CHAIN.test(c));
      if (!FOREIGN_TABLE.test(t.table) && chains.length === 0) continue;
      const subject = `nft table ${t.family} ${t.table}`;
      add({
        id: 'foreign-firewall',
        severity: 'warning',
        subject,
        what: `${subject}${chains.length ? ` (chains ${chains.slice(0, 3).join(', ')})` : ''} is another VPN's firewall: it may drop or mark what awg routes`,
        fix: "stop and disable that VPN's service; its table goes with it",
      });
    }

  // ---- systemd: wg-quick units, our own units
  if (!o.systemd)
    skipped.push(
      'wg-quick-unit, service-disabled, killswitch-unit-disabled: systemd is not running',
    );
  else {
    for (const u of o.systemd.quickUnits) {
      const active = u.active === 'active' || u.active === 'activating';
      const enabled = u.enabled === 'enabled';
      if (!active && !enabled) continue;
      add({
        id: 'wg-quick-unit',
        severity: active ? 'error' : 'warning',
        subject: u.name,
        what: `${u.name} is ${[active ? 'active' : '', enabled ? 'enabled (starts at boot)' : ''].filter(Boolean).join(' and ')}: its tunnel and routes compete with awg's`,
        fix: `systemctl disable --now ${u.name}; \`awg import\` converts its config`,
      });
    }
    const awg = o.systemd.units['awg.service'];
    if (!awg || awg.enabled !== 'enabled')
      add({
        id: 'service-disabled',
        severity: 'info',
        subject: 'awg.service',
        what: `awg.service is ${awg?.enabled || 'not installed'}: nothing applies the config at boot`,
        fix: "systemctl enable --now awg (the package's unit; it follows /etc/awg/config.yaml), or awg service install",
      });
    const ks = o.systemd.units['awg-killswitch.service'];
    if (o.config?.killSwitch && ks?.enabled !== 'enabled')
      add({
        id: 'killswitch-unit-disabled',
        severity: 'warning',
        subject: 'awg-killswitch.service',
        what: `killSwitch is on in ${o.config.file} but awg-killswitch.service is ${ks?.enabled || 'not installed'}: from boot until the daemon runs, traffic is not blocked`,
        fix: 'systemctl enable awg-killswitch.service (or awg service install)',
      });
  }

  // ---- NetworkManager
  if (!o.nm)
    skipped.push(
      'nm-manages-link, nm-vpn-active, nm-unmanaged-missing: NetworkManager is not running',
    );
  else {
    let oursSeen = false;
    for (const d of o.nm.devices) {
      if (!ours(d.device)) continue;
      oursSeen = true;
      if (d.state === 'unmanaged') continue;
      add({
        id: 'nm-manages-link',
        severity: 'error',
        subject: d.device,
        what: `NetworkManager manages awg's link ${d.device} (${d.state}): it may rewrite the link's DNS in systemd-resolved`,
        fix: "install NM's drop-in (the package ships it; npm: awg service install), then nmcli general reload conf; NetworkManager --print-config must list interface-name:awg-* in unmanaged-devices",
      });
    }
    const probe = `${o.claims.linkPrefix}x`;
    if (
      !oursSeen &&
      o.nm.unmanagedDevices !== undefined &&
      !nmUnmanages(o.nm.unmanagedDevices, probe)
    )
      add({
        id: 'nm-unmanaged-missing',
        severity: 'warning',
        subject: 'NetworkManager',
        what: `NetworkManager's unmanaged-devices does not cover ${o.claims.linkPrefix}*: it will take awg's next link as its own`,
        fix: `add a file /etc/NetworkManager/conf.d/awg-unmanaged.conf with "[keyfile]" and "unmanaged-devices+=interface-name:${o.claims.linkPrefix}*", then nmcli general reload conf`,
      });
    for (const c of o.nm.active) {
      if (!/wireguard|vpn/.test(c.type)) continue;
      add({
        id: 'nm-vpn-active',
        severity: 'error',
        subject: c.name,
        what: `NetworkManager's ${c.type} connection "${c.name}"${c.device ? ` on ${c.device}` : ''} is active: its routes and DNS compete with awg's`,
        fix: `nmcli connection down "${c.name}" && nmcli connection modify "${c.name}" connection.autoconnect no`,
      });
    }
  }

  // ---- systemd-resolved against resolv.conf and dns.system
  const resolved = o.systemd?.units['systemd-resolved.service'];
  if (!resolved) skipped.push('resolved-not-running, resolved-bypassed: systemd is not running');
  else {
    const running = resolved.active === 'active';
    if (o.resolvConfStub && !running)
      add({
        id: 'resolved-not-running',
        severity: 'error',
        subject: '/etc/resolv.conf',
        what: `/etc/resolv.conf points at systemd-resolved's stub but systemd-resolved is ${resolved.active || 'not installed'}: names do not resolve, and awg's DNS goes to a resolver that is not there`,
        fix: 'systemctl enable --now systemd-resolved, or make /etc/resolv.conf a file of its own',
      });
    if (running && !o.resolvConfStub && o.config?.dnsSystem === 'default-tunnel')
      add({
        id: 'resolved-bypassed',
        severity: 'warning',
        subject: '/etc/resolv.conf',
        what: `dns.system is default-tunnel and systemd-resolved runs, but /etc/resolv.conf is not its stub: awg rewrites /etc/resolv.conf, which NetworkManager or resolvconf may rewrite back`,
        fix: 'ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf (awg then sets the DNS per link in resolved)',
      });
  }
  return { findings, skipped };
}

/**
 * Whether NM's `[keyfile] unmanaged-devices` value (as `NetworkManager --print-config` prints
 * it: specs separated by `;` or `,`) leaves a link named `name` unmanaged. Only specs that name
 * links by name are understood (`interface-name:` globs, `interface-name:=` exact, a bare
 * `*`): a link that does not exist yet can be matched by nothing else. Globs as NM's: `*`, `?`.
 */
export function nmUnmanages(value: string, name: string): boolean {
  for (const raw of value.split(/[;,]/)) {
    const spec = raw.trim();
    if (spec === '*') return true;
    const m = /^interface-name:(=|~)?(.*)$/.exec(spec);
    if (!m) continue;
    const pat = m[2]!;
    if (m[1] === '=' ? pat === name : globRe(pat).test(name)) return true;
  }
  return false;
}

function globRe(pattern: string): RegExp {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}
