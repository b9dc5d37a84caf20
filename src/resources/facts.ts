/** Host facts the desired model depends on, probed cheaply before planning. */
import { readFile } from 'node:fs/promises';
import type { HostFacts } from '../model/desired.js';

/** nft resolves `socket cgroupv2` paths relative to /sys/fs/cgroup. */
export async function probeHostFacts(): Promise<HostFacts> {
  let mountinfo = '';
  try {
    mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return { cgroupNftPrefix: '' };
  }
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post?.startsWith('cgroup2 ')) continue;
    const mountPoint = pre!.split(' ')[4] ?? '';
    if (mountPoint === '/sys/fs/cgroup') return { cgroupNftPrefix: '' };
    if (mountPoint.startsWith('/sys/fs/cgroup/')) return { cgroupNftPrefix: mountPoint.slice('/sys/fs/cgroup/'.length) };
  }
  return { cgroupNftPrefix: '' };
}
