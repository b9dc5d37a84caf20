/** `awg exec`'s route choice on the wire (the Exec call, macOS): one member of a oneof. Pure. */
import { AwgError } from '../../errors.js';
import type { ExecChoice } from '../../model/match.js';
import type { ExecRequest__Output } from './generated/awg/v1/ExecRequest.js';

export function execRequestToWire(c: ExecChoice): ExecRequest__Output {
  return 'tunnel' in c ? { tunnel: c.tunnel } : 'rule' in c ? { rule: c.rule } : { direct: true };
}

export function execRequestFromWire(w: ExecRequest__Output): ExecChoice {
  if (w.choice === 'tunnel' && w.tunnel) return { tunnel: w.tunnel };
  if (w.choice === 'rule' && w.rule) return { rule: w.rule };
  if (w.choice === 'direct' && w.direct) return { direct: true };
  throw new AwgError(
    'invalid-config',
    'Exec: give exactly one of a tunnel name, direct or a rule name',
  );
}
