/**
 * `awg confirm`: keep the change of an `awg apply --confirm-timeout N` still waiting for
 * confirmation (netplan try / nmstate --no-commit). Exit 0 confirmed, 2 nothing was waiting
 * (already confirmed, reverted, or no such apply); needs the daemon.
 */
import { toAwgError } from '../../errors.js';
import { daemonFor, needsDaemon, type DaemonChoice } from '../../daemon/client.js';
import { printError, type Io } from '../output.js';

export interface ConfirmOptions extends Omit<DaemonChoice, 'direct'> {
  json?: boolean;
}

export async function confirmCommand(io: Io, o: ConfirmOptions): Promise<number> {
  let close: (() => void) | undefined;
  try {
    const d = await daemonFor({ ...o, anyNetns: true });
    if (!d.client) throw needsDaemon('awg confirm', d.reason);
    const c = d.client;
    close = () => c.close();
    const r = await c.confirm();
    if (o.json) io.out(JSON.stringify(r) + '\n');
    else if (r.confirmed) io.out('Confirmed: the applied change stays.\n');
    else
      io.err(
        'Nothing to confirm: no apply is waiting for confirmation (already confirmed or reverted).\n',
      );
    return r.confirmed ? 0 : 2;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  } finally {
    close?.();
  }
}
