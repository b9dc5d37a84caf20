/**
 * An in-memory systemd-resolved behind `busctl` (the subset the DNS driver speaks), as an Exec:
 * NameHasOwner, the Link object's DNS/Domains/DefaultRoute, the Manager's SetLinkDNS,
 * SetLinkDomains, SetLinkDefaultRoute and RevertLink. Values are answered in systemd 252's
 * `--json=short` form (test/fixtures/linux/dns/busctl-*.jsonl are captured from one), including
 * its quirk that DefaultRoute reads `false` for a link without servers.
 */
import type { Exec, ExecOptions, ExecResult } from '../../src/util/exec.js';
import { AwgError } from '../../src/errors.js';
import ipaddr from '../../src/util/ipaddr.js';

interface LinkState {
  dns: [number, number[]][];
  domains: [string, boolean][];
  defaultRoute?: boolean;
}

export class FakeResolvedBus implements Exec {
  readonly dryRun = false;
  /** `busctl` argument lists of the mutations, in order */
  readonly calls: string[][] = [];
  /** resolved owns its bus name */
  running = true;
  readonly links = new Map<number, LinkState>();

  get mutations(): number {
    return this.calls.length;
  }

  link(idx: number): LinkState {
    let l = this.links.get(idx);
    if (!l) this.links.set(idx, (l = { dns: [], domains: [] }));
    return l;
  }

  /** what `resolvectl status` would show for the link, as a spec-like record */
  view(idx: number): { servers: string[]; domains: string[]; defaultRoute: boolean | undefined } {
    const l = this.link(idx);
    return {
      servers: l.dns.map(([, b]) => ipaddr.fromByteArray(b).toString()),
      domains: l.domains.map(([n, r]) => (r ? `~${n}` : n)),
      defaultRoute: l.defaultRoute,
    };
  }

  private ok(stdout = ''): ExecResult {
    return { code: 0, stdout, stderr: '' };
  }
  private fail(stderr: string): ExecResult {
    return { code: 1, stdout: '', stderr };
  }

  read(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = this.answer(cmd, args);
    if (r.code !== 0 && !opts.allowFail) return Promise.reject(new AwgError('driver', r.stderr));
    return Promise.resolve(r);
  }

  mutate(cmd: string, args: string[]): Promise<ExecResult> {
    this.calls.push(args);
    const r = this.answer(cmd, args);
    if (r.code !== 0) return Promise.reject(new AwgError('driver', r.stderr));
    return Promise.resolve(r);
  }

  record(): boolean {
    return true;
  }

  private answer(cmd: string, args: string[]): ExecResult {
    if (cmd !== 'busctl') return this.fail(`${cmd}: not in this fake`);
    if (args[0] === 'call' && args[4] === 'NameHasOwner')
      return this.ok(`b ${this.running ? 'true' : 'false'}\n`);
    if (!this.running) return this.fail('Unit dbus-org.freedesktop.resolve1.service not found.');
    if (args[0] === '--json=short' && args[1] === 'get-property') {
      // `_3` escapes the ifindex's leading digit (0x30 + d)
      const idx = Number((args[3] ?? '').split('/link/_3')[1]);
      const l = this.links.get(idx);
      if (!l) return this.fail(`Unknown object '${args[3]}'.`);
      const route = l.dns.length ? (l.defaultRoute ?? !l.domains.some(([, r]) => r)) : false;
      return this.ok(
        [
          { type: 'a(iay)', data: l.dns },
          { type: 'a(sb)', data: l.domains },
          { type: 'b', data: route },
        ]
          .map((v) => JSON.stringify(v))
          .join('\n') + '\n',
      );
    }
    if (args[0] === 'call' && args[3] === 'org.freedesktop.resolve1.Manager') {
      const [method, , idxS, ...rest] = args.slice(4);
      const l = this.link(Number(idxS));
      switch (method) {
        case 'SetLinkDefaultRoute':
          l.defaultRoute = rest[0] === 'true';
          break;
        case 'SetLinkDomains': {
          l.domains = [];
          for (let i = 1; i < rest.length; i += 2)
            l.domains.push([rest[i]!, rest[i + 1] === 'true']);
          break;
        }
        case 'SetLinkDNS': {
          l.dns = [];
          let i = 1;
          while (i < rest.length) {
            const fam = Number(rest[i]);
            const len = Number(rest[i + 1]);
            l.dns.push([fam, rest.slice(i + 2, i + 2 + len).map(Number)]);
            i += 2 + len;
          }
          break;
        }
        case 'RevertLink':
          this.links.set(Number(idxS), { dns: [], domains: [] });
          break;
        default:
          return this.fail(`unknown method ${method}`);
      }
      return this.ok();
    }
    return this.fail(`busctl ${args.join(' ')}: not in this fake`);
  }
}
