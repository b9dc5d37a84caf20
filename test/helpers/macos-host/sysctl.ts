import type { ExecResult } from '../../../src/util/exec.js';
import type { MacHost } from './model.js';
import { fail, ok, type Need } from './state.js';

/** `sysctl [-n] name`, `sysctl -w name=value` (sysctl-forwarding-read-and-write.txt) */
export function sysctl(host: MacHost, args: string[], need: Need): ExecResult {
  const unknown = (n: string) => fail(`sysctl: unknown oid '${n}'\n`);
  if (args[0] === '-w' && args.length === 2) {
    need('mutate');
    const [n, v] = args[1]!.split('=') as [string, string | undefined];
    const old = host.sysctls.get(n);
    if (old === undefined || v === undefined) return unknown(n);
    host.sysctls.set(n, v);
    return ok(`${n}: ${old} -> ${v}\n`);
  }
  const quiet = args[0] === '-n';
  const names = quiet ? args.slice(1) : args;
  if (!names.length || names.some((n) => n.startsWith('-')))
    throw new Error(`macos-host: sysctl ${args.join(' ')}`);
  need('read');
  const out: string[] = [];
  for (const n of names) {
    const v = host.sysctls.get(n);
    if (v === undefined) return unknown(n);
    out.push(quiet ? v : `${n}: ${v}`);
  }
  return ok(`${out.join('\n')}\n`);
}
