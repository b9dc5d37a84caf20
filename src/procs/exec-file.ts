/**
 * What else an exec opens after the file it names (the exec gate, procs/gate.ts).
 *
 * One execve(2) gives the exec gate one FAN_OPEN_EXEC_PERM event per file the kernel opens
 * for it, in order: the file named (a script or a program), a script's interpreter (from its
 * `#!` line; nested up to the kernel's limit), and the ELF interpreter of a dynamic program
 * (its PT_INTERP, e.g. `/lib64/ld-linux-x86-64.so.2`; docs/platform-linux.md#fanotify). The
 * gate must tell the
 * file named from the files it pulls in: a rule `{dir: /usr/lib}` must not catch every
 * dynamic program through its loader. Pure parsing of a file's head; the caller reads it.
 *
 * Contract:
 * - `#!` line (the kernel reads at most 256 bytes of it): the interpreter is the first word
 *   after `#!` and blanks; none (empty line) → no follow-up.
 * - ELF (32/64-bit, either byte order): the path of the first PT_INTERP program header,
 *   when the header table and the path lie within the bytes given; else no follow-up.
 * - Anything else (or too short): no follow-up. Never throws.
 */

/** bytes of a file's head that cover `#!` lines and the program headers of real binaries */
export const HEAD_BYTES = 4096;

const PT_INTERP = 3;

export type FollowUp =
  { kind: 'script'; interpreter: string } | { kind: 'elf'; interpreter: string };

export function followUpOf(head: Buffer): FollowUp | undefined {
  if (head.length >= 2 && head[0] === 0x23 && head[1] === 0x21) {
    const line = head.subarray(2, Math.min(head.length, 256)).toString('latin1').split('\n')[0]!;
    const word = line.replace(/^[ \t]+/, '').split(/[ \t]/)[0] ?? '';
    return word ? { kind: 'script', interpreter: word } : undefined;
  }
  if (head.length < 52 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = head[4] === 2;
  const le = head[5] === 1;
  const u16 = (o: number) => (le ? head.readUInt16LE(o) : head.readUInt16BE(o));
  const u32 = (o: number) => (le ? head.readUInt32LE(o) : head.readUInt32BE(o));
  const u64 = (o: number) => Number(le ? head.readBigUInt64LE(o) : head.readBigUInt64BE(o));
  if (is64 && head.length < 64) return undefined;
  const phoff = is64 ? u64(0x20) : u32(0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  if (phentsize < (is64 ? 56 : 32)) return undefined;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + phentsize > head.length) return undefined;
    if (u32(ph) !== PT_INTERP) continue;
    const off = is64 ? u64(ph + 8) : u32(ph + 4);
    const size = is64 ? u64(ph + 32) : u32(ph + 16);
    if (size < 2 || off + size > head.length) return undefined;
    const path = head
      .subarray(off, off + size)
      .toString('latin1')
      .replace(/\0.*$/s, '');
    return path.startsWith('/') ? { kind: 'elf', interpreter: path } : undefined;
  }
  return undefined;
}
