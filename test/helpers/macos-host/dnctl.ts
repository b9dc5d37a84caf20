/** The model's dummynet pipes as `dnctl` lists and configures them. */
import type { ExecResult } from '../../../src/util/exec.js';
import type { MacHost } from './model.js';
import { fail, ok, type MPipe, type Need } from './state.js';

/** C's `%<w>.<p>f` and `%<w>d` (right-aligned), for dnctl's list */
const fmt = (v: number, width: number, prec?: number) =>
  (prec === undefined ? String(v) : v.toFixed(prec)).padStart(width);

/** one pipe as dnctl.c list_pipes/print_flowset_parms/list_queues print it (no flows: the model forwards no packets) */
function dnctlPipeText(nr: number, p: MPipe): string {
  const b = p.bandwidth;
  const bw =
    b === 0
      ? 'unlimited'
      : b >= 1_000_000
        ? `${fmt(b / 1_000_000, 7, 3)} Mbit/s`
        : b >= 1000
          ? `${fmt(b / 1000, 7, 3)} Kbit/s`
          : `${fmt(b, 7, 3)} bit/s `;
  const prefix = `${String(nr).padStart(5, '0')}: ${bw} ${fmt(p.delayMs, 4)} ms `;
  const qs =
    'bytes' in p.queue
      ? p.queue.bytes >= 8192
        ? `${Math.floor(p.queue.bytes / 1024)} KB`
        : `${p.queue.bytes} B`
      : `${fmt(p.queue.slots, 3)} sl.`;
  const plr = p.plr ? `plr ${p.plr.toFixed(6)}` : '';
  return `${prefix} ${qs}${plr} 0 queues (1 buckets) droptail\n    mask: 0x00 0x00000000/0x0000 -> 0x00000000/0x0000\n`;
}

/**
 * `dnctl list`, `dnctl pipe N config …`, `dnctl pipe delete N`, as dnctl.c parses them and
 * xnu's config_pipe/delete_pipe act: a config creates the pipe or reconfigures it, every
 * parameter not given back to its default; a delete of a missing pipe is EINVAL.
 */
export function dnctl(host: MacHost, args: string[], need: Need): ExecResult {
  const s = args.join(' ');
  if (s === 'list' || s === 'show') {
    need('read');
    return ok(
      [...host.pipes]
        .sort(([a], [b]) => a - b)
        .map(([n, p]) => dnctlPipeText(n, p))
        .join(''),
    );
  }
  need('mutate');
  let m: RegExpExecArray | null;
  if ((m = /^pipe delete (\d+)$/.exec(s))) {
    if (!host.pipes.delete(Number(m[1])))
      return fail(`dnctl: rule ${m[1]}: setsockopt(IP_DUMMYNET_DEL): Invalid argument\n`);
    return ok();
  }
  if ((m = /^pipe (\d+) config(.*)$/.exec(s))) {
    const nr = Number(m[1]);
    if (nr === 0) return fail('dnctl: pipe_nr must be > 0\n', 65);
    const p: MPipe = { bandwidth: 0, delayMs: 0, queue: { slots: 50 }, plr: 0 };
    const opts = m[2]!.trim().split(/\s+/).filter(Boolean);
    for (let i = 0; i < opts.length; i += 2) {
      const [k, v] = [opts[i]!, opts[i + 1]];
      if (v === undefined) return fail(`dnctl: ${k} needs argument\n`, 64);
      let q: RegExpExecArray | null;
      if (k === 'bw' && (q = /^(\d+)(K|k|M)?(bit\/s|Byte\/s|B\/s)?$/.exec(v))) {
        const mult = q[2] ? (q[2] === 'M' ? 1e6 : 1e3) : 1;
        const bits = Number(q[1]) * mult * (q[3] && q[3] !== 'bit/s' ? 8 : 1);
        if (bits > 2_147_483_647) return fail('dnctl: bandwidth too large\n', 65);
        p.bandwidth = bits;
      } else if (k === 'queue' && (q = /^(\d+)(Kbytes|B|bytes)?$/.exec(v))) {
        const n = Number(q[1]);
        if (q[2] === 'Kbytes') p.queue = { bytes: n * 1024 };
        else if (q[2]) p.queue = { bytes: n };
        else p.queue = { slots: n };
        if ('bytes' in p.queue && p.queue.bytes > 1024 * 1024)
          return fail('dnctl: queue size must be < 1MB\n', 65);
        if ('slots' in p.queue && p.queue.slots > 100)
          return fail('dnctl: 2 <= queue size <= 100\n', 65);
      } else if (k === 'delay' && /^\d+$/.test(v)) p.delayMs = Number(v);
      else if (k === 'plr' && /^\d*\.?\d+$/.test(v)) p.plr = Math.min(1, Number(v));
      else return fail(`dnctl: unrecognised option \`\`${k}''\n`, 65);
    }
    host.pipes.set(nr, p);
    return ok();
  }
  throw new Error(`macos-host: dnctl ${s}`);
}
