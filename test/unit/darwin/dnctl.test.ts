/**
 * dnctl (dummynet pipes) on the captured outputs (test/fixtures/macos/dummynet/) and on the
 * print formats of dnctl.c; awg's numbering of pipes and class ports.
 */
import { describe, expect, it } from 'vitest';
import {
  DARWIN_SHAPE_PORT_BASE,
  DN_MAX_SLOT,
  DN_PIPE_BASE,
  darwinClassPorts,
  dnctlArgs,
  dnPipeNumber,
  dnQueueKB,
  formatDnBandwidth,
  formatDnQueueBytes,
  isOurPipeNumber,
  parseDnctlError,
  parseDnctlList,
} from '../../../src/platform/darwin/dnctl.js';
import { fixture, sections } from './fixtures.js';

describe('dnctl list', () => {
  it('a pipe with packet loss and one flow (mask and BKT header printed twice)', () => {
    expect(parseDnctlList(fixture('dummynet/dnctl-list-plr-flow-libp2p-2023.txt'))).toEqual([
      {
        pipe: 1,
        bandwidthText: 'unlimited',
        bandwidth: 0,
        delayMs: 0,
        queueText: '50 sl.',
        plr: 0.01,
        queues: 1,
        buckets: 1,
        flows: [
          {
            proto: 'tcp',
            src: '127.0.0.1/63691',
            dst: '127.0.0.1/8080',
            packets: 1011241,
            bytes: 490303519,
            drops: 9463,
          },
        ],
      },
    ]);
  });

  it("a 512 Kbit/s pipe at the end of a script's output (the lines before are other tools')", () => {
    const text = fixture('dummynet/dnctl-flush-pfctl-E-list-512kbit-2019.txt');
    const list = text.slice(text.indexOf('00001:'));
    expect(parseDnctlList(list)).toEqual([
      {
        pipe: 1,
        bandwidthText: '512.000 Kbit/s',
        bandwidth: 512000,
        delayMs: 0,
        queueText: '50 sl.',
        queues: 0,
        buckets: 1,
        flows: [],
      },
    ]);
    expect(text.split('\n')[0]).toBe('Flushed all pipes.');
  });

  it("Network Link Conditioner's two pipes; a macOS 26 line with collapsed spacing", () => {
    const nlc = parseDnctlList(
      sections('dummynet/dnctl-list-nlc-pipes-and-pfctl-s-dummynet-superuser.txt').get(
        'dnctl list',
      )!.text,
    );
    expect(nlc.map((p) => [p.pipe, p.bandwidth, p.delayMs, p.plr, p.queueText])).toEqual([
      [40269, 1_000_000, 500, 0.1, '50 sl.'],
      [40270, 1_000_000, 500, 0.1, '50 sl.'],
    ]);
    expect(parseDnctlList(fixture('dummynet/dnctl-list-50mbit-macos26-FRAGMENT.txt'))).toEqual([
      expect.objectContaining({ pipe: 1, bandwidth: 50_000_000, delayMs: 150, plr: 0.005 }),
    ]);
  });

  it('byte queues, IPv6 flows, queue blocks; an unknown line is an error, not an empty list', () => {
    const text = [
      '45056:  20.000 Mbit/s    0 ms   25 KB 1 queues (1 buckets) droptail',
      '    mask: 0x00 0x00000000/0x0000 -> 0x00000000/0x0000',
      '',
      '        mask: proto: 0x00, flow_id: 0x00000000,  ::/0x0000 -> ::/0x0000',
      'BKT ___Prot___ _flow-id_ ______________Source IPv6/port_______________ _______________Dest. IPv6/port_______________ Tot_pkt/bytes Pkt/Byte Drp',
      '  0       tcp       0                              2001:db8::5/45060                                    2001:db8::9/443    12    15000  0    0   0',
      '45057:   8.000 Kbit/s    0 ms 3072 B 0 queues (1 buckets) droptail',
      '    mask: 0x00 0x00000000/0x0000 -> 0x00000000/0x0000',
      'q00007: weight 1 pipe 45056  50 sl. 0 queues (64 buckets) droptail',
      '    mask: 0x00 0x00000000/0x0000 -> 0x00000000/0x0000',
      '',
    ].join('\n');
    const p = parseDnctlList(text);
    expect(p.map((x) => [x.pipe, x.bandwidth, x.queueText, x.flows.length])).toEqual([
      [45056, 20_000_000, '25 KB', 1],
      [45057, 8000, '3072 B', 0],
    ]);
    expect(p[0]!.flows[0]).toMatchObject({ src: '2001:db8::5/45060', packets: 12, bytes: 15000 });
    expect(() => parseDnctlList('ipfw: something else\n')).toThrow(/does not know/);
  });
});

