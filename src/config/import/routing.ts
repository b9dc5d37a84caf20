/**
 * The routing guess of `awg import`: what wg-quick routed for the imported file (full tunnel,
 * split tunnel or nothing), as the config's `default`, `ipv6` and `dns`, with the note that
 * explains it above `default`. Pure.
 */
import type { Importer } from './importer.js';
import { pathString } from './locations.js';

const RULE_EXAMPLE = (name: string): string =>
  `   rules: [{ match: { name: firefox }, target: ${name} }]`;

/**
 * What wg-quick routed, as `default`, `ipv6` and `dns` (wg-quick(8) on Linux: `add_route`,
 * `set_dns`). With Table unset, `auto` or `main`, every AllowedIPs prefix was routed for
 * every process: /0 through wg-quick's own table and rule, the rest through main.
 * `default: <tunnel>` means the same here: the tunnel's table holds the AllowedIPs routes
 * and, without a /0, throws every other destination back to main. `Table = off` added no
 * route, and another table got the routes but no rule pointing at it (hooks may add one,
 * awg runs none), so nothing went through the tunnel by default: `default: direct`.
 * DNS servers replaced the system resolver whenever DNS was set; awg can do that only for
 * the default tunnel. wg-quick has no kill switch and this sets none.
 */
export function wgQuickRouting(
  im: Importer,
  name: string,
): { config: Record<string, unknown>; note: string[] } {
  const table = im.table?.value;
  const tableRoutes = table === undefined || ['auto', 'main', '254'].includes(table);
  const full = im.full4 || im.full6;
  const hasPrefixes = full || im.splitIPs.length > 0;
  const dns = im.tunnel.dns as string[] | undefined;
  if (!tableRoutes || !hasPrefixes) {
    const why =
      table === 'off'
        ? `Table = off: wg-quick added no routes, so nothing went through ${name} unless hooks routed it.`
        : !tableRoutes
          ? `Table = ${table}: wg-quick put the routes in table ${table} and no rule sent traffic there (hooks may have).`
          : `No AllowedIPs: wg-quick routed nothing through ${name}.`;
    if (dns !== undefined) {
      const at = im.locs.get(pathString([...im.base(), 'dns']));
      im.err(
        at,
        [...im.base(), 'dns'],
        `DNS: wg-quick pointed the system resolver at ${dns.join(', ')}; awg does that only for the default tunnel (dns.system: default-tunnel), and ${name} is not the default (${table !== undefined && !tableRoutes ? `Table = ${table}` : 'no AllowedIPs'}); apps sent to ${name} by rules still resolve through these servers`,
        'warning',
      );
    }
    return {
      config: { default: 'direct' },
      note: [` ${why}`, ` Send apps through it with rules, e.g.`, RULE_EXAMPLE(name)],
    };
  }
  const config: Record<string, unknown> = { default: name };
  // v6 prefixes are routed only with ipv6: tunnel; without ::/0 the rest of v6 is thrown to main
  if (im.full6 || im.split6) config.ipv6 = 'tunnel';
  if (dns !== undefined) config.dns = { system: 'default-tunnel' };
  if (full)
    return {
      config,
      note: [
        ` AllowedIPs include ${[im.full4 ? '0.0.0.0/0' : '', im.full6 ? '::/0' : ''].filter(Boolean).join(' and ')}: full tunnel, as wg-quick did.`,
        ' Add `direct` rules to exclude apps.',
        ...(im.full6
          ? []
          : im.split6
            ? [' IPv6 goes through it only to its IPv6 AllowedIPs (no ::/0), as with wg-quick.']
            : [' IPv6 was not tunnelled (no ::/0); set `ipv6: block` to stop it going direct.']),
      ],
    };
  return {
    config,
    note: [
      ` Split tunnel, as wg-quick routed it: traffic to ${summarize(im.splitIPs)} goes through ${name} for every process;`,
      ' other destinations go direct (the tunnel table throws them back to the main table).',
      ` Add \`direct\` rules to exclude apps, or set \`default: direct\` and send only some apps through ${name}, e.g.`,
      RULE_EXAMPLE(name),
    ],
  };
}

function summarize(ips: string[]): string {
  return ips.length <= 3
    ? ips.join(', ')
    : `${ips.slice(0, 3).join(', ')} and ${ips.length - 3} more`;
}
