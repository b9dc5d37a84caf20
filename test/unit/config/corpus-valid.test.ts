/**
 * Valid-config corpus: every file in test/fixtures/valid/ loads with no errors, and reports
 * exactly the warnings listed in its leading `# expect-warn: <line>:<col> <path> <substring>`
 * lines (none when there are no such lines). The result must also build into a desired
 * state and plan without throwing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { effectiveMtu } from '../../../src/config/mtu.js';
import { secretRefs } from '../../../src/config/secrets.js';
import { formatPath } from '../../../src/config/positions.js';
import { linuxDesired } from '../../helpers/desired.js';
import { plan } from '../../../src/reconciler/plan.js';
import { formatIssue } from '../../../src/errors.js';

const dir = resolve(import.meta.dirname, '../../fixtures/valid');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function expectedWarnings(text: string) {
  const out: { line: number; col: number; path: string; message: string }[] = [];
  for (const l of text.split('\n')) {
    const m = /^# expect-warn: (\d+):(\d+) (\S+) (.+)$/.exec(l);
    if (!m) break;
    out.push({
      line: Number(m[1]),
      col: Number(m[2]),
      path: m[3] === '-' ? '' : m[3]!,
      message: m[4]!,
    });
  }
  return out;
}

describe('valid config corpus', () => {
  it('has cases', () => expect(files.length).toBeGreaterThanOrEqual(10));

  it.each(files)('%s', (f) => {
    const file = join(dir, f);
    const text = readFileSync(file, 'utf8');
    const r = loadConfigText(text, file);
    expect(r.issues.filter((i) => i.severity === 'error').map(formatIssue)).toEqual([]);
    expect(r.config).toBeDefined();
    const warnings = r.issues.filter((i) => i.severity === 'warning');
    const want = expectedWarnings(text);
    const left = [...warnings];
    const missing: string[] = [];
    for (const w of want) {
      const k = left.findIndex(
        (i) =>
          i.line === w.line &&
          i.col === w.col &&
          i.path === w.path &&
          i.message.includes(w.message),
      );
      if (k < 0) missing.push(`${w.line}:${w.col} ${w.path} ${w.message}`);
      else left.splice(k, 1);
    }
    expect({ missing, unexpected: left.map(formatIssue) }).toEqual({ missing: [], unexpected: [] });

    // loading is deterministic and the model builds and plans
    expect(loadConfigText(text, file).config).toEqual(r.config);
    const secrets = new Map(
      secretRefs(r.config!).map((s) => [formatPath(s.path), `fake:${formatPath(s.path)}`]),
    );
    const d = linuxDesired(r.config!, { facts: { cgroupNftPrefix: '' }, secrets });
    const ids = d.resources.map((x) => x.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(() => plan(d, { resources: [], foreign: [] })).not.toThrow();
  });
});

describe('defaults filled in by the schema', () => {
  it('version-only config', () => {
    const r = loadConfigText('version: 1\n', 'x.yaml');
    expect(r.issues).toEqual([]);
    expect(r.config).toEqual({
      version: 1,
      tunnels: {},
      rules: [],
      default: 'direct',
      killSwitch: 'off',
      dns: { leakProtection: false, perApp: true, system: 'keep' },
      ipv6: 'allow',
      routing: {
        tableBase: 52000,
        rulePriority: 5200,
        fwmarkMask: 0x0f000000,
        routeProtocol: 0xa7,
        proxyPortBase: 15200,
      },
    });
  });

  it('tunnel and rule defaults', () => {
    const r = loadConfigText(readFileSync(join(dir, '05-proxies-only.yaml'), 'utf8'), 'x.yaml');
    expect(r.config!.tunnels.squid).toEqual({
      type: 'http',
      server: '10.0.0.1',
      port: 8080,
      tls: false,
      dns: [],
    });
    expect(r.config!.rules[0]).toEqual({
      match: { dir: '/usr/lib/torbrowser', ignoreCase: false },
      target: 'tor',
      fallback: 'block',
      enabled: true,
    });
    const w = loadConfigText(readFileSync(join(dir, '06-name-boundaries.yaml'), 'utf8'), 'x.yaml')
      .config!.tunnels.abcdefghijk!;
    if (w.type !== 'wireguard') throw new Error('type');
    expect(w).toMatchObject({ dns: [] });
    expect(w.mtu).toBeUndefined();
    expect(effectiveMtu(w)).toBe(1420);
  });
});