describe("awg's pipes", () => {
  it("numbers: a slot's two directions next to each other, classes then tunnels, all in one range", () => {
    expect(dnPipeNumber(1, 'egress')).toBe(DN_PIPE_BASE);
    expect(dnPipeNumber(1, 'ingress')).toBe(DN_PIPE_BASE + 1);
    expect(dnPipeNumber(32, 'ingress')).toBe(DN_PIPE_BASE + 63);
    expect(dnPipeNumber(DN_MAX_SLOT, 'ingress')).toBe(DN_PIPE_BASE + 191);
    expect(() => dnPipeNumber(0, 'egress')).toThrow();
    expect(() => dnPipeNumber(DN_MAX_SLOT + 1, 'egress')).toThrow();
    expect(isOurPipeNumber(DN_PIPE_BASE + 191)).toBe(true);
    expect(isOurPipeNumber(DN_PIPE_BASE + 192)).toBe(false);
    expect(isOurPipeNumber(40269)).toBe(false); // Network Link Conditioner's
    // pipe numbers travel in PF's u16 `dnpipe`
    expect(DN_PIPE_BASE + 191).toBeLessThan(65536);
  });

  it('class ports: 32 × 128 below the ephemeral range (49152)', () => {
    expect(darwinClassPorts(1)).toEqual([DARWIN_SHAPE_PORT_BASE, DARWIN_SHAPE_PORT_BASE + 127]);
    expect(darwinClassPorts(32)).toEqual([49024, 49151]);
  });

  it('config argv: every parameter given, bandwidth in plain bit/s, the queue in KB', () => {
    expect(dnctlArgs.config({ pipe: 45056, bandwidth: 20_000_000, queueKB: 25 })).toEqual([
      'pipe',
      '45056',
      'config',
      'bw',
      '20000000bit/s',
      'queue',
      '25Kbytes',
    ]);
    expect(dnctlArgs.delete(45057)).toEqual(['pipe', 'delete', '45057']);
    expect(dnctlArgs.list()).toEqual(['list']);
  });

  it('queue: 10 ms at the rate, at least two packets, at most 1 MB', () => {
    expect(dnQueueKB(20_000_000)).toBe(25); // 25000 bytes
    expect(dnQueueKB(8000)).toBe(3); // 3000 bytes minimum
    expect(dnQueueKB(2_000_000_000)).toBe(1024);
  });

  it("printed forms, as dnctl.c's formats give them", () => {
    expect(formatDnBandwidth(20_000_000)).toBe('20.000 Mbit/s');
    expect(formatDnBandwidth(1_234_567)).toBe('1.235 Mbit/s');
    expect(formatDnBandwidth(512_000)).toBe('512.000 Kbit/s');
    expect(formatDnBandwidth(999)).toBe('999.000 bit/s');
    expect(formatDnBandwidth(0)).toBe('unlimited');
    expect(formatDnQueueBytes(25 * 1024)).toBe('25 KB');
    expect(formatDnQueueBytes(3 * 1024)).toBe('3072 B');
  });

  it("dnctl's errors", () => {
    expect(parseDnctlError('dnctl: socket: Operation not permitted\n')).toEqual({
      kind: 'permission',
      message: 'dnctl: socket: Operation not permitted',
    });
    expect(
      parseDnctlError('dnctl: rule 45056: setsockopt(IP_DUMMYNET_DEL): Invalid argument\n')?.kind,
    ).toBe('no-such-pipe');
    expect(parseDnctlError('')).toBeUndefined();
  });
});
