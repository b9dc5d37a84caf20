import { describe, expect, it } from 'vitest';
import { defaultPaths } from '../../../src/util/paths.js';

describe('default paths per OS', () => {
  it('Linux: /var/lib/awg and /run/awg/awg.sock', () => {
    expect(defaultPaths('linux')).toEqual({ stateDir: '/var/lib/awg', socket: '/run/awg/awg.sock' });
  });
  it('macOS has no /run or /var/lib: /Library/Application Support/awg and /var/run/awg/awg.sock', () => {
    expect(defaultPaths('darwin')).toEqual({ stateDir: '/Library/Application Support/awg', socket: '/var/run/awg/awg.sock' });
  });
});
