import { describe, expect, it } from 'vitest';
import {
  classifyLaunchctl,
  launchctlArgs,
  parseLaunchctlList,
  parseLaunchctlPrint,
} from '../../../src/platform/darwin/launchctl.js';
import { renderDaemonPlist } from '../../../src/platform/darwin/plist.js';
import { decodeRouteMessage, splitRouteMessages } from '../../../src/platform/darwin/rtmsg.js';
import { parseSysctl, parseSysctlError } from '../../../src/platform/darwin/sysctl.js';
import {
  afHeader,
  CTLIOCGINFO,
  sockaddrCtl,
  stripAfHeader,
  utunUnit,
} from '../../../src/native/darwin/utun-abi.js';
import { bytes, fixture, sections } from './fixtures.js';
import { golden } from './helpers.js';

describe('launchctl print', () => {
  it('running KeepAlive agent (macOS 27): pid, state, never exited; nested LWCR skipped', () => {
    const p = parseLaunchctlPrint(
      fixture('launchd/launchctl-print-gui-running-keepalive-macos27.txt'),
    )!;
    expect(p).toMatchObject({
      target: 'gui/501/com.X.ddc-brightnessd',
      state: 'running',
      jobState: 'running',
      pid: 1076,
      lastExitCode: 'never',
      type: 'LaunchAgent',
      runs: 1,
      program: '/Users/X/.local/bin/ddc-brightnessd',
    });
    expect(p.properties).toEqual([
      'keepalive',
      'runatload',
      'inferred program',
      'managed LWCR',
      'has LWCR',
    ]);
    // keys of nested blocks (coalitions, environment) must not overwrite top-level ones
    expect(p.fields['state']).toBe('running');
    expect(p.fields['name']).toBeUndefined();
    expect(p.fields['"vers"']).toBeUndefined();
  });

  it('interval job exited (macOS 27): no pid, last exit code 0', () => {
    const p = parseLaunchctlPrint(
      fixture('launchd/launchctl-print-gui-interval-exited-macos27.txt'),
    )!;
    expect(p).toMatchObject({
      state: 'not running',
      jobState: 'exited',
      lastExitCode: 0,
      runs: 18,
    });
    expect(p.pid).toBeUndefined();
    expect(p.fields['run interval']).toBe('900 seconds');
  });

  it('10.10 system daemon (4-space indent, truncated)', () => {
    const p = parseLaunchctlPrint(
      fixture('launchd/launchctl-print-system-daemon-10.10-boxen-TRUNCATED.txt'),
    )!;
    expect(p).toMatchObject({
      target: 'dev.mysql',
      state: 'running',
      pid: 24784,
      lastExitCode: 1,
      path: '/Library/LaunchDaemons/dev.mysql.plist',
      runs: 2,
    });
    expect(p.fields['domain']).toBe('com.apple.xpc.launchd.domain.system');
  });

  it('exit code with reason text', () => {
    expect(
      parseLaunchctlPrint(
        'system/com.awg.daemon = {\n\tstate = not running\n\tlast exit code = 78: EX_CONFIG\n}\n',
      ),
    ).toMatchObject({ lastExitCode: 78, lastExitReason: 'EX_CONFIG' });
  });

  it('not found → not-loaded (exit 113)', () => {
    const t = fixture('launchd/launchctl-print-not-found-stderr-macos27.txt');
    expect(parseLaunchctlPrint(t)).toBeUndefined();
    expect(classifyLaunchctl(113, t)).toEqual({
      kind: 'not-loaded',
      message: 'Bad request. Could not find service "com.X.nope" in domain for user gui: 501',
    });
    expect(
      classifyLaunchctl(
        113,
        fixture('launchd/launchctl-kickstart-service-not-found-gui-domain.txt'),
      ).kind,
    ).toBe('not-loaded');
  });
});

