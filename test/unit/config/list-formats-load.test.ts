/**
 * List formats through the loader and `awg validate`: a config naming a list of each format
 * reads its destinations (detected, forced with `format:`, a `.dat` category); a broken list
 * of each format fails validation at `file:line:col` (binary formats: line 1, column byte+1)
 * with exit 1; two categories of one `.dat` are two lists.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { loadConfigText } from '../../../src/config/load.js';
import { formatIssue } from '../../../src/errors.js';
import { REPO_ROOT } from '../../helpers/awg.js';
import { geoipEntry } from '../../helpers/list-encoders.js';
import { tempDir } from '../../helpers/tmp.js';

const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PEER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const FIX = join(REPO_ROOT, 'test/fixtures/lists');

const config = (lists: string[]) => `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${PRIV}"
    addresses: [10.0.0.2/32]
    peers:
      - publicKey: "${PEER}"
        endpoint: 192.0.2.1:51820
        allowedIPs: [0.0.0.0/0]
rules:
${lists.map((l, i) => `  - name: r${i}\n    to: {lists: [${l}]}\n    target: vpn\n`).join('')}`;

/** a directory with the config and the lists (a path in the samples, or content) */
function setup(lists: string[], files: Record<string, string | Buffer | { sample: string }>) {
  const dir = tempDir('awg-fmt-');
  for (const [name, v] of Object.entries(files)) {
    if (typeof v === 'object' && 'sample' in v) copyFileSync(join(FIX, v.sample), join(dir, name));
    else writeFileSync(join(dir, name), v);
  }
  const file = join(dir, 'awg.yaml');
  writeFileSync(file, config(lists));
  return { dir, file };
}

async function validate(dir: string, file: string) {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => (out += s), err: (s) => (err += s), colour: false };
  const code = await main(['node', 'awg', 'validate', '-f', file], io);
  return { code, out, err: err.replaceAll(`${dir}/`, '') };
}

describe('list formats in a config', () => {
  it('every sample format gives its rule destinations (detected, forced, a category)', () => {
    const { file } = setup(
      [
        'plain.lst',
        'nf.lst',
        'tg.json',
        'tg.srs',
        'dlc.dat:telegram',
        'ip.dat:ad',
        '{file: ip.dat, category: private, format: geoip}',
      ],
      {
        'plain.lst': { sample: 'plain/refilter-ipsum.head200.lst' },
        'nf.lst': { sample: 'dnsmasq/itdoginfo-inside-dnsmasq-nfset.head200.lst' },
        'tg.json': { sample: 'sing-box/vernette-telegram.json' },
        'tg.srs': { sample: 'srs/vernette-telegram.srs' },
        'dlc.dat': { sample: 'geosite/v2fly-dlc-excerpt.dat' },
        'ip.dat': { sample: 'geoip/v2fly-geoip-ad-private.dat' },
      },
    );
    const r = loadConfigText(readFileSync(file, 'utf8'), file);
    expect(r.issues.map(formatIssue)).toEqual([]);
    const d = (i: number) => r.destinations!.get(`r${i}`)!;
    expect(d(0).counts.cidrs4).toBe(200);
    expect([...d(1).domains.names('domain')]).toContain('ua');
    expect([...d(2).domains.names('domain')].sort()).toEqual(['t.me', 'telegram.org']);
    expect(d(3).v4).toEqual(d(2).v4);
    expect([...d(4).domains.names('domain')]).toContain('telegram.org');
    expect(d(5).counts.cidrs6).toBe(124);
    // the same file, another category: another set (not the cached first one)
    expect(d(6).counts.cidrs4).toBe(14);
    expect(r.listFiles?.filter((f) => f.endsWith('ip.dat'))).toHaveLength(1);
  });

  it('a broken list of each format: validate names file:line:col and exits 1', async () => {
    const broken: [string, string | Buffer | { sample: string }, string][] = [
      [
        'd.conf',
        'server=/a.example/1.1.1.1\naddress=/#/0.0.0.0\n',
        "d.conf:2:10: rules[0].to.lists[0]: address=/#/: '#' is every domain",
      ],
      [
        'rs.json',
        '{"version": 2,\n "rules": [{"domain_suffix": "a.example", "port": 443}]}\n',
        'rs.json:2:43: rules[1].to.lists[0]: port: the rule also depends on the destination port',
      ],
      [
        'd.srs',
        { sample: 'srs/vernette-discord-full.srs' },
        'd.srs:1:173: rules[2].to.lists[0]: network: the rule also depends on the network (tcp/udp)',
      ],
      [
        'site.dat',
        { sample: 'geosite/v2fly-dlc-excerpt.dat' },
        'site.dat:1:1: rules[3].to.lists[0]: no category "telegramm"',
      ],
      [
        'rev.dat',
        geoipEntry('R', [[[10, 0, 0, 0], 8]], true),
        'rev.dat:1:16: rules[4].to.lists[0]: r: reverse_match is set',
      ],
    ];
    const files = Object.fromEntries(broken.map(([n, v]) => [n, v]));
    const { dir, file } = setup(
      ['d.conf', 'rs.json', 'd.srs', 'site.dat:telegramm', 'rev.dat:r'],
      files,
    );
    const r = await validate(dir, file);
    expect(r.code).toBe(1);
    for (const [, , line] of broken) expect(r.err).toContain(line);
  });

  it('a truncated .dat with its category: the damage at its byte', async () => {
    const whole = readFileSync(join(FIX, 'geosite/v2fly-dlc-excerpt.dat'));
    const { dir, file } = setup(['cut.dat:telegram'], { 'cut.dat': whole.subarray(0, 3100) });
    const r = await validate(dir, file);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'cut.dat:1:2996: rules[0].to.lists[0]: field 1: 367 bytes declared, only 103 left (byte 2995)',
    );
  });
});
