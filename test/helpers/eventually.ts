/**
 * Waits for a condition without a deadline of its own; the test's timeout bounds the wait.
 * vi.waitFor gives up after 1 s by default (expect.poll likewise; the unit project's config
 * lifts that one), and what a unit test waits for (a real timer, a socket, a thread, a child
 * process) can take longer than that on a loaded machine: CI's 2-core runner, beside the
 * netns tests. Not a timing assertion: it only says "until this holds".
 */
import { vi } from 'vitest';

/** far past any unit test's timeout (vitest.config.ts): the test's own timeout ends the wait */
export const NO_DEADLINE_MS = 600_000;

/** vi.waitFor(check) until it holds, however long that takes (polled every `interval` ms) */
export const eventually = <T>(check: () => T | Promise<T>, interval = 20): Promise<T> =>
  vi.waitFor(check, { timeout: NO_DEADLINE_MS, interval });
