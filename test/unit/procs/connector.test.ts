import { describe, expect, it } from 'vitest';
import {
  PLACEMENT_MASK,
  PROC_CN_MCAST_LISTEN,
  PROC_EVENT,
  buildMcastMessage,
  buildProcEvent,
  kernelFiltersEvents,
  parseProcMessage,
} from '../../../src/procs/connector.js';

/**
 * An EXEC datagram as received on the 6.18 test VM (docs/platform-linux.md#proc-connector): nlmsghdr len 76
 * type 3, cn_msg {idx 1, val 1, seq, ack 0, len 40}, proc_event {what 2, cpu 1,
 * timestamp_ns (unaligned, offset 44), pid 15251, tgid 15251}.
 */
const EXEC_HEX =
  '4c000000030000000000000000000000' + // nlmsghdr
  '01000000010000002a0000000000000028000000' + // cn_msg (seq 42, len 40)
  '0200000001000000' + // what EXEC, cpu 1
  '723bd9d444040000' + // timestamp_ns LE
  '933b0000933b0000' + // pid, tgid 15251
  '0000000000000000' + // unused union bytes
  '0000000000000000';

describe('proc connector messages', () => {
  it('parses an EXEC datagram at the documented offsets (unaligned u64 timestamp)', () => {
    const b = Buffer.from(EXEC_HEX, 'hex');
    expect(b.length).toBe(76);
    expect(parseProcMessage(b)).toEqual({
      type: 'exec',
      ts: 0x444d4d93b72n,
      pid: 15251,
      tgid: 15251,
    });
  });

  it('parses FORK (parent/child pid and tgid), EXIT (wait status, signal) and the ACK', () => {
    expect(parseProcMessage(buildProcEvent(PROC_EVENT.FORK, 7n, [100, 101, 200, 200]))).toEqual({
      type: 'fork',
      ts: 7n,
      parentPid: 100,
      parentTgid: 101,
      childPid: 200,
      childTgid: 200,
    });
    expect(parseProcMessage(buildProcEvent(PROC_EVENT.EXIT, 8n, [5, 5, 768, -1]))).toEqual({
      type: 'exit',
      ts: 8n,
      pid: 5,
      tgid: 5,
      exitCode: 768,
      exitSignal: -1,
    });
    expect(parseProcMessage(buildProcEvent(PROC_EVENT.NONE, 0n, [0]))).toEqual({
      type: 'ack',
      err: 0,
    });
    expect(parseProcMessage(buildProcEvent(PROC_EVENT.COMM, 9n, [1, 1]))).toEqual({
      type: 'other',
      what: PROC_EVENT.COMM,
      ts: 9n,
    });
  });

  it('rejects what is not a proc-connector event', () => {
    const b = buildProcEvent(PROC_EVENT.EXEC, 1n, [1, 1]);
    expect(parseProcMessage(b.subarray(0, 40))).toBeUndefined();
    const wrongIdx = Buffer.from(b);
    wrongIdx.writeUInt32LE(2, 16);
    expect(parseProcMessage(wrongIdx)).toBeUndefined();
    const wrongType = Buffer.from(b);
    wrongType.writeUInt16LE(2, 4);
    expect(parseProcMessage(wrongType)).toBeUndefined();
    const longer = Buffer.from(b);
    longer.writeUInt32LE(200, 0);
    expect(parseProcMessage(longer)).toBeUndefined();
  });

  it('builds the 40-byte LISTEN and the 44-byte filtered LISTEN', () => {
    const l = buildMcastMessage(0x1234, PROC_CN_MCAST_LISTEN);
    expect(l.toString('hex')).toBe(
      '28000000030000000000000034120000' + '0100000001000000000000000000000004000000' + '01000000',
    );
    const f = buildMcastMessage(7, PROC_CN_MCAST_LISTEN, PLACEMENT_MASK);
    expect(f.length).toBe(44);
    expect(f.readUInt32LE(0)).toBe(44);
    expect(f.readUInt16LE(32)).toBe(8);
    expect([f.readUInt32LE(36), f.readUInt32LE(40)]).toEqual([1, 3]);
  });

  it('kernel-side filtering from 6.6 on', () => {
    expect(kernelFiltersEvents('6.1.0-18-amd64')).toBe(false);
    expect(kernelFiltersEvents('6.6.0')).toBe(true);
    expect(kernelFiltersEvents('6.18.44')).toBe(true);
    expect(kernelFiltersEvents('7.0')).toBe(true);
    expect(kernelFiltersEvents('5.15.0')).toBe(false);
  });
});
