import { describe, expect, it } from 'vitest';
import { warmUpHandshakes } from '../../../src/dataplane/warmup.js';

describe('warmUpHandshakes', () => {
  it('runs in-memory handshakes once per process and never rejects', async () => {
    const p = warmUpHandshakes(3);
    expect(warmUpHandshakes(50)).toBe(p); // once: the second call gets the same run
    await expect(p).resolves.toBe(3); // every pair handshook and carried packets both ways
  });
});
