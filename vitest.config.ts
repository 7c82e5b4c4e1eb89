import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    globalSetup: ['test/global-setup.ts'],
    // Each file has its own database; two workers fit this 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 20_000,
    hookTimeout: 60_000,
    // The tests run the TypeScript sources, also when they spawn bin/scalar.mjs, whatever
    // state dist/ is in; test/e2e/dev.test.ts unsets it to run `npm start`'s compiled build.
    env: { SCALAR_FROM_SOURCE: '1' },
  },
});
