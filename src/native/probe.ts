/**
 * Feature probes for the Linux backend. Parsing is pure (`parseKernelRelease`,
 * `kernelAtLeast`); `probeLinux()` reads the system.
 */
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { AwgError } from '../errors.js';
import { tunFeatures, IFF_NO_PI, IFF_TUN } from './tun.js';

export interface KernelVersion {
  major: number;
  minor: number;
  patch: number;
}

/** `6.18.44-fc-v769` → {6,18,44}; undefined when unparsable. */
export function parseKernelRelease(s: string): KernelVersion | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(s.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

export function kernelAtLeast(v: KernelVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** nftables `socket cgroupv2` matching needs Linux 5.13. */
export const SOCKET_CGROUPV2_MIN = { major: 5, minor: 13 } as const;

/** cgroup2 mount point from /proc/self/mounts text (pure). */
export function findCgroup2Mount(mounts: string): string | undefined {
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1]) return f[1].replace(/\\040/g, ' ');
  }
  return undefined;
}

export interface LinuxFeatures {
  kernel: string;
  version?: KernelVersion;
  socketCgroupv2: boolean;
  tun: boolean;
  /** TUNGETFEATURES bitmask, or a negative errno */
  tunFeatures: number;
  cgroup2Mount?: string;
}

export function probeLinux(): LinuxFeatures {
  const kernel = release();
  const version = parseKernelRelease(kernel);
  let mounts = '';
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    /* no /proc */
  }
  const feats = existsSync('/dev/net/tun') ? tunFeatures() : -19;
  const f: LinuxFeatures = {
    kernel,
    socketCgroupv2:
      version !== undefined &&
      kernelAtLeast(version, SOCKET_CGROUPV2_MIN.major, SOCKET_CGROUPV2_MIN.minor),
    tun: feats >= 0 && (feats & (IFF_TUN | IFF_NO_PI)) === (IFF_TUN | IFF_NO_PI),
    tunFeatures: feats,
  };
  if (version) f.version = version;
  const cg = findCgroup2Mount(mounts);
  if (cg) f.cgroup2Mount = cg;
  return f;
}

/** Throws AwgError('unsupported') with a clear message when a required feature is missing. */
export function requireFeatures(
  f: LinuxFeatures,
  need: { tun?: boolean; socketCgroupv2?: boolean },
): void {
  if (need.tun && !f.tun) {
    throw new AwgError(
      'unsupported',
      `TUN devices are not available (/dev/net/tun: ${f.tunFeatures < 0 ? `errno ${-f.tunFeatures}` : 'no IFF_TUN|IFF_NO_PI'})`,
      {
        hint: 'load the tun module or give the container /dev/net/tun',
      },
    );
  }
  if (need.socketCgroupv2 && !f.socketCgroupv2) {
    throw new AwgError(
      'unsupported',
      `per-app routing needs Linux ≥ ${SOCKET_CGROUPV2_MIN.major}.${SOCKET_CGROUPV2_MIN.minor} for nftables "socket cgroupv2" (running ${f.kernel})`,
    );
  }
}
