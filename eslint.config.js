// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.cache/**', '.wrangler/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['bin/**/*.js', 'scripts/**/*.mjs', 'bench/**/*.mjs', 'test/**/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-console': 'off',
    },
  },
  {
    // Below broker/ and providers/, the clock and network are injected and Node APIs are off
    // limits outside *.node.ts entry files (tsconfig.web.json enforces the latter too).
    files: ['providers/**/*.ts', 'broker/**/*.ts'],
    ignores: ['**/*.node.ts', 'broker/node.ts', '**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['node:*'], message: 'Web APIs only here; put Node code in a *.node.ts file.' }] }],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'Inject the clock.' }],
    },
  },
  {
    files: ['providers/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['node:*'], message: 'Web APIs only here.' }, { group: ['**/broker/**'], message: 'providers/ must not depend on broker/.' }] },
      ],
    },
  },
);
