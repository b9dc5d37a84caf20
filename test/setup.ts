/**
 * Every project's setup file (vitest.config.ts): it runs before each test file, also where a
 * project shares modules between files (unit, netns), and runs the clean-ups that helper modules
 * registered (test/helpers/cleanup.ts) after each test and each file.
 */
import { afterAll, afterEach } from 'vitest';
import { runAfterFile, runAfterTest } from './helpers/cleanup.js';

afterEach(runAfterTest);
afterAll(runAfterFile);
