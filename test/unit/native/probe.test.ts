import { describe, expect, it } from 'vitest';
import {
  findCgroup2Mount,
  kernelAtLeast,
  parseKernelRelease,
  requireFeatures,
} from '../../../src/native/probe.js';
import { ifreq, ifreqName, validIfName } from '../../../src/native/tun.js';

describe('feature probes', () => {
  it('parses kernel releases and compares versions', () => {
    const v = parseKernelRelease('6.18.44-fc-v769')!;
    expect(v).toEqual({ major: 6, minor: 18, patch: 44 });
    expect(kernelAtLeast(v, 5, 13)).toBe(true);
    expect(kernelAtLeast(parseKernelRelease('5.10.0-28-amd64')!, 5, 13)).toBe(false);
    expect(kernelAtLeast(parseKernelRelease('5.13')!, 5, 13)).toBe(true);
    expect(parseKernelRelease('garbage')).toBeUndefined();
  });

  it('finds the cgroup2 mount on hybrid and pure hosts', () => {
    expect(
      findCgroup2Mount(
        'cgroup on /sys/fs/cgroup/cpu type cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n',
      ),
    ).toBe('/sys/fs/cgroup/unified');
    expect(findCgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0')).toBe('/sys/fs/cgroup');
    expect(findCgroup2Mount('')).toBeUndefined();
  });

  it('fails with unsupported for old kernels', () => {
    const f = { kernel: '5.10.0', socketCgroupv2: false, tun: true, tunFeatures: 0x7173 };
    expect(() => requireFeatures(f, { socketCgroupv2: true })).toThrow(/5\.13/);
    expect(() => requireFeatures(f, { tun: true })).not.toThrow();
  });
});

describe('ifreq', () => {
  it('lays out name and LE flags at 16 in 40 bytes', () => {
    const b = ifreq('awg-x', 0x1001);
    expect(b.length).toBe(40);
    expect(ifreqName(b)).toBe('awg-x');
    expect(b.readUInt16LE(16)).toBe(0x1001);
  });
  it('validates interface names', () => {
    expect(validIfName('awg-abcdefghijk')).toBe(true);
    expect(validIfName('awg-abcdefghijkl')).toBe(false);
    expect(validIfName('a/b')).toBe(false);
    expect(() => ifreq('awg-this-is-too-long')).toThrow();
  });
});
