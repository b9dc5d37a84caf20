/**
 * Roaming on the macOS host model: the Mac joins another Wi-Fi network (new address, gateway
 * and connected route on en0) while the tunnel is up. The endpoint's bypass route must follow
 * the new gateway, or the tunnel's own packets go into the tunnel. Verified on the model only.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Change } from '../../../src/model/change.js';
import { ENDPOINT, ENDPOINT_UDP, macConfig, Rig } from '../../helpers/macos-host/scenario.js';
import { pfVerdict } from '../../helpers/macos-host/pf-eval.js';

describe('macOS host model: roaming to another network', () => {
  const rigs: Rig[] = [];
  afterEach(() => {
    for (const r of rigs.splice(0)) r.cleanup();
  });

  it('the endpoint bypass follows the new default gateway; down restores the new network as it is', async () => {
    const r = new Rig();
    rigs.push(r);
    expect((await r.apply()).ctx.outcome).toBe('converged');
    const h = r.host;
    // configd moves en0 to 10.0.0.0/24: the old network's routes go, the new ones come; our
    // static host route via the old gateway stays (the kernel does not remove it)
    h.interfaces.get('en0')!.inet = [{ address: '10.0.0.23', prefixlen: 24 }];
    h.routes = h.routes.filter(
      (x) =>
        x.netif !== 'en0' ||
        x.dst === `${ENDPOINT}/32` ||
        x.dst === '169.254.0.0/16' ||
        x.dst === '224.0.0.0/4' ||
        x.dst === '255.255.255.255/32',
    );
    h.routes.push(
      {
        family: 4,
        dst: '0.0.0.0/0',
        gateway: '10.0.0.1',
        flags: 'UGScg',
        netif: 'en0',
        system: true,
      },
      {
        family: 4,
        dst: '0.0.0.0/0',
        gateway: '10.0.0.1',
        flags: 'UGScIg',
        netif: 'en0',
        system: true,
      },
      {
        family: 4,
        dst: '10.0.0.0/24',
        gateway: 'link#11',
        flags: 'UCS',
        netif: 'en0',
        system: true,
        expire: '!',
      },
    );
    const network = () => h.routes.filter((x) => x.netif === 'en0' && x.dst !== `${ENDPOINT}/32`);
    const moved = JSON.stringify(network());
    const drift = await r.diff();
    expect(drift.map((c) => `${c.action} ${c.id}`)).toContainEqual(
      expect.stringMatching(new RegExp(`route/v4/table-254/${ENDPOINT.replace(/\./g, '\\.')}/32`)),
    );
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect(h.routes.filter((x) => x.dst === `${ENDPOINT}/32`)).toEqual([
      expect.objectContaining({ gateway: '10.0.0.1', netif: 'en0' }),
    ]);
    expect(await r.diff()).toEqual([]);
    await r.down();
    expect(JSON.stringify(network())).toBe(moved);
    expect(
      h.routes.filter((x) => x.dst === `${ENDPOINT}/32` || x.netif.startsWith('utun')),
    ).toEqual([]);
    expect([...h.interfaces.keys()].filter((n) => n.startsWith('utun'))).toEqual([]);
    expect({ enabled: h.pf.enabled, hooked: h.pf.main.some((l) => l.includes('com.awg')) }).toEqual(
      { enabled: false, hooked: false },
    );
    expect(h.services[0]!.dns).toEqual([]);
  });

  it('an endpoint on the connected LAN (a server at home) gets no bypass: its link route takes it on-link; joining another network, it gets one via the new gateway', async () => {
    const lan = '192.168.1.60';
    const r = new Rig(macConfig().replace(`endpoint: ${ENDPOINT}:`, `endpoint: ${lan}:`));
    rigs.push(r);
    const h = r.host;
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect(h.routes.filter((x) => x.dst === `${lan}/32`)).toEqual([]);
    // on-link, not into the tunnel (0/1) and not via the router (192.168.1.1)
    expect(h.lookup(lan)).toMatchObject({
      dst: '192.168.1.0/24',
      gateway: 'link#11',
      netif: 'en0',
    });
    expect(h.lookup('93.184.216.34')?.netif).toBe('utun0');
    expect(pfVerdict(h, { ...ENDPOINT_UDP, dst: lan })).toBe('pass'); // the kill switch lets the endpoint through
    expect(await r.diff()).toEqual([]);

    // the Mac moves to 10.0.0.0/24: the old LAN is gone, so the endpoint needs its bypass now
    h.interfaces.get('en0')!.inet = [{ address: '10.0.0.23', prefixlen: 24 }];
    h.routes = h.routes.filter(
      (x) =>
        x.netif !== 'en0' ||
        x.dst === '169.254.0.0/16' ||
        x.dst === '224.0.0.0/4' ||
        x.dst === '255.255.255.255/32',
    );
    h.routes.push(
      {
        family: 4,
        dst: '0.0.0.0/0',
        gateway: '10.0.0.1',
        flags: 'UGScg',
        netif: 'en0',
        system: true,
      },
      {
        family: 4,
        dst: '0.0.0.0/0',
        gateway: '10.0.0.1',
        flags: 'UGScIg',
        netif: 'en0',
        system: true,
      },
      {
        family: 4,
        dst: '10.0.0.0/24',
        gateway: 'link#11',
        flags: 'UCS',
        netif: 'en0',
        system: true,
        expire: '!',
      },
    );
    expect(h.lookup(lan)?.netif).toBe('utun0'); // until the next run: into the tunnel
    expect((await r.diff()).map((c) => `${c.action} ${c.id}`)).toEqual([
      `create route/v4/table-254/${lan}/32/metric-0`,
    ]);
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect(h.lookup(lan)).toMatchObject({ gateway: '10.0.0.1', netif: 'en0' });
    await r.down();
    expect(h.routes.filter((x) => x.dst === `${lan}/32` || x.netif.startsWith('utun'))).toEqual([]);
  });

  it('a changed endpoint: its new bypass is in place before the engine is told, and the old one goes only after (make before break)', async () => {
    const moved = '198.51.100.9';
    const r = new Rig();
    rigs.push(r);
    const h = r.host;
    expect((await r.apply()).ctx.outcome).toBe('converged');
    // at every step of the next apply, the endpoint the engine sends to has its bypass: never
    // a moment where its packets follow 0/1 into its own utun
    const bypassed = () =>
      new Set(
        h.routes
          .filter((x) => x.netif === 'en0' && x.gateway === '192.168.1.1' && x.dst.endsWith('/32'))
          .map((x) => x.dst.slice(0, -3)),
      );
    const steps: string[] = [];
    const apply = r.engines.apply.bind(r.engines);
    r.engines.apply = async (c: Change<'engine'>, ctx) => {
      const to =
        c.after && 'peers' in c.after.config
          ? c.after.config.peers.map((p) => p.endpoint?.split(':')[0])
          : [];
      steps.push(`engine → ${to?.join(',')} (bypassed: ${[...bypassed()].sort().join(',')})`);
      return apply(c, ctx);
    };
    const mark = h.log.length;
    r.write(macConfig().replace(`endpoint: ${ENDPOINT}:`, `endpoint: ${moved}:`));
    expect((await r.apply()).ctx.outcome).toBe('converged');
    const routeLines = h.log
      .slice(mark)
      .filter((l) => l.kind === 'mutate' && /^route /.test(l.line))
      .map((l) => l.line);
    expect(steps).toEqual([`engine → ${moved} (bypassed: ${[ENDPOINT, moved].sort().join(',')})`]);
    expect(routeLines.findIndex((l) => l.includes(`add`) && l.includes(moved))).toBeLessThan(
      routeLines.findIndex((l) => l.includes('delete') && l.includes(ENDPOINT)),
    );
    expect([...bypassed()]).toEqual([moved]);
    expect(await r.diff()).toEqual([]);
    await r.down();
    expect(
      h.routes.filter((x) => x.dst.startsWith('198.51.100.') || x.netif.startsWith('utun')),
    ).toEqual([]);
  });
});
