/** Counterexamples found by test/fuzz/uapi.fuzz.ts, kept as explicit regression tests. */
import { describe, expect, it } from 'vitest';
import { IPC_ERROR, UapiError, parseUapiSet } from '../../../src/dataplane/device/uapi.js';

describe('uapi/set-text', () => {
  // seed 1100837412: a device key named after an Object.prototype member was looked up in the
  // key table's prototype and accepted, storing the range under "[object Object]" / a
  // function's source instead of refusing an unknown key
  it.each([
    '__proto__=' + '0'.repeat(64),
    'toString=5',
    'constructor=1',
    'hasOwnProperty=1-2',
    'valueOf=0',
  ])('refuses %s as an unknown key', (line) => {
    let err: unknown;
    try {
      parseUapiSet(`set=1\n${line}\n\n`);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UapiError);
    // UAPI keys are [a-z0-9_] (uapi-text.ts): a key with capitals is a malformed line before
    // any lookup; the lower-case prototype names reach the key table and are unknown there
    if (/[A-Z]/.test(line)) {
      expect((err as UapiError).errno).toBe(IPC_ERROR.PROTOCOL);
      expect((err as Error).message).toMatch(/^malformed line/);
    } else {
      expect((err as UapiError).errno).toBe(IPC_ERROR.INVALID);
      expect((err as Error).message).toMatch(/^unknown device key/);
    }
  });
});
