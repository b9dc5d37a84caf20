/**
 * bin/awg.js refuses a Node below package.json's engines floor before it loads anything of awg:
 * `unsupported`, exit 3, naming the runtime (Node 18 otherwise ran parts of awg and failed others
 * with messages that did not name it). Each case runs bin/awg.js in a child whose reported
 * version is replaced by a preload.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../helpers/awg.js';

function runAs(version: string): { code: number | null; err: string } {
  const fake = `Object.defineProperty(process, 'version', { value: 'v${version}' }); Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '${version}' } });`;
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(fake)}`,
      join(REPO_ROOT, 'bin/awg.js'),
      '--version',
    ],
    {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      killSignal: 'SIGKILL',
    },
  );
  return { code: r.status, err: r.stderr };
}

describe('the Node.js floor (bin/awg.js)', () => {
  it("is package.json's engines", () => {
    const engines = (
      JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
        engines: { node: string };
      }
    ).engines.node;
    expect(engines).toBe('>=20.19');
    expect(readFileSync(join(REPO_ROOT, 'bin/awg.js'), 'utf8')).toContain(
      '(major === 20 && minor < 19)',
    );
  });

  for (const v of ['18.20.8', '20.18.3', '19.9.0']) {
    it(`refuses Node ${v}: unsupported, exit 3, before awg loads`, { timeout: 90_000 }, () => {
      const r = runAs(v);
      expect(r.code).toBe(3);
      expect(r.err).toBe(
        `awg: error [unsupported]: awg needs Node.js 20.19 or later; ${process.execPath} is v${v}\n` +
          'hint: install Node.js 22 or 24 (docs/troubleshooting.md), or the Debian package, which carries its own\n',
      );
    });
  }

  for (const v of ['20.19.0', '22.0.0', '24.21.0']) {
    it(`lets Node ${v} through`, { timeout: 90_000 }, () => {
      expect(runAs(v).err).not.toMatch(/needs Node\.js/);
    });
  }
});