describe('launchctl error mapping', () => {
  it('bootout ESRCH and EIO', () => {
    const s = sections('launchd/launchctl-bootout-esrch-and-eio-nix-installer.txt');
    const [esrch, eio] = [...s.values()];
    expect(classifyLaunchctl(3, esrch!.text)).toEqual({
      kind: 'not-loaded',
      message: 'No such process',
    });
    expect(classifyLaunchctl(5, eio!.text)).toEqual({
      kind: 'io-error',
      message: 'Input/output error',
    });
    expect(
      classifyLaunchctl(
        3,
        fixture('launchd/launchctl-bootout-nonexistent-user-domain-home-manager.txt'),
      ).kind,
    ).toBe('not-loaded');
  });

  it('bootout of a missing plist path', () => {
    expect(
      classifyLaunchctl(2, fixture('launchd/launchctl-bootout-missing-plist-nix-installer.txt')),
    ).toEqual({ kind: 'no-such-file', message: 'No such file or directory' });
  });

  it('bootstrap EIO as root and non-root; legacy load/unload wording', () => {
    for (const f of [
      'launchctl-bootstrap-system-eio-15.1-mip.txt',
      'launchctl-bootstrap-system-eio-nix-installer.txt',
      'launchctl-bootstrap-gui-eio-nonroot-noclamshell.txt',
      'launchctl-load-legacy-eio-monterey.txt',
    ]) {
      expect(classifyLaunchctl(5, fixture(`launchd/${f}`))).toEqual({
        kind: 'io-error',
        message: 'Input/output error',
      });
    }
    for (const v of sections('launchd/launchctl-unload-legacy-eio-sonoma-14.4.1.txt').values())
      expect(classifyLaunchctl(5, v.text).kind).toBe('io-error');
  });

  it('usage error (64) and silent success (0)', () => {
    const t = fixture('launchd/launchctl-bootout-wait-usage-error-15.7.9.txt');
    const usage = t.split('$ echo $?')[0]!.split('\n').slice(1).join('\n');
    expect(classifyLaunchctl(64, usage).kind).toBe('usage');
    expect(classifyLaunchctl(0, '')).toEqual({ kind: 'ok' });
  });

  it('launchctl list', () => {
    const l = parseLaunchctlList(fixture('launchd/launchctl-list-elcapitan-lunchy.txt'));
    expect(l).toHaveLength(34);
    expect(l[0]).toEqual({ status: 0, label: 'com.apple.CoreAuthentication.daemon' });
    expect(l.find((e) => e.label === 'com.apple.Finder')).toEqual({
      pid: 279,
      status: 0,
      label: 'com.apple.Finder',
    });
  });

  it('command lines', () => {
    expect(launchctlArgs.bootstrap('com.awg.daemon')).toEqual([
      'bootstrap',
      'system',
      '/Library/LaunchDaemons/com.awg.daemon.plist',
    ]);
    expect(launchctlArgs.bootout('com.awg.daemon')).toEqual(['bootout', 'system/com.awg.daemon']);
    expect(launchctlArgs.kickstart('com.awg.daemon')).toEqual([
      'kickstart',
      '-k',
      'system/com.awg.daemon',
    ]);
  });
});

describe('launchd plist', () => {
  it('golden', () => {
    golden(
      'com.awg.daemon.plist',
      renderDaemonPlist({
        programArguments: [
          '/usr/local/bin/node',
          '/usr/local/lib/awg/bin/awg.js',
          'daemon',
          '--config',
          '/etc/awg/config.yaml',
          '--socket',
          '/var/run/awg/awg.sock',
        ],
        stdoutPath: '/var/log/awg.log',
        stderrPath: '/var/log/awg.log',
        // macOS paths (util/paths.ts): the space stays inside one <string>
        environment: { AWG_STATE_DIR: '/Library/Application Support/awg', NODE_ENV: 'production' },
      }),
    );
  });
  it('escapes XML', () => {
    expect(renderDaemonPlist({ programArguments: ['/a&b', '<x>'] })).toContain(
      '<string>/a&amp;b</string>\n\t\t<string>&lt;x&gt;</string>',
    );
    expect(() => renderDaemonPlist({ programArguments: [] })).toThrow();
  });
});

