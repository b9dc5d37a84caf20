/**
 * procs/explain.ts: HOST:PORT parsing, the flatpak id of a .flatpak-info, where the process
 * sits (rule, exec, limit, root, outside: the host's root cgroup is not ours), and how a name
 * is resolved (the learned book first).
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { explainPid, flatpakId, parseTarget, type ExplainEnv } from '../../../src/procs/explain.js';

const config = Config.parse({
  version: 1,
  rules: [
    { name: 'web', match: { name: 'firefox' }, target: 'direct' },
    { name: 'rest', match: { dir: '/' }, target: 'block' },
  ],
});

const env = (cgroup: string, o: Partial<ExplainEnv> = {}): ExplainEnv => ({
  source: 'direct',
  config,
  destinations: new Map(),
  tunnelUp: () => true,
  cgroupRoot: 'awg',
  readSubject: () => ({ exe: '/usr/bin/firefox', uid: 1000, cgroup }),
  resolve: async () => ['192.0.2.1'],
  ...o,
});
const req = { pid: 5, host: '192.0.2.1', port: 443, proto: 'tcp' as const };

describe('procs/explain', () => {
  it('parseTarget: host:port, [v6]:port; anything else is refused', () => {
    expect(parseTarget('example.org:443')).toEqual({ host: 'example.org', port: 443 });
    expect(parseTarget('[2001:db8::1]:53')).toEqual({ host: '2001:db8::1', port: 53 });
    for (const bad of ['example.org', '2001:db8::1:53', 'a:65536', ':1', 'a:'])
      expect(() => parseTarget(bad), bad).toThrow(/HOST:PORT/);
  });

  it('flatpakId: [Application] name=', () => {
    expect(flatpakId('[Application]\nname=org.mozilla.firefox\nruntime=x\n')).toBe(
      'org.mozilla.firefox',
    );
    expect(flatpakId('[Runtime]\nname=org.freedesktop.Platform\n')).toBeUndefined();
  });

  it('where the process sits decides the program part, not the executable', async () => {
    const rule = (await explainPid(req, env('/awg/rest'))).decision;
    expect(rule).toMatchObject({ rule: 'rest', route: 'blocked' });
    const limited = await explainPid(req, env('/awg/web/_limit-9'));
    expect(limited.decision).toMatchObject({ rule: 'web', route: 'direct' });
    expect(limited.decision.why).toContain('runtime limit of pid 9');
    const exec = await explainPid(req, env('/awg/_exec-direct'));
    expect(exec.decision).toMatchObject({ rule: '_exec-direct' });
    // the host's root cgroup and a user session: outside ours, no program rule holds
    for (const cg of ['/', '/user.slice/session-2.scope']) {
      const e = await explainPid(req, env(cg));
      expect(e.steps[0]!.program.why, cg).toContain("the process is not in awg's cgroups");
      expect(e.decision, cg).toEqual({ route: 'direct', why: 'no rule fits; default direct' });
    }
    // awg's own root (a process no rule holds any more)
    const root = await explainPid(req, env('/awg'));
    expect(root.steps[0]!.program.why).toContain('the process sits in awg (no rule');
  });

  it('a name: the learned book first, else the resolver; the others are listed', async () => {
    const asked: string[] = [];
    const resolve = async (h: string) => {
      asked.push(h);
      return ['198.51.100.1', '198.51.100.2'];
    };
    const learned = await explainPid(
      { ...req, host: 'www.example.net' },
      env('/awg/web', { learnedAddrs: () => ['203.0.113.7'], resolve }),
    );
    expect(learned.destination).toMatchObject({ addr: '203.0.113.7', resolvedBy: 'learned' });
    expect(asked).toEqual([]);
    const sys = await explainPid({ ...req, host: 'x.test' }, env('/awg/web', { resolve }));
    expect(sys.destination).toMatchObject({
      addr: '198.51.100.1',
      resolvedBy: 'getaddrinfo',
      others: ['198.51.100.2'],
    });
    await expect(
      explainPid({ ...req, host: 'x.test' }, env('/awg/web', { resolve: async () => [] })),
    ).rejects.toThrow('x.test has no address');
  });
});
