/**
 * docs/api.md stays true to the code: its authorisation table is each route's RPC under
 * GROUP_POLICY and LOCKED_RPCS, and every route of ROUTES has its row.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GROUP_POLICY, GROUP_RULE_TEXT, LOCKED_RPCS, type Rpc } from '../../../src/daemon/authz.js';
import { ROUTES } from '../../../src/daemon/http/routes.js';

const doc = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8');

function table(first: string): string[][] {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`| ${first} |`));
  expect(start, `a table starting with "| ${first} |"`).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    rows.push(
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

describe('docs/api.md', () => {
  it('the authorisation table: each route with its RPC’s rule, --locked included', () => {
    const rows = table('route');
    for (const [route, rpc, root, group, others, locked] of rows) {
      expect(Object.keys(GROUP_POLICY), route).toContain(rpc);
      const l = LOCKED_RPCS[rpc as Rpc];
      expect([route, rpc, root, group, others, locked]).toEqual([
        route,
        rpc,
        'yes',
        GROUP_RULE_TEXT[GROUP_POLICY[rpc as Rpc]],
        'no',
        l ? `refused (${l})` : 'served',
      ]);
    }
    for (const r of ROUTES)
      expect(rows.find((x) => x[0] === `${r.method} ${r.path}`)?.[1], `${r.method} ${r.path}`).toBe(
        r.rpc,
      );
  });

  it('the routes table lists every route with its RPC', () => {
    const rows = table('method');
    for (const r of ROUTES)
      expect(
        rows.find((x) => x[0] === r.method && x[1] === r.path)?.[2],
        `${r.method} ${r.path}`,
      ).toBe(r.rpc);
  });
});
