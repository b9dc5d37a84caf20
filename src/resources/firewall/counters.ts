/**
 * Counters of our nft table by rule comment (`app/<rule>`, `blocked/…`, `kill-switch`,
 * `dns-leak`, …): packets and bytes summed over the rules sharing a comment prefix up to the
 * second `/` (`app/work/ipv6-blocked` counts for `app/work`). Read-only.
 */
import type { Exec } from '../../util/exec.js';
import { nftTableRead } from '../reads.js';

export interface Counter {
  packets: number;
  bytes: number;
}

export function parseCounters(text: string): Map<string, Counter> {
  const out = new Map<string, Counter>();
  for (const line of text.split('\n')) {
    const c = /counter packets (\d+) bytes (\d+)/.exec(line);
    const m = /comment "([^"]+)"/.exec(line);
    if (!c || !m) continue;
    const key = m[1]!.split('/').slice(0, 2).join('/');
    const prev = out.get(key) ?? { packets: 0, bytes: 0 };
    out.set(key, { packets: prev.packets + Number(c[1]), bytes: prev.bytes + Number(c[2]) });
  }
  return out;
}

export async function readRuleCounters(exec: Exec, table: string): Promise<Map<string, Counter>> {
  const [cmd, args] = nftTableRead(table);
  const r = await exec.read(cmd, [...args], { allowFail: true });
  return r.code === 0 ? parseCounters(r.stdout) : new Map();
}
