/**
 * `awg service status` on macOS: the states a user sees, from captured `launchctl print`
 * outputs and (no capture exists) `launchctl print-disabled` text built from launchctl(1).
 */
import { describe, expect, it } from 'vitest';
import { parseLaunchctlDisabled } from '../../../src/platform/darwin/launchctl.js';
import { launchdState, userState, type ServiceState } from '../../../src/resources/service/manager.js';
import { fixture } from './fixtures.js';

const running = fixture('launchd/launchctl-print-gui-running-keepalive-macos27.txt');
const exited = fixture('launchd/launchctl-print-gui-interval-exited-macos27.txt');
const notFound = fixture('launchd/launchctl-print-not-found-stderr-macos27.txt');
const base: ServiceState = { state: 'installed', installed: true, path: '/Library/LaunchDaemons/com.awg.daemon.plist', detail: {} };
const DISABLED_NEW = 'disabled services = {\n\t"com.apple.ftp-proxy" => disabled\n\t"com.awg.daemon" => disabled\n}\n';
const ENABLED_NEW = 'disabled services = {\n\t"com.awg.daemon" => enabled\n}\n';
const DISABLED_OLD = 'disabled services = {\n\t"com.awg.daemon" => true\n\t"com.apple.x" => false\n}\n';
const ok = (stdout: string) => ({ code: 0, stdout });

describe('launchctl print-disabled (format from launchctl(1); no capture)', () => {
  it('both spellings', () => {
    expect(parseLaunchctlDisabled(DISABLED_NEW)).toEqual(new Map([['com.apple.ftp-proxy', true], ['com.awg.daemon', true]]));
    expect(parseLaunchctlDisabled(ENABLED_NEW).get('com.awg.daemon')).toBe(false);
    expect(parseLaunchctlDisabled(DISABLED_OLD)).toEqual(new Map([['com.awg.daemon', true], ['com.apple.x', false]]));
  });
});

describe('service states', () => {
  it('running (captured print of a running job): pid and state', () => {
    const st = launchdState(base, ok(ENABLED_NEW), ok(running));
    expect(st).toMatchObject({ state: 'running', active: true, enabled: true, pid: 1076 });
  });
  it('installed, not running (captured exited job)', () => {
    expect(launchdState(base, ok(ENABLED_NEW), ok(exited))).toMatchObject({ state: 'installed', active: false });
  });
  it('installed but not loaded: print fails (captured "Could not find service", exit 113)', () => {
    expect(launchdState(base, ok(''), { code: 113, stdout: notFound })).toMatchObject({ state: 'installed', enabled: false });
  });
  it('needs approval: the label is disabled (Login Items / launchctl disable), whatever print says', () => {
    expect(launchdState(base, ok(DISABLED_NEW), { code: 113, stdout: notFound })).toMatchObject({ state: 'needs-approval', enabled: false });
    expect(launchdState(base, ok(DISABLED_OLD), ok(running)).state).toBe('needs-approval');
  });
  it('outdated: the plist runs another node or awg', () => {
    expect(launchdState({ ...base, outdated: true }, ok(ENABLED_NEW), ok(running)).state).toBe('outdated');
  });
  it('precedence: not installed > needs approval > outdated > running > installed', () => {
    expect(userState({ installed: false, disabled: true, outdated: true, active: true })).toBe('not-installed');
    expect(userState({ installed: true, disabled: true, outdated: true, active: true })).toBe('needs-approval');
    expect(userState({ installed: true, outdated: true, active: true })).toBe('outdated');
    expect(userState({ installed: true, active: true })).toBe('running');
    expect(userState({ installed: true, active: false })).toBe('installed');
  });
});
