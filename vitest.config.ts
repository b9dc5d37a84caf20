import { defineConfig } from 'vitest/config';

// Four projects: pure/unit tests run anywhere; fuzz runs the property-based targets with a
// small number of cases (npm run fuzz: the long run); netns tests need root, iproute2, nft and
// network namespaces. They run one file at a time because they share the host kernel, and
// after the unit project (sequence.groupOrder), so unit workers do not load the 2-core CI
// machine while the netns tests' engines and daemons start.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // property-based fuzzing (fast-check); AWG_FUZZ_RUNS scales the cases (test/fuzz/runner.ts)
        test: {
          name: 'fuzz',
          include: ['test/fuzz/**/*.fuzz.ts'],
          testTimeout: 120_000,
          sequence: { groupOrder: 0 },
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
          sequence: { groupOrder: 1 },
        },
      },
      {
        // booted Debian 12 hosts (systemd-nspawn -b): systemd, resolved, NetworkManager, the
        // .deb, reboots (test/host/README.md); one host at a time, after the netns tests
        test: {
          name: 'host',
          include: ['test/host/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          fileParallelism: false,
          pool: 'forks',
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
