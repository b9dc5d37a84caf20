/** RuleSpec → `ip rule add|del` argument tail. Pure. `protocol N` is the ownership marker. */
import type { RuleSpec } from '../../model/resources.js';

const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;

export function ruleArgs(verb: 'add' | 'del', r: RuleSpec): string[] {
  const a = ['rule', verb, 'priority', String(r.priority)];
  if (r.invert) a.push('not');
  if (r.iif !== undefined) a.push('iif', r.iif);
  if (r.fwmark !== undefined)
    a.push('fwmark', r.fwmask !== undefined ? `${hex(r.fwmark)}/${hex(r.fwmask)}` : hex(r.fwmark));
  if (r.action === 'lookup') {
    if (r.table === undefined) throw new Error(`rule ${r.priority}: lookup without table`);
    a.push('lookup', String(r.table));
  } else a.push(r.action);
  if (r.suppressPrefixLength !== undefined)
    a.push('suppress_prefixlength', String(r.suppressPrefixLength));
  a.push('protocol', String(r.protocol));
  return a;
}
