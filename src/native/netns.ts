/**
 * Run a synchronous function with the calling (main) thread switched into another network
 * namespace. Sockets and TUN devices created inside `fn` belong to that namespace for
 * their whole life (docs/platform-linux.md#network-namespaces). `fn` must be synchronous: no
 * other JS may run while the
 * thread is switched, and the switch is undone in `finally` even when `fn` throws.
 */
import { CLONE_NEWNET, O_CLOEXEC, O_RDONLY, check, close, open, setns } from './libc.js';
import { AwgError } from '../errors.js';

export const NETNS_RUN_DIR = '/var/run/netns';

/** `name` → /var/run/netns/name; absolute paths (e.g. /proc/PID/ns/net) pass through. */
export function netnsPath(ns: string): string {
  if (ns.startsWith('/')) return ns;
  if (!/^[A-Za-z0-9_.-]+$/.test(ns))
    throw new AwgError('invalid-config', `invalid network namespace name ${JSON.stringify(ns)}`);
  return `${NETNS_RUN_DIR}/${ns}`;
}

export function inNetns<T>(ns: string | undefined, fn: () => T): T {
  if (ns === undefined) return fn();
  const target = check('open', open(netnsPath(ns), O_RDONLY | O_CLOEXEC), netnsPath(ns));
  let orig = -1;
  try {
    orig = check(
      'open',
      open('/proc/thread-self/ns/net', O_RDONLY | O_CLOEXEC),
      '/proc/thread-self/ns/net',
    );
    check('setns', setns(target, CLONE_NEWNET), ns);
    let out: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      out = { ok: true, value: fn() };
    } catch (error) {
      out = { ok: false, error };
    }
    // staying in the wrong namespace would silently misdirect every later socket: this wins
    const r = setns(orig, CLONE_NEWNET);
    if (r < 0)
      throw new AwgError(
        'bug',
        `cannot switch back to the original network namespace (errno ${-r})`,
      );
    if (!out.ok) throw out.error;
    return out.value;
  } finally {
    if (orig >= 0) close(orig);
    close(target);
  }
}
