import { describe, expect, it } from 'vitest';
import {
  engineArgv,
  serviceUnitOf,
  type ScopeProbe,
} from '../../../../src/resources/engine/own-scope.js';

const probe = (cgroup: string | undefined, o: Partial<ScopeProbe> = {}): ScopeProbe => ({
  cgroup: () => cgroup,
  systemdBooted: () => true,
  systemdRun: () => '/usr/bin/systemd-run',
  ...o,
});
const ARGV = ['/usr/lib/awg/node', '/usr/lib/awg/app/bin/awg.js', 'engine', '--link', 'awg-home'];

describe('serviceUnitOf', () => {
  it('names the service of the unified line, and of systemd’s own on hybrid hosts', () => {
    expect(serviceUnitOf('0::/system.slice/awg-apply.service\n')).toBe('awg-apply.service');
    expect(serviceUnitOf('9:name=systemd:/system.slice/cron.service\n4:memory:/\n0::/\n')).toBe(
      'cron.service',
    );
    // a container booted unified under a hybrid host: the host's v1 lines say `/`
    expect(serviceUnitOf('9:name=systemd:/\n4:memory:/\n0::/system.slice/run-u20.service\n')).toBe(
      'run-u20.service',
    );
  });
  it('is undefined in a session scope, a slice or outside systemd', () => {
    expect(serviceUnitOf('0::/user.slice/user-0.slice/session-3.scope\n')).toBeUndefined();
    expect(serviceUnitOf('0::/system.slice\n')).toBeUndefined();
    expect(serviceUnitOf('0::/\n')).toBeUndefined();
    expect(serviceUnitOf('')).toBeUndefined();
  });
});

describe('engineArgv', () => {
  it('wraps the engine in a scope of its own when started from a service', () => {
    expect(engineArgv(ARGV, 'awg engine home', probe('0::/system.slice/run-u7.service\n'))).toEqual(
      [
        '/usr/bin/systemd-run',
        '--scope',
        '--quiet',
        '--collect',
        '--description=awg engine home',
        '--',
        ...ARGV,
      ],
    );
  });
  it('leaves it as it is from a session scope, without systemd, or without systemd-run', () => {
    const session = '0::/user.slice/user-0.slice/session-1.scope\n';
    const service = '0::/system.slice/x.service\n';
    expect(engineArgv(ARGV, 'd', probe(session))).toEqual(ARGV);
    expect(engineArgv(ARGV, 'd', probe(service, { systemdBooted: () => false }))).toEqual(ARGV);
    expect(engineArgv(ARGV, 'd', probe(service, { systemdRun: () => undefined }))).toEqual(ARGV);
    expect(engineArgv(ARGV, 'd', probe(undefined))).toEqual(ARGV);
  });
});
