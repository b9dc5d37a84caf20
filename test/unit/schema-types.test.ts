/**
 * The published declarations (schema/*.d.ts, `awg/schema/plan` and `awg/schema/config`) accept
 * what awg really prints and reads: every golden `awg diff --json` document and every example
 * config type-checks against them, compiled with the TypeScript API (declarations checked too:
 * `npm run typecheck` skips .d.ts files). Broken documents must not type-check.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  config as consumerConfig,
  describePlan,
  plan as consumerPlan,
} from '../fixtures/schema-consumer.js';

const root = join(import.meta.dirname, '..', '..');
const goldenDir = join(root, 'test', 'fixtures', 'golden');
const examplesDir = join(root, 'examples');

const goldenPlans = readdirSync(goldenDir, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();
const examples = readdirSync(examplesDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

type Source = { name: string; text: string };

function planSource(name: string, doc: unknown): Source {
  return {
    name,
    text: `import type { AwgPlan } from 'awg/schema/plan';\nexport const doc: AwgPlan = ${JSON.stringify(doc, null, 2)};\n`,
  };
}
function configSource(name: string, doc: unknown): Source {
  return {
    name,
    text: `import type { AwgConfiguration } from 'awg/schema/config';\nexport const doc: AwgConfiguration = ${JSON.stringify(doc, null, 2)};\n`,
  };
}

/** compile the sources as files of this package (so `awg/...` resolves through its exports) */
function diagnostics(sources: Source[]): Map<string, string[]> {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(root, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error('tsconfig.json did not parse');
  const options: ts.CompilerOptions = {
    ...parsed.options,
    noEmit: true,
    types: [],
    skipLibCheck: false,
    skipDefaultLibCheck: true,
  };
  const dir = join(root, 'test', 'fixtures', 'schema-consumer-virtual');
  const files = new Map(sources.map((s) => [join(dir, `${s.name}.ts`), s.text]));
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (f) => files.has(f) || fileExists.call(host, f);
  host.readFile = (f) => files.get(f) ?? readFile.call(host, f);
  host.getSourceFile = (f, lang, onError) => {
    const text = files.get(f);
    return text === undefined
      ? getSourceFile.call(host, f, lang, onError)
      : ts.createSourceFile(f, text, lang);
  };
  const program = ts.createProgram({ rootNames: [...files.keys()], options, host });
  const out = new Map<string, string[]>(sources.map((s) => [s.name, []]));
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const file = d.file?.fileName ?? '(global)';
    const name = sources.find((s) => join(dir, `${s.name}.ts`) === file)?.name ?? file;
    const list = out.get(name) ?? [];
    list.push(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    out.set(name, list);
  }
  return out;
}

describe('published schema types (schema/*.d.ts)', () => {
  const good = [
    ...goldenPlans.map((g) =>
      planSource(`plan-${g}`, JSON.parse(readFileSync(join(goldenDir, g, 'plan.json'), 'utf8'))),
    ),
    ...examples.map((f) =>
      configSource(`config-${f}`, parseYaml(readFileSync(join(examplesDir, f), 'utf8'))),
    ),
  ];
  const minimalPlan = JSON.parse(
    readFileSync(join(goldenDir, 'config-mtu-change', 'plan.json'), 'utf8'),
  ) as Record<string, unknown>;
  const minimalConfig = parseYaml(
    readFileSync(join(examplesDir, 'minimal.yaml'), 'utf8'),
  ) as Record<string, unknown>;
  const bad = [
    planSource('bad-plan-action', {
      ...minimalPlan,
      changes: [{ kind: 'link', id: 'link/x', action: 'explode', cause: 'config', reason: 'r' }],
    }),
    planSource('bad-plan-missing-summary', { ...minimalPlan, summary: undefined }),
    planSource('bad-plan-extra-field', { ...minimalPlan, extra: true }),
    configSource('bad-config-version', { ...minimalConfig, version: 2 }),
    configSource('bad-config-unknown-key', { ...minimalConfig, tunnel: {} }),
    configSource('bad-config-tunnel-type', { version: 1, tunnels: { vpn: { type: 'openvpn' } } }),
  ];
  const result = diagnostics([...good, ...bad]);

  it('the inputs exist (every golden plan and every example)', () => {
    expect(goldenPlans.length).toBeGreaterThanOrEqual(10);
    expect(examples).toContain('minimal.yaml');
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  it('nothing outside the sample documents fails (the declarations themselves type-check)', () => {
    const names = new Set([...good, ...bad].map((s) => s.name));
    expect(
      Object.fromEntries([...result].filter(([n, d]) => !names.has(n) && d.length > 0)),
    ).toEqual({});
  });

  for (const s of good)
    it(`${s.name} type-checks`, () => {
      expect(result.get(s.name)).toEqual([]);
    });

  for (const s of bad)
    it(`${s.name} does not type-check`, () => {
      expect(result.get(s.name)?.length ?? 0).toBeGreaterThan(0);
    });

  it('the sample consumer (test/fixtures/schema-consumer.ts) holds real documents', () => {
    expect(consumerPlan).toEqual(minimalPlan);
    expect(consumerConfig).toEqual(minimalConfig);
    expect(describePlan(consumerPlan)).toEqual(['update link/awg-home (config: mtu differ)']);
  });
});
