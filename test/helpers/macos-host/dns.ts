/** The model's DNS: network services through `networksetup`, the dynamic store through `scutil`. */
import type { ExecResult } from '../../../src/util/exec.js';
import type { MacHost } from './model.js';
import { ok, type Need } from './state.js';

export function networksetup(host: MacHost, args: string[], need: Need): ExecResult {
  const [verb, svcName, ...vals] = args;
  if (verb === '-listallnetworkservices') {
    need('read');
    return ok(
      [
        'An asterisk (*) denotes that a network service is disabled.',
        ...host.services.map((s) => `${s.enabled ? '' : '*'}${s.name}`),
        '',
      ].join('\n'),
    );
  }
  if (verb === '-listnetworkserviceorder') {
    need('read');
    // networksetup-listnetworkserviceorder-15.7.1.txt; a disabled service is numbered (*)
    return ok(
      [
        'An asterisk (*) denotes that a network service is disabled.',
        ...host.services.map(
          (s, i) =>
            `(${s.enabled ? i + 1 : '*'}) ${s.name}\n(Hardware Port: ${s.name}, Device: ${s.device})\n`,
        ),
        '',
      ].join('\n'),
    );
  }
  const svc = host.services.find((s) => s.name === svcName);
  // networksetup reports errors on stdout, exit 4 (dns/networksetup-error-unrecognized-service-crc.txt)
  if (!svc)
    return {
      stdout: `${svcName} is not a recognized network service.\n** Error: The parameters were not valid.\n`,
      stderr: '',
      code: 4,
    };
  switch (verb) {
    case '-getdnsservers':
      need('read');
      return ok(
        svc.dns.length
          ? `${svc.dns.join('\n')}\n`
          : `There aren't any DNS Servers set on ${svc.name}. \n`,
      );
    case '-getsearchdomains':
      need('read');
      return ok(
        svc.search.length
          ? `${svc.search.join('\n')}\n`
          : `There aren't any Search Domains set on ${svc.name}. \n`,
      );
    case '-setdnsservers':
      need('mutate');
      svc.dns = vals.length === 1 && vals[0] === 'Empty' ? [] : vals;
      return ok();
    case '-setsearchdomains':
      need('mutate');
      svc.search = vals.length === 1 && vals[0] === 'Empty' ? [] : vals;
      return ok();
  }
  throw new Error(`macos-host: networksetup ${args.join(' ')}`);
}

/**
 * `scutil --dns` as configd would build it (layout of the 10.15.3 split-tunnel capture):
 * supplemental resolvers from the dynamic store first, then the primary service's (the
 * first enabled service whose device is up with an IPv4 address) manual DNS, else what DHCP
 * gave it, then the mDNS resolvers; the scoped section repeats the primary's.
 */
export function scutilDns(host: MacHost): string {
  const out: string[] = ['DNS configuration', ''];
  let n = 0;
  const block = (lines: string[]) =>
    out.push(`resolver #${++n}`, ...lines.map((l) => `  ${l}`), '');
  for (const [, v] of [...host.store].sort())
    for (const d of v.SupplementalMatchDomains)
      block([
        `domain   : ${d}`,
        ...v.ServerAddresses.map((a, i) => `nameserver[${i}] : ${a}`),
        'flags    : Supplemental, Request A records',
        'reach    : 0x00000002 (Reachable)',
        `order    : ${101400 + n * 200}`,
      ]);
  const primary = host.services.find(
    (s) =>
      s.enabled && host.interfaces.get(s.device)?.up && host.interfaces.get(s.device)!.inet.length,
  );
  const iface = primary && host.interfaces.get(primary.device)!;
  const eff =
    primary &&
    (primary.dns.length
      ? { dns: primary.dns, search: primary.search }
      : (primary.dhcp ?? { dns: [], search: [] }));
  const main =
    eff && iface && eff.dns.length
      ? [
          ...eff.search.map((d, i) => `search domain[${i}] : ${d}`),
          ...eff.dns.map((a, i) => `nameserver[${i}] : ${a}`),
          `if_index : ${iface.index} (${iface.name})`,
          'flags    : Request A records',
          'reach    : 0x00020002 (Reachable,Directly Reachable Address)',
        ]
      : undefined;
  if (main) block([...main, 'order    : 200000']);
  for (const [d, order] of [
    ['local', 300000],
    ['254.169.in-addr.arpa', 300200],
    ['8.e.f.ip6.arpa', 300400],
  ] as const)
    block([
      `domain   : ${d}`,
      'options  : mdns',
      'timeout  : 5',
      'flags    : Request A records',
      'reach    : 0x00000000 (Not Reachable)',
      `order    : ${order}`,
    ]);
  out.push('DNS configuration (for scoped queries)', '');
  n = 0;
  if (main) block([...main.slice(0, -2), 'flags    : Scoped, Request A records', main.at(-1)!]);
  return `${out.join('\n')}\n`;
}

export function scutil(host: MacHost, script: string, kind: 'read' | 'mutate'): ExecResult {
  let d:
    | { ServerAddresses: string[]; SupplementalMatchDomains: string[]; SearchDomains: string[] }
    | undefined;
  let out = '';
  for (const raw of script.split('\n')) {
    const l = raw.trim();
    let m: RegExpExecArray | null;
    if (!l || l === 'quit') continue;
    if (l === 'd.init')
      d = { ServerAddresses: [], SupplementalMatchDomains: [], SearchDomains: [] };
    else if (
      (m = /^d\.add (ServerAddresses|SupplementalMatchDomains|SearchDomains) \* (.+)$/.exec(l)) &&
      d
    )
      d[m[1] as 'ServerAddresses'] = m[2]!.split(' ');
    else if ((m = /^set (State:\/Network\/Service\/[^ ]+\/DNS)$/.exec(l)) && d && kind === 'mutate')
      host.store.set(m[1]!, d);
    else if ((m = /^remove (State:\/Network\/Service\/[^ ]+\/DNS)$/.exec(l)) && kind === 'mutate')
      host.store.delete(m[1]!);
    else if ((m = /^show (State:\/Network\/Service\/[^ ]+\/DNS)$/.exec(l))) {
      const v = host.store.get(m[1]!);
      if (!v) out += '  No such key\n';
      else {
        out += '<dictionary> {\n';
        for (const k of ['SearchDomains', 'ServerAddresses', 'SupplementalMatchDomains'] as const) {
          if (!v[k].length) continue;
          out += `  ${k} : <array> {\n${v[k].map((x, i) => `    ${i} : ${x}\n`).join('')}  }\n`;
        }
        out += '}\n';
      }
    } else throw new Error(`macos-host: scutil (${kind}) line the model does not know: ${l}`);
  }
  return ok(out);
}
