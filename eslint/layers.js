/**
 * The layer rules of docs/architecture.md ("Layers"), as an ESLint rule over every import of
 * a module under src/: static imports (type-only ones included), re-exports and dynamic
 * `import()` with a literal path. Each layer lists what it may import; anything else under
 * src/ is an error. A layer is the first path segment below src/ (a folder, or `errors.ts`);
 * an entry may also name one file (`resources/driver.ts`) or files by a `*` segment
 * (`resources/*\/parse.ts`).
 */
import { dirname, relative, resolve, sep } from 'node:path';

/** layer → what it may import besides itself (keep in step with docs/architecture.md) */
export const LAYERS = {
  'errors.ts': [],
  util: ['errors.ts'],
  native: ['errors.ts', 'util'],
  config: ['errors.ts', 'util'],
  model: ['config', 'errors.ts', 'util'],
  platform: ['model', 'errors.ts', 'util'],
  dataplane: ['native', 'errors.ts', 'util'],
  proxy: ['native', 'errors.ts', 'util'],
  procs: ['model', 'config', 'native', 'resources/*/parse.ts', 'errors.ts', 'util'],
  resources: ['model', 'config', 'native', 'platform', 'dataplane', 'proxy', 'errors.ts', 'util'],
  reconciler: ['model', 'resources/driver.ts', 'errors.ts', 'util'],
  pipeline: ['reconciler', 'resources', 'model', 'config', 'errors.ts', 'util'],
  daemon: [
    'pipeline',
    'reconciler',
    'resources',
    'procs',
    'model',
    'config',
    'native',
    'errors.ts',
    'util',
  ],
  cli: [
    'daemon',
    'pipeline',
    'reconciler',
    'resources',
    'procs',
    'dataplane',
    'proxy',
    'native',
    'platform',
    'model',
    'config',
    'errors.ts',
    'util',
  ],
};

function matches(entry, target) {
  const e = entry.split('/');
  const t = target.split('/');
  if (e.length === 1) return t[0] === e[0];
  return e.length === t.length && e.every((seg, i) => seg === '*' || seg === t[i]);
}

export const layersRule = {
  meta: {
    type: 'problem',
    docs: { description: 'enforce the import layers of docs/architecture.md' },
    schema: [
      { type: 'object', properties: { srcRoot: { type: 'string' } }, additionalProperties: false },
    ],
    messages: {
      forbidden:
        "layer '{{from}}' may not import '{{target}}' ({{allowed}}); see docs/architecture.md#layers",
      unknown:
        "'{{from}}' is not a layer of eslint/layers.js: add it there and to docs/architecture.md",
    },
  },
  create(context) {
    const srcRoot = resolve(context.options[0]?.srcRoot ?? 'src');
    const file = context.filename ?? context.getFilename();
    const rel = relative(srcRoot, file).split(sep).join('/');
    if (rel.startsWith('..') || rel === file) return {};
    const from = rel.split('/')[0];
    const allowed = LAYERS[from];
    const check = (node, source) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const target = relative(srcRoot, resolve(dirname(file), source))
        .split(sep)
        .join('/')
        .replace(/\.js$/, '.ts');
      if (target.startsWith('..')) return;
      const layer = target.split('/')[0];
      if (layer === from) return;
      if (!allowed) return context.report({ node, messageId: 'unknown', data: { from } });
      if (allowed.some((e) => matches(e, target))) return;
      context.report({
        node,
        messageId: 'forbidden',
        data: {
          from,
          target,
          allowed: allowed.length
            ? `it may import ${allowed.join(', ')}`
            : 'it imports nothing of src/',
        },
      });
    };
    return {
      ImportDeclaration: (n) => check(n, n.source.value),
      ExportAllDeclaration: (n) => check(n, n.source.value),
      ExportNamedDeclaration: (n) => n.source && check(n, n.source.value),
      ImportExpression: (n) => n.source.type === 'Literal' && check(n, n.source.value),
      TSImportType: (n) => {
        const v = n.argument?.literal?.value ?? n.argument?.value;
        check(n, v);
      },
    };
  },
};
