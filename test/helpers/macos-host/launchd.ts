/** The model's launchd (system domain) as `launchctl print|bootstrap|bootout` see it. */
import type { ExecResult } from '../../../src/util/exec.js';
import type { MacHost } from './model.js';
import { fail, ok, type Need } from './state.js';

export function launchctl(host: MacHost, args: string[], need: Need): ExecResult {
  const s = args.join(' ');
  let m: RegExpExecArray | null;
  if ((m = /^print system\/([A-Za-z0-9_.-]+)$/.exec(s))) {
    need('read');
    const j = host.launchd.get(m[1]!);
    // launchctl-print-not-found-stderr-macos27.txt, system domain
    if (!j)
      return fail(`Bad request.\nCould not find service "${m[1]}" in domain for system\n`, 113);
    // the layout of launchctl-print-gui-running-keepalive-macos27.txt
    return ok(
      [
        `system/${m[1]} = {`,
        '\tactive count = 1',
        `\tpath = ${j.plist}`,
        '\ttype = LaunchDaemon',
        `\tstate = ${j.pid ? 'running' : 'not running'}`,
        '',
        '\tprogram = /usr/local/bin/node',
        '\targuments = {',
        '\t\t/usr/local/bin/node',
        '\t}',
        '',
        ...(j.pid ? [`\tpid = ${j.pid}`] : []),
        ...(j.lastExit !== undefined
          ? [`\tlast exit code = ${j.lastExit}`]
          : ['\tlast exit code = (never exited)']),
        '\tproperties = keepalive | runatload',
        '}',
        '',
      ].join('\n'),
    );
  }
  if (s === 'print-disabled system') return (need('read'), ok('\tdisabled services = {\n\t}\n'));
  need('mutate');
  if ((m = /^bootstrap system (\/Library\/LaunchDaemons\/([A-Za-z0-9_.-]+)\.plist)$/.exec(s))) {
    if (!host.files.has(m[1]!)) return fail('Bootstrap failed: 2: No such file or directory\n', 5);
    if (host.launchd.has(m[2]!)) return fail('Bootstrap failed: 5: Input/output error\n', 5);
    host.launchd.set(m[2]!, { plist: m[1]!, pid: host.nextPid++ });
    return ok();
  }
  if ((m = /^bootout system\/([A-Za-z0-9_.-]+)$/.exec(s))) {
    if (!host.launchd.delete(m[1]!)) return fail('Boot-out failed: 3: No such process\n', 3);
    return ok();
  }
  throw new Error(`macos-host: launchctl ${s}`);
}
