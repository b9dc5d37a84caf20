/**
 * Step 1 benchmark: validate + plan (the pure part) for a config with 3 tunnels, 50 rules
 * and 10,000 routes (allowed-IP prefixes). Target: < 200 ms.
 */
import { loadConfigText } from '../src/config/load.js';
import { buildDesired } from '../src/model/desired.js';
import { realiseLinux } from '../src/resources/platform/linux.js';
import { plan } from '../src/reconciler/plan.js';
import { measure, type Sample } from './lib.js';

const KEY = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

export function bigConfig(prefixes = 10_000, rules = 50): string {
  const lines = ['version: 1', 'tunnels:'];
  const perTunnel = Math.ceil(prefixes / 3);
  let n = 0;
  for (let t = 0; t < 3; t++) {
    lines.push(
      `  t${t}:`,
      '    type: wireguard',
      `    privateKey: ${KEY}`,
      `    addresses: [10.${100 + t}.0.2/32]`,
      '    peers:',
      `      - publicKey: ${KEY}`,
      `        endpoint: 192.0.2.${t + 1}:51820`,
      '        allowedIPs:',
    );
    for (let i = 0; i < perTunnel && n < prefixes; i++, n++)
      lines.push(`          - 10.${t}.${(i >> 8) & 255}.${i & 255}/32`);
  }
  lines.push('rules:');
  for (let r = 0; r < rules; r++)
    lines.push(
      `  - name: r${r}`,
      `    match: {name: app${r}}`,
      `    target: t${r % 3}`,
      `    fallback: ${['block', 'allow-direct', 'failover', 'drop'][r % 4]}`,
    );
  lines.push('killSwitch: on');
  return lines.join('\n') + '\n';
}

export async function planBench(runs: number): Promise<Sample[]> {
  const text = bigConfig();
  const facts = { cgroupNftPrefix: 'unified' };
  const pipeline = () => {
    const r = loadConfigText(text, 'bench.yaml');
    if (!r.config) throw new Error('bench config invalid: ' + JSON.stringify(r.issues.slice(0, 3)));
    const desired = realiseLinux(buildDesired(r.config, { facts }), facts);
    return { desired, plan: plan(desired, { resources: [], foreign: [] }) };
  };
  const { desired } = pipeline();
  const loadedConfig = loadConfigText(text, 'bench.yaml').config!;
  const converged = { resources: desired.resources.map((r) => structuredClone(r)), foreign: [] };
  return [
    await measure(
      'validate+plan (3 tunnels, 50 rules, 10,000 prefixes → ' +
        desired.resources.length +
        ' resources), empty host',
      runs,
      pipeline,
    ),
    await measure('plan only, converged host (no-op)', runs, () => plan(desired, converged)),
    await measure(
      'load+validate only (YAML parse with positions + zod + semantic checks)',
      runs,
      () => loadConfigText(text, 'bench.yaml'),
    ),
    await measure('buildDesired + realise (Linux) only', runs, () =>
      realiseLinux(buildDesired(loadedConfig, { facts }), facts),
    ),
  ];
}
