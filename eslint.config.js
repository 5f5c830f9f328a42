// ESLint (flat config): typescript-eslint's type-checked rules on every TypeScript file (src, workers, test),
// ESLint's recommended rules on the plain JavaScript (the install scripts, the dashboard's browser modules).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'models/', 'coverage/'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      // One program for everything: test/tsconfig.json includes src, workers, test and vitest.config.ts with the
      // root's compiler options, so src is type-checked once (the project service would build a second program
      // for the root tsconfig).
      parserOptions: { project: './test/tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // An `_`-prefixed parameter or binding is unused on purpose (a callback's signature, a property left out of
      // a rest object); anything else unused is dead code.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // `void promise` is not handling it: a rejection there is unhandled and ends the process (or a worker with
      // every request on it). Every promise is awaited, returned, or given a rejection handler that says what
      // a failure means.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
    },
  },
  {
    // Tests read untyped data (HTTP JSON bodies, YAML manifests, values from a browser page) and check its shape
    // with expect(), which is the type check there; declaring a type for every body would restate the API.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    files: ['scripts/**/*.{js,mjs}', 'eslint.config.js'],
    extends: [js.configs.recommended],
    languageOptions: { globals: globals.node },
  },
  {
    files: ['**/*.cjs'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
  },
  {
    files: ['src/dashboard/public/**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: { globals: globals.browser },
  },
);
