/**
 * What `awg doctor` reads of routes and rules (resources/platform/linux-doctor.ts): over
 * rtnetlink in this process when a reader is there (the same reader the route and rule
 * drivers use, replayed here from replies captured from a kernel: route/netlink-replay.ts),
 * and by `ip -j -N` processes through an Exec that runs elsewhere. Both give the same
 * observation of the same namespace (the fixtures' JSON is what `ip` printed of it at the
 * moment the replies were captured).
 */
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../../../src/model/doctor.js';
import { gatherLinux } from '../../../../src/resources/platform/linux-doctor.js';
import type { Exec } from '../../../../src/util/exec.js';
import { fx, replaying } from '../route/netlink-replay.js';

const CLAIMS = { linkPrefix: 'awg-', routeProtocol: 167, rulePriority: 5200 };

/** an Exec of another host: `ip` route and rule reads answer with the captured JSON, the rest fail */
function remoteExec() {
  const ran: string[] = [];
  const exec: Pick<Exec, 'read'> = {
    read: (cmd, args) => {
      ran.push([cmd, ...args].join(' '));
      const f = args.includes('-6') ? 'v6' : 'v4';
      const file =
        cmd === 'ip' && args.includes('route')
          ? `${f}-all.json`
          : cmd === 'ip' && args.includes('rule')
            ? `${f}-rules.json`
            : undefined;
      return Promise.resolve(
        file
          ? { stdout: fx(file), stderr: '', code: 0 }
          : { stdout: '', stderr: 'not here', code: 1 },
      );
    },
  };
  return { exec, ran };
}

const gather = (exec: Pick<Exec, 'read'>, reader?: ReturnType<typeof replaying>['reader']) =>
  gatherLinux({
    exec,
    claims: CLAIMS,
    root: '/nonexistent-awg-doctor-root',
    systemdBooted: false,
    ...(reader ? { reader } : {}),
  });

describe('awg doctor: routes and rules', () => {
  it('with a netlink reader: no `ip` process for routes or rules, and the observation `ip` would give', async () => {
    const { reader, asked } = replaying();
    const nl = remoteExec();
    const got = await gather(nl.exec, reader);
    expect(nl.ran.filter((c) => /^ip .*(route|rule)/.test(c))).toEqual([]);
    // one route dump and one rule dump per family, one link dump to name the routes' links
    expect(asked.sort()).toEqual(['links', 'v4-routes', 'v4-rules', 'v6-routes', 'v6-rules']);

    const ip = remoteExec();
    const want = await gather(ip.exec);
    expect(ip.ran.filter((c) => /^ip .*(route|rule)/.test(c)).sort()).toEqual([
      'ip -j -N -4 route show table all',
      'ip -j -N -4 rule show',
      'ip -j -N -6 route show table all',
      'ip -j -N -6 rule show',
    ]);
    expect(got.defaultRoutes).toEqual(want.defaultRoutes);
    expect(got.rules).toEqual(want.rules);
    // the captured namespace: main's, table 200's and awg's default routes; main named as `ip` names it
    expect(got.defaultRoutes.filter((r) => r.family === 4)).toEqual([
      { family: 4, dst: 'default', dev: 'awg-t0', table: '52099' },
      { family: 4, dst: 'default', dev: 'd0', table: '200' },
    ]);
    expect(got.rules.find((r) => r.priority === 2150)).toEqual({
      family: 4,
      priority: 2150,
      fwmark: '0x1',
      table: '254',
    });
  });

  it('a netlink read that fails leaves that part out, as a failed `ip` read does', async () => {
    const { reader } = replaying();
    reader.ruleRowsJson = () => {
      throw new Error('EPERM');
    };
    const got = await gather(remoteExec().exec, reader);
    expect(got.rules).toEqual([]);
    expect(got.defaultRoutes.length).toBeGreaterThan(0);
    // the analysis names the check it could not make instead of passing it
    expect(got.unread).toEqual({ routes: [], rules: [4, 6] });
    expect(diagnose(got).skipped).toContain(
      'foreign-fwmark-rule: the IPv4 and IPv6 rules could not be read',
    );
  });

  it('an `ip` that fails or prints something else: that family is unread and its check skipped', async () => {
    const base = remoteExec().exec;
    const exec: Pick<Exec, 'read'> = {
      read: (cmd, args) =>
        cmd === 'ip' && args.includes('route') && args.includes('-6')
          ? Promise.resolve({ stdout: 'not json', stderr: '', code: 0 })
          : base.read(cmd, args),
    };
    const got = await gather(exec);
    expect(got.unread).toEqual({ routes: [6], rules: [] });
    expect(got.defaultRoutes.every((r) => r.family === 4)).toBe(true);
    expect(diagnose(got).skipped).toContain(
      'foreign-default-route: the IPv6 routes could not be read',
    );
    // both families read: nothing unread
    expect((await gather(remoteExec().exec)).unread).toBeUndefined();
  });
});
