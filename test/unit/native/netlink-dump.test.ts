/**
 * The link and address dumps (src/native/netlink.ts `dumpLinks`, `dumpAddresses`) when the
 * kernel flags a dump as interrupted (NLM_F_DUMP_INTR on its NLMSG_DONE: the table changed
 * while it was read, so rows may be missing or repeated) or ends it with an errno. The
 * socket's own receive path runs: its file descriptor is one end of an AF_UNIX datagram
 * pair, the test queues the kernel's answers on the other end before the requests are sent
 * (the socket reads synchronously) and reads the requests back from it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AwgError } from '../../../src/errors.js';
import { close, E, rawLibcFunc, recv, SyscallError, send } from '../../../src/native/libc.js';
import { dumpAddresses, dumpLinks, NetlinkSocket } from '../../../src/native/netlink.js';
import {
  AF_INET,
  IFA_LOCAL,
  IFLA_IFNAME,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  attr,
  buildMessage,
  ifaddrmsg,
  ifinfomsg,
  parseAddr,
  strAttr,
} from '../../../src/native/rtnl.js';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;
const PORTID = 4242;

const socketpair = rawLibcFunc<(d: number, t: number, p: number, sv: Int32Array) => number>(
  'int socketpair(int d, int t, int p, _Out_ int *sv)',
);

/** an answer of the kernel: its data messages, then NLMSG_DONE with these flags and this error */
interface Answer {
  rows: ((seq: number) => Buffer)[];
  intr?: boolean;
  errno?: number;
}

const open: number[] = [];
afterEach(() => {
  for (const fd of open.splice(0)) close(fd);
});

/**
 * A NetlinkSocket over one end of a datagram pair, with each answer queued (one datagram
 * each, as the kernel batches a small dump) under the seq of the request it answers: the
 * socket's next ones, in order.
 */
function kernel(answers: Answer[]) {
  const sv = new Int32Array(2);
  expect(socketpair!(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)).toBe(0);
  const [ours, theirs] = [sv[0]!, sv[1]!];
  open.push(ours, theirs);
  // the constructor takes the descriptor it reads and writes; open() would make a real one
  const Ctor = NetlinkSocket as unknown as new (
    fd: number,
    portid: number,
    groups: number,
  ) => NetlinkSocket;
  const sock = new Ctor(ours, PORTID, 0);
  let seq = sock.nextSeq();
  for (const a of answers) {
    seq += 1;
    const done = Buffer.alloc(4);
    done.writeInt32LE(-(a.errno ?? 0), 0);
    const flags = NLM_F_MULTI | (a.intr ? NLM_F_DUMP_INTR : 0);
    const answer = Buffer.concat([
      ...a.rows.map((row) => row(seq)),
      buildMessage(NLMSG_DONE, flags, seq, PORTID, done),
    ]);
    expect(send(theirs, answer)).toBe(answer.length);
  }
  /** the requests the socket sent: their type and seq */
  const requests = (): { type: number; seq: number }[] => {
    const out: { type: number; seq: number }[] = [];
    const buf = Buffer.alloc(4096);
    for (;;) {
      const n = recv(theirs, buf);
      if (n === -E.EAGAIN) return out;
      expect(n).toBeGreaterThan(0);
      out.push({ type: buf.readUInt16LE(4), seq: buf.readUInt32LE(8) });
    }
  };
  return { sock, requests };
}

const link = (ifindex: number, name: string) => (seq: number) =>
  buildMessage(RTM_NEWLINK, NLM_F_MULTI, seq, PORTID, ifinfomsg(0, ifindex), [
    strAttr(IFLA_IFNAME, name),
  ]);
const address = (ifindex: number, ip: string) => (seq: number) =>
  buildMessage(RTM_NEWADDR, NLM_F_MULTI, seq, PORTID, ifaddrmsg(AF_INET, 24, 0, 0, ifindex), [
    attr(IFA_LOCAL, parseAddr(ip)),
  ]);
/** an errno answered as NLMSG_ERROR (the kernel refused the request itself) */
const refused = (errno: number) => (seq: number) => {
  const b = Buffer.alloc(20);
  b.writeInt32LE(-errno, 0);
  return buildMessage(NLMSG_ERROR, 0, seq, PORTID, b);
};

describe.skipIf(!socketpair)('an interrupted link or address dump', () => {
  it('links: the interrupted answer is read again, and the consistent one is returned', () => {
    const { sock, requests } = kernel([
      { rows: [link(1, 'lo'), link(2, 'eth0')], intr: true },
      { rows: [link(1, 'lo'), link(3, 'eth1')] },
    ]);
    expect(dumpLinks(sock).map((l) => [l.ifindex, l.ifname])).toEqual([
      [1, 'lo'],
      [3, 'eth1'],
    ]);
    const asked = requests();
    expect(asked.map((r) => r.type)).toEqual([RTM_GETLINK, RTM_GETLINK]);
    // a fresh request each time: the interrupted answer's late parts are not taken for the new one
    expect(asked[1]!.seq).not.toBe(asked[0]!.seq);
  });

  it('addresses: the interrupted answer is read again, and the consistent one is returned', () => {
    const { sock, requests } = kernel([
      { rows: [address(2, '10.0.0.1')], intr: true },
      { rows: [address(2, '10.0.0.1'), address(3, '10.1.0.1')] },
    ]);
    expect(dumpAddresses(sock).map((a) => [a.ifindex, a.address])).toEqual([
      [2, '10.0.0.1'],
      [3, '10.1.0.1'],
    ]);
    expect(requests().map((r) => r.type)).toEqual([RTM_GETADDR, RTM_GETADDR]);
  });

  it.each([
    ['links', (s: NetlinkSocket) => dumpLinks(s), RTM_GETLINK, link(1, 'lo')],
    ['addresses', (s: NetlinkSocket) => dumpAddresses(s), RTM_GETADDR, address(1, '127.0.0.1')],
  ] as const)(
    '%s interrupted every time: an error after three reads, none of them returned',
    (_, read, type, row) => {
      const every = { rows: [row], intr: true };
      const { sock, requests } = kernel([every, every, every, every]);
      let err: unknown;
      try {
        read(sock);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AwgError);
      expect((err as AwgError).kind).toBe('driver');
      expect((err as Error).message).toMatch(/interrupted by a concurrent change 3 times/);
      expect(requests().map((r) => r.type)).toEqual([type, type, type]);
    },
  );
});

describe.skipIf(!socketpair)('a link or address dump that ends in an errno', () => {
  it.each([
    ['links', (s: NetlinkSocket) => dumpLinks(s)],
    ['addresses', (s: NetlinkSocket) => dumpAddresses(s)],
  ] as const)('%s: the errno of NLMSG_DONE or NLMSG_ERROR is the error, read once', (_, read) => {
    for (const answer of [
      { rows: [link(1, 'lo')], errno: E.EBUSY },
      { rows: [refused(E.EPERM)] },
    ]) {
      const { sock, requests } = kernel([answer, { rows: [link(1, 'lo')] }]);
      expect(() => read(sock)).toThrow(SyscallError);
      expect(requests()).toHaveLength(1);
    }
  });

  it('an errno after an interrupted read is the error, not the interruption nor an empty listing', () => {
    const { sock, requests } = kernel([
      { rows: [link(1, 'lo')], intr: true },
      { rows: [], errno: E.EBUSY },
      { rows: [link(1, 'lo')] },
    ]);
    let err: unknown;
    try {
      dumpLinks(sock);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).errno).toBe(E.EBUSY);
    expect(requests()).toHaveLength(2);
  });
});