describe('PF_ROUTE rt_msghdr decode', () => {
  it('RTM_ADD with compressed, unpadded trailing netmask (mullvad, 135 bytes)', () => {
    const b = bytes('binary/rtm-add-bytes-mullvad-test-failing-rtmsg.txt');
    expect(b.length).toBe(135);
    const m = decodeRouteMessage(b);
    expect(m).toMatchObject({
      msglen: 135,
      version: 5,
      type: 1,
      typeName: 'RTM_ADD',
      index: 11,
      flags: 0x101,
      flagNames: ['UP', 'CLONING'],
      addrs: 7,
      pid: 0,
      seq: 0,
      errno: 0,
      prefixlen: 24,
    });
    expect(m.sockaddrs.dst).toEqual({ family: 'inet', address: '192.168.88.0' });
    expect(m.sockaddrs.gateway).toEqual({
      family: 'link',
      index: 11,
      type: 6,
      name: '',
      lladdr: '',
    });
    expect(m.sockaddrs.netmask).toEqual({
      family: 'mask',
      bytes: [7, 255, 255, 255, 255, 255, 255],
    });
  });

  it('RTM_DELMADDR ifma_msghdr with unpadded last sockaddr_dl (tailscale #1416)', () => {
    const b = bytes('binary/rtm-delmaddr-hex-tailscale-issue1416.txt');
    const m = decodeRouteMessage(b);
    expect(m).toMatchObject({
      msglen: 50,
      typeName: 'RTM_DELMADDR',
      addrs: 0x30,
      index: 4,
      flags: 0,
    });
    expect(m.sockaddrs.ifp).toEqual({
      family: 'link',
      index: 4,
      type: 6,
      name: 'en0',
      lladdr: 'ac:87:a3:19:7f:82',
    });
    expect(m.sockaddrs.ifa).toEqual({
      family: 'link',
      index: 0,
      type: 0,
      name: '',
      lladdr: '91:e0:f0:01:00:00',
    });
    expect(m.pid).toBeUndefined();
  });

  it('splits concatenated messages and rejects truncation / wrong version', () => {
    const a = bytes('binary/rtm-delmaddr-hex-tailscale-issue1416.txt');
    const both = new Uint8Array([...a, ...a]);
    expect(splitRouteMessages(both).map((x) => decodeRouteMessage(x).typeName)).toEqual([
      'RTM_DELMADDR',
      'RTM_DELMADDR',
    ]);
    expect(() => decodeRouteMessage(a.subarray(0, 40))).toThrow(/truncated/);
    const v4 = new Uint8Array(a);
    v4[2] = 4;
    expect(() => decodeRouteMessage(v4)).toThrow(/rtm_version 4/);
  });
});

describe('sysctl and utun facts', () => {
  it('sysctl read and write forms', () => {
    expect(parseSysctl(fixture('sysctl/sysctl-a-excerpt-10.14.6-jc.txt'))).toContainEqual({
      key: 'net.inet.ip.forwarding',
      value: '0',
    });
    const s = sections('sysctl/sysctl-forwarding-read-and-write.txt');
    expect(parseSysctl(s.get('sudo sysctl -w net.inet.ip.forwarding=1')!.text)).toEqual([
      { key: 'net.inet.ip.forwarding', value: '1', previous: '0' },
    ]);
    expect(parseSysctlError([...s.values()][2]!.text)).toEqual({
      unknownOid: 'net.inet.ip.fw.enable',
      message: "unknown oid 'net.inet.ip.fw.enable'",
    });
  });

  it('utun control constants and AF header', () => {
    expect(CTLIOCGINFO).toBe(0xc0644e03);
    expect(utunUnit('utun4')).toBe(5);
    expect([...sockaddrCtl(7, 5)].slice(0, 12)).toEqual([32, 32, 2, 0, 7, 0, 0, 0, 5, 0, 0, 0]);
    expect([...afHeader(new Uint8Array([0x45, 0]))]).toEqual([0, 0, 0, 2]);
    expect([...afHeader(new Uint8Array([0x60, 0]))]).toEqual([0, 0, 0, 30]);
    const { family, packet } = stripAfHeader(new Uint8Array([0, 0, 0, 30, 0x60, 1]));
    expect(family).toBe(6);
    expect([...packet]).toEqual([0x60, 1]);
    expect(() => stripAfHeader(new Uint8Array([0, 0, 0, 9, 0x45]))).toThrow(/family 9/);
  });
});
