import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { layersRule } from './eslint/layers.js';

// Layers (docs/architecture.md): which folder of src/ may import which is eslint/layers.js.
// Pure modules (the model, plan/verify/revert, the darwin parsers and renderers) also do no
// I/O of their own, which keeps planning testable without root.
const pureRestrictions = {
  patterns: [{ group: ['node:child_process', 'child_process', 'koffi', 'node:net', 'node:dgram', 'node:fs', 'node:fs/promises', 'fs'], message: 'pure modules do no I/O' }],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'schema/**', 'coverage/**', '.scratch/**', '.test-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { awg: { rules: { layers: layersRule } } },
    rules: { 'awg/layers': 'error' },
  },
  {
    files: ['src/model/**/*.ts', 'src/platform/**/*.ts', 'src/reconciler/plan.ts', 'src/reconciler/verify.ts', 'src/reconciler/revert.ts'],
    rules: { 'no-restricted-imports': ['error', pureRestrictions] },
  },
);
