import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { Claims } from '../../../src/resources/driver.js';

export const claims: Claims = {
  routeProtocol: 52,
  tableBase: 52000,
  bandSize: 64,
  rulePriority: 5200,
  fwmarkMask: 0xff0000,
  nftTable: 'awg',
  linkPrefix: 'awg-',
  cgroupRoot: 'awg',
};

/** Compare with golden/<name>; UPDATE_GOLDEN=1 rewrites it. */
export function golden(name: string, actual: string): void {
  const p = fileURLToPath(new URL(`./golden/${name}`, import.meta.url));
  if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(p, actual);
  expect(actual).toBe(readFileSync(p, 'utf8'));
}
