/**
 * TUN offloads against the real kernel: two namespaces joined by two TunFiles wired back to
 * back in this process (what one reads is written to the other), a TCP transfer between
 * them. With offloads the sender's kernel hands over TSO super-packets (split here) and the
 * receiver's kernel takes coalesced ones (GRO here); the bytes must arrive intact either
 * way, over IPv4 and IPv6.
 */
import { describe, expect, it } from 'vitest';
import { bulkTransfer } from '../helpers/bulk.js';
import { nsExec, requireNetnsPrereqs, withNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['ip']);
const tunFile = skip ? undefined : await import('../../src/dataplane/tun/file.js');

const BYTES = 24 * 1024 * 1024;

async function transfer(
  a: string,
  b: string,
  v6: boolean,
  offload: boolean | 'gro',
  writePool: boolean | 'eager' = false,
) {
  const ta = tunFile!.TunFile.open('awg-oa', { netns: a, offload, writePool });
  const tb = tunFile!.TunFile.open('awg-ob', { netns: b, offload, writePool });
  try {
    ta.onReceive((p) => tb.write(p));
    tb.onReceive((p) => ta.write(p));
    const [aAddr, bAddr, plen] = v6
      ? ['fd00:201:60::1', 'fd00:201:60::2', 64]
      : ['10.201.60.1', '10.201.60.2', 24];
    for (const [ns, dev, addr] of [
      [a, 'awg-oa', aAddr],
      [b, 'awg-ob', bAddr],
    ] as const) {
      await nsExec(ns, 'ip', [
        'addr',
        'add',
        `${addr}/${plen}`,
        'dev',
        dev,
        ...(v6 ? ['nodad'] : []),
      ]);
      await nsExec(ns, 'ip', ['link', 'set', dev, 'up']);
    }
    const r = await bulkTransfer(a, b, bAddr, 9000, BYTES);
    expect(r.codes).toEqual([0, 0]);
    expect(r.sent).toMatch(new RegExp(`^${BYTES} [0-9a-f]{64}$`));
    expect(r.received).toBe(r.sent);
    return {
      a: { ...ta.stats },
      b: { ...tb.stats },
      offload: ta.offload && tb.offload,
      pool: [ta.poolStats, tb.poolStats],
    };
  } finally {
    ta.close();
    tb.close();
  }
}

describe.skipIf(skip)(
  'TUN offloads (IFF_VNET_HDR, TSO split, GRO coalescing) against the kernel',
  () => {
    for (const v6 of [false, true]) {
      it(`${v6 ? 'IPv6' : 'IPv4'}: TCP bytes arrive intact; the sender's reads are super-packets, the receiver's writes coalesced`, async () => {
        await withNetns(['offl-a', 'offl-b'], async (a, b) => {
          const r = await transfer(a, b, v6, true);
          expect(r.offload).toBe(true);
          expect(r.a.gsoReads).toBeGreaterThan(0);
          expect(r.a.gsoSegments).toBeGreaterThan(r.a.gsoReads);
          expect(r.b.groWrites).toBeGreaterThan(0);
          expect(r.b.groPackets).toBeGreaterThan(r.b.groWrites);
          expect(r.a.rxDropped + r.b.rxDropped).toBe(0);
          // fewer writes than packets: the receiving kernel saw coalesced segments
          expect(r.b.groPackets).toBeGreaterThan(r.b.txPackets / 4);
        });
      }, 60_000);
    }

    it("writes on libuv's pool (AWG_TUN_WRITE=pool): the same bytes, the groups written there in order", async () => {
      await withNetns(['offl-a', 'offl-b'], async (a, b) => {
        const r = await transfer(a, b, false, true, 'eager');
        expect(r.offload).toBe(true);
        expect(r.b.groWrites).toBeGreaterThan(0);
        // the data's coalesced groups went to the pool (the other way: ACKs, written inline)
        const [pa, pb] = r.pool;
        expect(pa!.active && pb!.active).toBe(true);
        expect(pb!.written).toBeGreaterThan(0);
        expect(pa!.failed + pb!.failed).toBe(0);
      });
    }, 60_000);

    it("'gro' (diagnosis): plain reads, coalesced writes, the same bytes", async () => {
      await withNetns(['offl-a', 'offl-b'], async (a, b) => {
        const r = await transfer(a, b, false, 'gro');
        expect(r.offload).toBe(true);
        expect(r.a.gsoReads + r.b.gsoReads).toBe(0);
        expect(r.b.groWrites).toBeGreaterThan(0);
      });
    }, 60_000);

    it('offloads off (the diagnosis switch): plain packets, the same bytes', async () => {
      await withNetns(['offl-a', 'offl-b'], async (a, b) => {
        const r = await transfer(a, b, false, false);
        expect(r.offload).toBe(false);
        expect(r.a.gsoReads + r.b.gsoReads + r.a.groWrites + r.b.groWrites).toBe(0);
      });
    }, 60_000);
  },
);
