/**
 * A rule's `to:` (destinations): the schema (match, to or both), inline domains/cidrs checked
 * in the list grammar, list files read relative to the config and reported at file:line.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { loadConfigText } from '../../../src/config/load.js';
import { formatIssue } from '../../../src/errors.js';
import { tempDir } from '../../helpers/tmp.js';

const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PEER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

const config = (rules: string) => `version: 1
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
${rules}`;

function load(rules: string, files: Record<string, string> = {}) {
  const dir = tempDir('awg-to-');
  const file = join(dir, 'awg.yaml');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const text = config(rules);
  writeFileSync(file, text);
  const r = loadConfigText(text, file);
  return {
    ...r,
    dir,
    file,
    errors: r.issues.filter((i) => i.severity === 'error').map(formatIssue),
  };
}

describe('rules: to', () => {
  it('accepts match alone, to alone, and both', () => {
    const r = load(`  - name: prog
    match: {name: curl}
    target: vpn
  - name: dest
    to: {domains: [example.org, "*.example.net"], cidrs: [203.0.113.0/24, "2001:db8::/32"]}
    target: vpn
  - name: both
    match: {name: firefox}
    to: {cidrs: [198.51.100.7]}
    target: direct
`);
    expect(r.errors).toEqual([]);
    expect(r.config?.rules.map((x) => [x.match !== undefined, x.to !== undefined])).toEqual([
      [true, false],
      [false, true],
      [true, true],
    ]);
    const dest = r.destinations?.get('dest');
    expect([...dest!.domains.names('domain')]).toEqual(['example.org']);
    expect([...dest!.domains.names('wildcard')]).toEqual(['example.net']);
    expect(dest?.v4).toEqual([{ start: 0xcb007100, end: 0xcb0071ff }]);
    expect(dest?.v6.length).toBe(1);
    expect(r.destinations?.has('prog')).toBe(false);
    expect(r.destinations?.get('both')?.v4).toEqual([{ start: 0xc6336407, end: 0xc6336407 }]);
  });

  it('refuses a rule with neither match nor to, at the rule', () => {
    const r = load(`  - target: vpn
`);
    expect(r.errors).toEqual([`${r.file}:12:5: rules[0]: a rule needs \`match\`, \`to\`, or both`]);
  });

  it('refuses an empty to, and unknown fields in to', () => {
    const r = load(`  - to: {domains: []}
    target: vpn
  - to: {hosts: [a.example]}
    target: vpn
`);
    expect(r.errors.join('\n')).toContain(
      'rules[0].to: `to` needs at least one non-empty `domains`, `cidrs` or `lists`',
    );
    expect(r.errors.join('\n')).toContain('rules[1].to.hosts: unknown field "hosts"');
  });

  it('warns at `to` when a rule with match and to comes before another program rule (placement is by the first)', () => {
    const r = load(`  - match: { name: curl }
    to: { cidrs: [203.0.113.0/24] }
    target: vpn
  - name: rest
    match: { name: curl }
    target: direct
  - to: { cidrs: [198.51.100.0/24] }
    target: vpn
`);
    expect(r.config).toBeDefined();
    const warnings = r.issues.filter((i) => i.severity === 'warning').map(formatIssue);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^${r.file}:13:9: warning: rules\\[0\\]\\.to: `));
    expect(warnings[0]).toContain('rules[1] (rest)');
    // a destination-only rule after it is not a program rule: no warning for that alone
    const quiet = load(`  - match: { name: curl }
    to: { cidrs: [203.0.113.0/24] }
    target: vpn
  - to: { cidrs: [198.51.100.0/24] }
    target: vpn
`);
    expect(quiet.issues.filter((i) => i.severity === 'warning')).toEqual([]);
  });

  it('locates a bad inline cidr or domain at its element', () => {
    const r = load(`  - to:
      cidrs: [203.0.113.0/24, 203.0.113.1/24]
      domains:
        - example.org
        - "bad name.example"
    target: vpn
`);
    expect(r.config).toBeUndefined();
    expect(r.errors).toHaveLength(2);
    expect(r.errors[0]).toMatch(new RegExp(`^${r.file}:13:31: rules\\[0\\]\\.to\\.cidrs\\[1\\]: `));
    expect(r.errors[0]).toContain('203.0.113.0/24');
    expect(r.errors[1]).toMatch(
      new RegExp(`^${r.file}:16:11: rules\\[0\\]\\.to\\.domains\\[1\\]: `),
    );
  });

  it('reads a list relative to the config and merges it with the inline values', () => {
    const r = load(
      `  - name: blocked
    to: {lists: [lists/blocked.txt], cidrs: [10.9.0.0/16]}
    target: vpn
`,
      {
        'lists/blocked.txt':
          '# blocked\nexample.org\n*.example.net  # wildcard\n\n203.0.113.0/24\n',
      },
    );
    expect(r.errors).toEqual([]);
    const d = r.destinations?.get('blocked');
    expect([...d!.domains.names('domain')]).toEqual(['example.org']);
    expect([...d!.domains.names('wildcard')]).toEqual(['example.net']);
    expect(d?.v4).toEqual([
      { start: 0x0a090000, end: 0x0a09ffff },
      { start: 0xcb007100, end: 0xcb0071ff },
    ]);
    expect(r.listFiles).toEqual([join(r.dir, 'lists/blocked.txt')]);
  });

  it('reports a bad list line at list:line:col and keeps the config back', () => {
    const r = load(
      `  - to: {lists: [blocked.txt]}
    target: vpn
`,
      { 'blocked.txt': 'example.org\n\n   203.0.113.1/24\nok.example\n' },
    );
    expect(r.config).toBeUndefined();
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(
      new RegExp(
        `^${join(r.dir, 'blocked.txt')}:3:4: rules\\[0\\]\\.to\\.lists\\[0\\]: 203\\.0\\.113\\.1/24 has host bits set; it means 203\\.0\\.113\\.0/24`,
      ),
    );
  });

  it('reports a missing list at the value that names it', () => {
    const r = load(
      `  - to:
      lists: [here.txt, missing.txt]
    target: vpn
`,
      { 'here.txt': 'example.org\n' },
    );
    expect(r.errors).toEqual([
      `${r.file}:13:25: rules[0].to.lists[1]: list ${join(r.dir, 'missing.txt')}: file not found`,
    ]);
  });

  it('refuses a directory as a list', () => {
    const r = load(
      `  - to: {lists: [sub]}
    target: vpn
`,
      { 'sub/x': '' },
    );
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain('rules[0].to.lists[0]: list ');
    expect(r.errors[0]).toContain('not read: the file is a directory');
  });
});

describe('awg validate with a list', () => {
  async function validate(rules: string, files: Record<string, string>) {
    const dir = tempDir('awg-to-cli-');
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, config(rules));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    let out = '';
    let err = '';
    const io: Io = { out: (s) => (out += s), err: (s) => (err += s), colour: false };
    const code = await main(['node', 'awg', 'validate', '-f', file], io);
    return { code, out, err, dir };
  }

  it('passes a config whose list is valid', async () => {
    const r = await validate(`  - to: {lists: [l.txt]}\n    target: vpn\n`, {
      'l.txt': 'example.org\n2001:db8::/32\n',
    });
    expect(r.err).not.toContain('rules[');
    expect(r.code).toBe(0);
  });

  it('fails naming the bad list line', async () => {
    const r = await validate(`  - to: {lists: [l.txt]}\n    target: vpn\n`, {
      'l.txt': 'example.org\nnot/a/name\n',
    });
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(`${join(r.dir, 'l.txt')}:2:1: rules[0].to.lists[0]: `);
  });
});
