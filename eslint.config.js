import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { layersRule } from './eslint/layers.js';

// Layers (docs/architecture.md): which folder of src/ may import which is eslint/layers.js.
// Pure modules (the model, plan/verify/revert, the darwin parsers and renderers) also do no
// I/O of their own, which keeps planning testable without root.
const pureIo = {
  group: [
    'node:child_process',
    'child_process',
    'koffi',
    'node:net',
    'node:dgram',
    'node:fs',
    'node:fs/promises',
    'fs',
  ],
  message: 'pure modules do no I/O',
};
// Test doubles stay out of dist/ (tsconfig.build.json leaves them out): production code must
// not import them, or the build would pull them back in (test/unit/build-contents.test.ts).
const testDoubles = {
  group: ['**/fake.js', '**/fake-*.js', '**/tun/memory.js', '**/conn/memory.js', './memory.js'],
  message: 'test doubles are not built into dist/; only tests (and other test doubles) import them',
};
// node:crypto's key generation jobs can deadlock Node 20 when a GC collects one while its key is
// exported as JWK (seen under ~KeyGenJob in ExportJWKEdKey); WireGuard keys are a clamped random
// scalar (src/dataplane/crypto/keys.ts generateKeyPair, test/helpers/awg.ts wgKeyPair)
const keyGenJob = {
  selector:
    'ImportDeclaration[source.value=/^(node:)?crypto$/] > ImportSpecifier[imported.name=/^generateKeyPair(Sync)?$/]',
  message:
    'no node:crypto generateKeyPair(Sync): a Node 20 deadlock; use generateKeyPair from src/dataplane/crypto/keys.ts (tests: wgKeyPair)',
};
// ipaddr.js imported as an ES module costs every process ≈ 5 MiB (src/util/ipaddr.ts loads it with require)
const ipaddrPath = {
  name: 'ipaddr.js',
  message: 'import ipaddr from src/util/ipaddr.ts (≈ 5 MiB less RSS per process)',
};
const testDoubleFiles = [
  'src/**/fake.ts',
  'src/**/fake-*.ts',
  'src/dataplane/tun/memory.ts',
  'src/dataplane/conn/memory.ts',
];

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'schema/**',
      'coverage/**',
      '.scratch/**',
      '.test-results/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    // Type-checked rules (they read the TypeScript program through tsconfig.json): a promise
    // nobody awaits or handles, an async function where a callback's result is ignored, and
    // `await` on something that is not a promise are real mistakes in a daemon that must not
    // fail open on an unhandled rejection.
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { awg: { rules: { layers: layersRule } } },
    rules: { 'awg/layers': 'error' },
  },
  {
    // `import { z }` keeps zod's whole namespace object, so the bundle that `validate` loads would
    // carry all of zod's locales and JSON-Schema converters (≈ 560 KiB); `import * as z` does not
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector:
            "ImportDeclaration[source.value='zod'] > :matches(ImportSpecifier[imported.name='z'], ImportDefaultSpecifier)",
          message: "import * as z from 'zod' (the named z puts all of zod in the CLI's start-up)",
        },
        keyGenJob,
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'no-restricted-syntax': ['error', keyGenJob] },
  },
  {
    files: ['src/**/*.ts'],
    ignores: [...testDoubleFiles, 'src/util/ipaddr.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: [ipaddrPath], patterns: [testDoubles] }] },
  },
  {
    // a later no-restricted-imports replaces an earlier one: the pure block repeats the test-double patterns
    files: [
      'src/model/**/*.ts',
      'src/platform/**/*.ts',
      'src/reconciler/plan.ts',
      'src/reconciler/verify.ts',
      'src/reconciler/revert.ts',
    ],
    rules: {
      'no-restricted-imports': ['error', { paths: [ipaddrPath], patterns: [pureIo, testDoubles] }],
    },
  },
);
