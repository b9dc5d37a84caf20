import { relative } from 'node:path';
import { configDefaults, defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The netns files CI runs two at a time (AWG_NETNS_SET=paired; scripts/test.sh), then the rest
 * one at a time (AWG_NETNS_SET=alone). Each file builds namespaces, a cgroup subtree, a state
 * and a UAPI directory of its own, and its owner locks are per namespace; the files here
 * synchronise on events (a converge, a capture's marker, a probe's answer) and assert no wall
 * time, rate or latency, so a busy second core changes how long they take, not what they
 * see. They wait most of the time (on the kernel, a peer, a handshake, a health bound): two at
 * once nearly halve their time. What measures the kernel or our timing (limits, exec-gate's
 * bound, health bounds, top, the dataplane's, nftset's and domain-rules' expiries, the
 * starvation guard, interop's rekey) stays alone. Unset: every file, one at a time, as before.
 *
 * Pairing more does not pay: with 18 more files here (the list, proxy and daemon files, which
 * also time nothing), CI's paired phase took 1,229 s instead of 872 and the one-at-a-time
 * phase 1,115 instead of 1,409 (local CI, 2 cores). The added files spend CPU, not waits:
 * paired, each took 1.4–1.85× its time alone, and the paired phase keeps both cores busy.
 */
const NETNS_PAIRED = [
  'crash-points',
  'leak-killswitch',
  'perapp-fallback',
  'proxy-product',
  'proxy-udp-product',
  'leak-dns',
  'no-default-route',
  'e2e-faults',
  'daemon-killswitch',
  'perapp-rules',
  'daemon-authz',
  'leak-kernel-replies',
  'leak-ipv6',
  'owner',
  'fleet',
  'daemon-placement',
  'e2e-apply',
  'ipv6-modes',
  'perapp-exec',
  'explain',
  'e2e-tunnel',
  'proxy-udp',
  'killswitch-boot',
  'daemon-killswitch-hostname',
  'exec',
  'hostile-state',
  'import-vpn',
  'daemon-api',
].map((f) => `test/netns/${f}.test.ts`);

/**
 * NETNS_PAIRED's files in its order (the longest first, by CI's durations), so that the last
 * file to start is a short one; everything else as vitest orders it (its cache of durations,
 * else file size: crash-points.test.ts, the longest, is among the smallest files).
 */
class NetnsPairedFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) =>
      NETNS_PAIRED.indexOf(relative(f.project.config.root, f.moduleId));
    const paired = sorted.filter((f) => rank(f) >= 0).sort((a, b) => rank(a) - rank(b));
    return sorted.map((f) => (rank(f) >= 0 ? paired.shift()! : f));
  }
}
/** every project's: the clean-ups helper modules register (test/helpers/cleanup.ts) */
const SETUP = 'test/setup.ts';
const netnsSet = process.env.AWG_NETNS_SET || undefined;
if (netnsSet !== undefined && netnsSet !== 'paired' && netnsSet !== 'alone')
  throw new Error(`AWG_NETNS_SET=${netnsSet}: paired, alone or unset`);

// Four projects: pure/unit tests run anywhere; fuzz runs the property-based targets with a
// small number of cases (npm run fuzz: the long run); netns tests need root, iproute2, nft and
// network namespaces. They run one file at a time because they share the host kernel (CI runs
// the files NETNS_PAIRED lists two at a time, below), and after the unit project (sequence.groupOrder), so unit workers do not load the 2-core CI
// machine while the netns tests' engines and daemons start.
export default defineConfig({
  test: {
    ...(netnsSet === 'paired' ? { sequence: { sequencer: NetnsPairedFirst } } : {}),
    projects: [
      {
        test: {
          name: 'unit',
          setupFiles: [SETUP],
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
          // CI runs the unit tests in an idle CPU cgroup beside the netns tests: a set-up hook
          // that spawns processes (git init and config: rollout-restart.test.ts) waited past the
          // default 10 s there on Node 22. A bound on a hang, not a timing
          hookTimeout: 60_000,
          // expect.poll without a deadline of its own (its default gives up after 1 s): what a
          // unit test polls for (a socket, a child process, a timer) can take longer on a loaded
          // machine; the test's timeout bounds the wait (test/helpers/eventually.ts for vi.waitFor)
          expect: { poll: { timeout: 600_000 } },
          // one module graph per worker, not per file: isolated, each of the ~360 files
          // imported the graph again, and the project took 423 s of CPU (379 s wall) against
          // 138 s (160 s) shared, on Node 20 and 2 cores; CI runs it three times (Node 20/22/24)
          // beside the netns tests. A test that needs module state of its own imports a fresh
          // instance (vi.resetModules: warmup.test.ts, settle.test.ts); helpers register their
          // clean-ups through test/helpers/cleanup.ts (test-helpers.test.ts checks)
          isolate: false,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // property-based fuzzing (fast-check); AWG_FUZZ_RUNS scales the cases (test/fuzz/runner.ts)
        test: {
          name: 'fuzz',
          setupFiles: [SETUP],
          include: ['test/fuzz/**/*.fuzz.ts'],
          testTimeout: 120_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'netns',
          setupFiles: [SETUP],
          include: netnsSet === 'paired' ? NETNS_PAIRED : ['test/netns/**/*.test.ts'],
          ...(netnsSet === 'alone'
            ? { exclude: [...configDefaults.exclude, ...NETNS_PAIRED] }
            : {}),
          testTimeout: 120_000,
          hookTimeout: 120_000,
          ...(netnsSet === 'paired' ? { maxWorkers: 2 } : { fileParallelism: false }),
          pool: 'forks',
          // one fork per worker for all its files, not one per file: a file's fork and import
          // cost ≈ 0.64 s of CPU (15 short files: 67.4 s of CPU isolated, 57.7 shared), and
          // both netns phases keep CI's two cores busy. The files share no module state they
          // change: namespaces, cgroups and state directories are per file, inNetns switches
          // the thread back, clean-ups run after each file (test/setup.ts)
          isolate: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // booted Debian 12 hosts (systemd-nspawn -b): systemd, resolved, NetworkManager, the
        // .deb, reboots (test/host/README.md); one host at a time, after the netns tests
        test: {
          name: 'host',
          setupFiles: [SETUP],
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
