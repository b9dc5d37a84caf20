/**
 * docs/security.md stays true to the code: the per-RPC table is GROUP_POLICY, the unit's
 * capability table is daemonCapabilities(), and the denial it quotes is the one ApiGate gives.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GROUP_POLICY, type GroupRule, type Rpc } from '../../../src/daemon/authz.js';
import { ApiGate } from '../../../src/daemon/server.js';
import { realFileView } from '../../../src/daemon/trusted-path.js';
import { linuxCallerNatives } from '../../../src/native/peercred.js';
import { daemonCapabilities } from '../../../src/resources/service/render.js';

const doc = readFileSync(new URL('../../../docs/security.md', import.meta.url), 'utf8');

/** rows of the first markdown table after `heading` whose header starts with `first` */
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

const WORDS: Record<GroupRule, string> = {
  allowed: 'yes',
  'trusted-files': 'trusted config only',
  'own-apply': 'its own Apply only',
  'own-process': 'its own processes only',
  denied: 'no',
};

describe('docs/security.md', () => {
  it('the per-RPC table is GROUP_POLICY: root everything, others nothing', () => {
    const rows = table('RPC');
    expect(rows.map((r) => r[0]).sort()).toEqual(Object.keys(GROUP_POLICY).sort());
    for (const [rpc, root, group, others] of rows) {
      expect([rpc, root, group, others]).toEqual([
        rpc,
        'yes',
        WORDS[GROUP_POLICY[rpc as Rpc]],
        'no',
      ]);
    }
  });

  it('the capability table is daemonCapabilities() (with the socket group), reasons included', () => {
    const rows = table('capability');
    const caps = daemonCapabilities({ socketGroup: 'awg' });
    expect(rows.map((r) => r[0])).toEqual(caps.map((c) => c.cap));
    const plain = (s: string) => s.replace(/`/g, '').replace(/^only with --socket-group: /, '');
    for (const c of caps) expect(plain(rows.find((r) => r[0] === c.cap)![1]!)).toBe(plain(c.why));
  });

  it('the denial it quotes is what the daemon says', async () => {
    const g = new ApiGate(
      { selfUid: 0, groupGid: 990 },
      undefined,
      realFileView(linuxCallerNatives.acl),
    );
    g.peers.set('p', { pid: 4242, uid: 1001, gid: 1001, groups: [990] });
    const e = await g.authorize('Down', { getPeer: () => 'p' }).then(
      () => undefined,
      (x: unknown) => x as { kind: string; message: string; hint: string },
    );
    expect(doc).toContain(`awg: error [${e!.kind}]: ${e!.message}\nhint: ${e!.hint}\n`);
  });
});
