import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The e2e tests spawn bin/pluginctl.js, which runs the compiled build/: rebuild it when stale.
    globalSetup: ['test/global-setup.ts'],
    // Integration and e2e suites run real processes (sh, tar): give them room on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
