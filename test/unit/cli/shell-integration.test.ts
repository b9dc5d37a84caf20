/**
 * The generated shell integration works: bash completes commands, subcommands and options
 * of the real CLI; the man page renders without warnings (groff -ww).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');
const onPath = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;

function complete(...words: string[]): string[] {
  const script = `source ${join(root, 'share/completions/awg.bash')}; COMP_WORDS=(awg ${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length}; _awg; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean).sort();
}

describe('bash completion (share/completions/awg.bash)', () => {
  it('commands, subcommands and their options', () => {
    expect(complete('se')).toEqual(['secret', 'service']);
    expect(complete('secret', 'e')).toEqual(['encrypt']);
    expect(complete('secret', 'encrypt', '--r')).toEqual(['--recipient', '--recipients-file']);
    expect(complete('render', '--l')).toEqual(['--labels', '--labels-file']);
    expect(complete('diff', '-f', 'x.yaml', '--obs')).toEqual(['--observed']);
    expect(complete('engine')).toEqual([]); // hidden commands are not offered
  });
});

describe.skipIf(!onPath('groff') && !process.env.CI)('the man page (share/man/awg.1)', () => {
  it('renders without warnings and lists every command', () => {
    // -P-cbou: plain text from grotty (no SGR, no bold or underline overstriking)
    const r = spawnSync(
      'groff',
      ['-man', '-Tutf8', '-ww', '-P-cbou', join(root, 'share/man/awg.1')],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const c of [
      'awg render',
      'awg secret encrypt',
      'awg sync',
      'awg service install',
      'EXIT STATUS',
    ])
      expect(r.stdout).toContain(c);
  });
});
