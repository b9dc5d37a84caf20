import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Pure layers (config, model, reconciler) must not reach the system: they import neither
// native bindings, resource drivers nor node I/O modules. This keeps planning testable
// without root and makes the boundary visible.
const pureRestrictions = {
  patterns: [
    { group: ['**/native/**', '**/resources/**/linux*', '**/resources/**/darwin*', '**/daemon/**', '**/cli/**'], message: 'pure layers must not import drivers, native bindings, the daemon or the CLI' },
    { group: ['node:child_process', 'child_process', 'koffi', 'node:net', 'node:dgram'], message: 'pure layers do no I/O' },
  ],
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
    files: ['src/model/**/*.ts', 'src/reconciler/plan.ts', 'src/reconciler/verify.ts', 'src/reconciler/revert.ts'],
    rules: { 'no-restricted-imports': ['error', pureRestrictions] },
  },
);
