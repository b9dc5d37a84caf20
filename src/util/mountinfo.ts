/**
 * /proc/self/mountinfo, parsed (proc(5)): one entry per mount, in the kernel's order. Pure.
 * Paths come unescaped (the kernel writes space, tab, newline and backslash as \ooo).
 */

export interface Mount {
  /** major:minor of the file system (one per super block) */
  dev: string;
  /** the directory of the file system that is mounted here (a bind mount's source) */
  root: string;
  mountPoint: string;
  /** per-mount options (`rw`, `noexec`, …) */
  options: string[];
  fsType: string;
}

const unescape = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    if (pre.length < 6 || !post[0]) continue;
    out.push({
      dev: pre[2]!,
      root: unescape(pre[3]!),
      mountPoint: unescape(pre[4]!),
      options: pre[5]!.split(','),
      fsType: post[0],
    });
  }
  return out;
}
