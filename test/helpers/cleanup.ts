/**
 * Clean-ups that helper modules register for the test, or the test file, that is running now;
 * test/setup.ts (every project's setup file) runs them after each test and after each file.
 *
 * A helper module must not call afterEach or afterAll at its top level: the unit and netns
 * projects share modules between the files of a worker (isolate: false, vitest.config.ts), so
 * such a hook would be registered once, in the first file that imported the helper, and every
 * later file would leave its processes and directories behind. A setup file runs again for each
 * file.
 */
type Cleanup = () => Promise<void> | void;

const afterTest: Cleanup[] = [];
const afterFile: Cleanup[] = [];

/** run `c` after the current test (the last registered first) */
export function afterThisTest(c: Cleanup): void {
  afterTest.push(c);
}

/** run `c` after the current test file (the last registered first) */
export function afterThisFile(c: Cleanup): void {
  afterFile.push(c);
}

async function drain(list: Cleanup[]): Promise<void> {
  const errors: unknown[] = [];
  for (const c of list.splice(0).reverse()) {
    try {
      await c();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length) throw new AggregateError(errors, `${errors.length} clean-ups failed`);
}

/** test/setup.ts: after each test */
export const runAfterTest = (): Promise<void> => drain(afterTest);
/** test/setup.ts: after each file (what a test registered and did not run is run here too) */
export const runAfterFile = async (): Promise<void> => {
  await drain(afterTest);
  await drain(afterFile);
};
