import { defineConfig } from 'vitest/config';

// Three projects: pure/unit tests run anywhere; fuzz runs the property-based targets with a
// small number of cases (npm run fuzz: the long run); netns tests need root, iproute2, nft and
// network namespaces. They run one file at a time because they share the host kernel.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        // property-based fuzzing (fast-check); AWG_FUZZ_RUNS scales the cases (test/fuzz/runner.ts)
        test: {
          name: 'fuzz',
          include: ['test/fuzz/**/*.fuzz.ts'],
          testTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'netns',
          include: ['test/netns/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          pool: 'forks',
        },
      },
    ],
  },
});
