import { defineConfig } from 'vitest/config';

// Tests import sibling packages by name; the `@lattice/source` export condition points them at
// `src/` so a test never runs against a stale `dist/`.
const conditions = ['@lattice/source', 'node', 'development|production'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: ['{proto,deploy,packages/*,services/*}/test/**/*.test.ts'],
    globalSetup: ['./vitest.global-setup.ts'],
    reporters: ['default', ['json', { outputFile: '.vitest-report.json' }]],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // fast-check prints its seed on failure; keep the output readable.
    printConsoleTrace: false,
  },
});
