/**
 * The rules of the netns tests never match a program the host runs by its name: a placer the
 * test starts sees every exec of the host (the proc connector is host-wide, and a `name` rule
 * has the exec gate mark every file system), so a rule for `apt` or `firefox` would move a real
 * process of that name. Rules name programs of the run's own (test/helpers/procs.ts
 * `runProgram`) or names no host has (`awgt-…`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const NETNS = fileURLToPath(new URL('../../netns/', import.meta.url));
/** names a desktop or server host has, whether or not this one does */
const KNOWN = ['apt', 'firefox', 'firefox-esr', 'curl', 'wget', 'ssh', 'chrome', 'chromium'];
const DIRS = [
  ...(process.env.PATH ?? '').split(delimiter),
  '/usr/local/bin',
  '/usr/bin',
  '/bin',
  '/usr/sbin',
  '/sbin',
].filter(Boolean);

/** the literal program names of `match: { name: X }` (YAML) and `match: { name: 'X' }` (code) */
function literalNames(text: string): string[] {
  return [...text.matchAll(/match: \{ ?name: '?([A-Za-z0-9._+-]+)'? ?[,}]/g)].map((m) => m[1]!);
}

const onHost = (name: string) =>
  KNOWN.includes(name) || DIRS.some((d) => existsSync(join(d, name)));

describe('program names in the netns tests’ rules', () => {
  it('finds the literal names of both spellings, not interpolated ones', () => {
    expect(
      literalNames(
        "match: { name: apt }\nmatch: { name: ${APT} }\n{ match: { name: 'firefox' }, target: 'vpn' }\n{ name: kd, match: { name: kd-app }, target: sk }",
      ),
    ).toEqual(['apt', 'firefox', 'kd-app']);
  });

  it('no rule of a netns test names a program this host (or a usual host) has', () => {
    const found: string[] = [];
    for (const f of readdirSync(NETNS)
      .filter((n) => n.endsWith('.ts'))
      .sort())
      for (const name of literalNames(readFileSync(join(NETNS, f), 'utf8')))
        if (onHost(name)) found.push(`${f}: ${name}`);
    expect(found).toEqual([]);
  });
});
