/**
 * Direct-mode `awg status`'s host conditions (pipeline/host-conditions.ts): the routing
 * probed now against the applied record: its engines' endpoints (host names by their last
 * good answers, never looked up), its IPv6 rules, its first route.
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { DEFAULT_FACTS } from '../../../src/model/desired.js';
import { UNROUTED_LINK } from '../../../src/model/unrouted.js';
import { appliedHostConditions } from '../../../src/pipeline/host-conditions.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import { ENDPOINTS_STATE_KEY } from '../../../src/resources/endpoints.js';
import type { RoutingProbe } from '../../../src/resources/facts.js';
import { linuxPlatform } from '../../../src/resources/platform/linux.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { ProcessExec } from '../../../src/util/exec.js';
import { silentReporter } from '../../../src/util/reporter.js';
import { linuxDesired } from '../../helpers/desired.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const config = Config.parse({
  version: 1,
  ipv6: 'tunnel',
  tunnels: {
    t1: {
      type: 'wireguard',
      privateKey: KEY,
      addresses: ['10.9.0.2/32'],
      peers: [
        { publicKey: KEY, endpoint: '192.168.50.1:51820', allowedIPs: ['0.0.0.0/0'] },
        { publicKey: KEY, endpoint: 'vpn.example:51820', allowedIPs: ['10.1.0.0/16'] },
      ],
    },
    p: { type: 'socks5', server: '10.7.0.1', port: 1080 },
  },
});

describe('appliedHostConditions', () => {
  it('asks with the engines’ bypass mark about every endpoint it knows an address of, and reports by the record', async () => {
    const applied = linuxDesired(config, {
      facts: { ...DEFAULT_FACTS, unrouted: { v4: { reach: ['192.168.50.0/24'] } } },
    }).resources;
    const state = new MemoryStateStore();
    state.set(ENDPOINTS_STATE_KEY, {
      version: 1,
      resolvers: [],
      hosts: { 'vpn.example': { addresses: ['10.2.0.9'], at: '2026-01-01T00:00:00.000Z' } },
    });
    const asked: RoutingProbe[] = [];
    const platform = {
      ...linuxPlatform,
      probeRouting: async (_exec: unknown, o: RoutingProbe) => {
        asked.push(o);
        return {
          unrouted: { v4: { reach: ['192.168.50.0/24'] } },
          unreachableEndpoints: [
            { tunnel: 't1', host: 'vpn.example', address: '10.2.0.9', reason: 'No route to host' },
          ],
        };
      },
    };
    const found = await appliedHostConditions(
      platform,
      { exec: new ProcessExec(silentReporter), state, claims: DEFAULT_CLAIMS },
      applied,
    );
    expect(asked).toEqual([
      {
        families: [4, 6],
        band: { tableBase: 52000, rulePriority: 5200, bandSize: 100 },
        bypassMark: 0x0f000000,
        endpoints: [
          { tunnel: 't1', host: '192.168.50.1', address: '192.168.50.1' },
          { tunnel: 't1', host: 'vpn.example', address: '10.2.0.9' },
          { tunnel: 'p', host: '10.7.0.1', address: '10.7.0.1' },
        ],
      },
    ]);
    expect(found.map((h) => h.message)).toEqual([
      `no IPv4 default route in the main table: rules and default with target direct reach only 192.168.50.0/24; tunnelled traffic takes its first route from ${UNROUTED_LINK}`,
      "tunnel t1: endpoint vpn.example (10.2.0.9) unreachable: no route (No route to host); its engine's packets cannot leave this host",
    ]);
  });

  it('nothing applied, or a platform that does not probe routing: nothing', async () => {
    const env = {
      exec: new ProcessExec(silentReporter),
      state: new MemoryStateStore(),
      claims: DEFAULT_CLAIMS,
    };
    expect(await appliedHostConditions(linuxPlatform, env, [])).toEqual([]);
    const { probeRouting: _none, ...darwinLike } = linuxPlatform;
    expect(await appliedHostConditions(darwinLike, env, linuxDesired(config).resources)).toEqual(
      [],
    );
  });
});
