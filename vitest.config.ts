import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The e2e tests spawn bin/pluginctl.js, which runs the compiled build/: rebuild it when stale.
    globalSetup: ['test/global-setup.ts'],
    // Integration and e2e suites run real processes (sh, tar, sshd, stand-ins): give them room.
    // On a 2-core machine at load 12-20 they took up to 10x their quiet time; a timeout only
    // bounds how long a hung test takes to fail, so it is generous, never a speed check.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
