/** What the tools answer when the model refuses a user (`root`) or injects a fault (`faults`). */
import type { ExecResult } from '../../../src/util/exec.js';
import { fail, ok } from './state.js';

/** what an unprivileged user gets (undefined: allowed) */
export function refused(
  kind: 'read' | 'mutate',
  cmd: string,
  args: string[],
): ExecResult | undefined {
  // /dev/pf is root-only (crw------- root): pfctl fails at open(), reads too
  if (cmd === 'pfctl') return fail('pfctl: /dev/pf: Permission denied\n');
  // dnctl.c do_cmd: socket(AF_INET, SOCK_RAW, IPPROTO_RAW) first, reads too; err(EX_UNAVAILABLE)
  if (cmd === 'dnctl') return fail('dnctl: socket: Operation not permitted\n', 69);
  if (kind === 'read') return undefined;
  switch (cmd) {
    case 'route':
      // network_cmds route.c: errx(EX_NOPERM, ...) before any socket is written
      return fail('route: must be root to alter routing table\n', 77);
    case 'ifconfig': {
      const op =
        args[1] === 'mtu'
          ? 'SIOCSIFMTU'
          : args.includes('-alias')
            ? args[1] === 'inet6'
              ? 'SIOCDIFADDR_IN6'
              : 'SIOCDIFADDR'
            : args[1] === 'inet6'
              ? 'SIOCAIFADDR_IN6'
              : args[1] === 'inet'
                ? 'SIOCAIFADDR'
                : 'SIOCSIFFLAGS';
      return fail(`ifconfig: ioctl (${op}): Operation not permitted\n`);
    }
    case 'networksetup':
      // assumed (no capture): the authorization failure networksetup reports on stdout
      return { stdout: '** Error: Command requires admin privileges.\n', stderr: '', code: 14 };
    case 'scutil':
      return ok('  set: Permission denied\n');
    case 'tee':
    case 'rm':
      return fail(`${cmd}: ${args.at(-1)}: Permission denied\n`);
    case 'launchctl':
      return fail(
        `${args[0] === 'bootout' ? 'Boot-out' : 'Bootstrap'} failed: 1: Operation not permitted\n`,
        1,
      );
    default:
      return undefined;
  }
}

/** a realistic failure of this command, without its effect */
export function injected(cmd: string, args: string[]): ExecResult {
  switch (cmd) {
    case 'route':
      return ok(
        `${args[1]} net ${args.at(-1)}: gateway ${args.at(-1)}: Network is unreachable\n`,
        'route: writing to routing socket: Network is unreachable\n',
      );
    case 'pfctl':
      return fail('pfctl: DIOCBEGIN: Device busy\n');
    case 'networksetup':
      return ok('** Error: The parameters were not valid.\n');
    case 'dnctl':
      return fail('dnctl: setsockopt(IP_DUMMYNET_CONFIGURE): Cannot allocate memory\n');
    default:
      return fail(`${cmd}: injected failure\n`);
  }
}
