/**
 * A socket double for the routing reader (resources/route/probe-netlink.ts): it answers each
 * dump with the replies captured from a kernel (test/fixtures/linux/route/netlink/,
 * scripts/capture-route-fixtures.ts) of its kind and family, and counts the requests.
 */
import { readFileSync } from 'node:fs';
import { DumpInterrupted } from '../../../../src/native/netlink.js';
import {
  NLM_F_DUMP,
  RTM_GETLINK,
  RTM_GETROUTE,
  parseMessages,
  type NlMessage,
} from '../../../../src/native/rtnl.js';
import { RTM_GETRULE } from '../../../../src/native/rtnl-routing.js';
import {
  RoutingReader,
  type RoutingSocket,
} from '../../../../src/resources/route/probe-netlink.js';

export const fx = (f: string) =>
  readFileSync(new URL(`../../../fixtures/linux/route/netlink/${f}`, import.meta.url), 'utf8');
export const captured = (f: string): NlMessage[] =>
  fx(`${f}.hex`)
    .split('\n')
    .filter(Boolean)
    .flatMap((h) => parseMessages(Buffer.from(h, 'hex')));

/**
 * answers each dump with the captured replies of its kind and family; counts the requests.
 * `interrupt`: the kinds whose first dump the kernel flags as interrupted (NLM_F_DUMP_INTR).
 */
export function replaying(interrupt: readonly string[] = []) {
  const asked: string[] = [];
  const toInterrupt = new Set(interrupt);
  const replies = (msg: Buffer): NlMessage[] => {
    const type = msg.readUInt16LE(4);
    if (!(msg.readUInt16LE(6) & NLM_F_DUMP)) throw new Error('only dumps are replayed');
    const v = msg.readUInt8(16) === 10 ? 'v6' : 'v4';
    const what =
      type === RTM_GETLINK
        ? 'links'
        : type === RTM_GETROUTE
          ? `${v}-routes`
          : type === RTM_GETRULE
            ? `${v}-rules`
            : '?';
    asked.push(what);
    if (toInterrupt.delete(what)) throw new DumpInterrupted(type);
    return captured(what);
  };
  const sock: RoutingSocket = {
    portid: 1,
    nextSeq: () => 1,
    // the reader dumps through dump(), which reads an interrupted dump again; request() is
    // for its route get, which these tests do not ask
    request: () => {
      throw new Error('only dumps are replayed, through dump()');
    },
    dump: <T>(msg: Buffer, parse: (m: NlMessage) => T | undefined) =>
      replies(msg).flatMap((m) => {
        const v = parse(m);
        return v === undefined ? [] : [v];
      }),
    close: () => {},
  };
  return { reader: new RoutingReader(sock), asked };
}
