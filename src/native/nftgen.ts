/**
 * The nf_tables generation (NFT_MSG_GETGEN): a counter the kernel bumps on every committed
 * change, and the stamp that makes it unique beyond one namespace's lifetime. Re-exported by
 * nftset.ts, where its callers have always found it.
 */
import { readFileSync } from 'node:fs';
import { attrList } from './genl.js';
import { NetlinkSocket } from './netlink.js';
import { NETLINK_NETFILTER } from './nftnl.js';
import { buildMessage, NLM_F_ACK, NLM_F_REQUEST } from './rtnl.js';

const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETGEN = 16;
const NFT_MSG_NEWGEN = 15;
const NFTA_GEN_ID = 1;

/**
 * The nf_tables generation of this network namespace (or `netns`'s, for the stamp): a counter the kernel bumps on every
 * committed change (any table, any set element). Equal generations mean an unchanged ruleset,
 * so a listing read at that generation is still what the kernel holds. Undefined when it
 * cannot be read (no nf_tables, no permission): callers then read afresh.
 */
export function nftGeneration(): number | undefined {
  return nftGenerationOf()?.gen;
}

/**
 * The generation with what makes it unique beyond this namespace's lifetime: `<boot id>/<netns
 * cookie>/<generation>` (the cookie, SO_NETNS_COOKIE, is never reused within a boot;
 * the generation restarts in every namespace). Equal stamps: nothing in this namespace's
 * nf_tables changed in between. Undefined when it cannot be read.
 */
export function nftGenerationStamp(netns?: string): string | undefined {
  const g = nftGenerationOf(netns);
  if (g?.cookie === undefined) return undefined;
  let boot: string;
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
  return `${boot}/${g.cookie}/${g.gen}`;
}

function nftGenerationOf(netns?: string): { gen: number; cookie?: bigint } | undefined {
  let sock: NetlinkSocket | undefined;
  try {
    sock = NetlinkSocket.open({ protocol: NETLINK_NETFILTER, netns });
    const msg = buildMessage(
      (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
      NLM_F_REQUEST | NLM_F_ACK,
      sock.nextSeq(),
      0,
      Buffer.from([0 /* AF_UNSPEC */, 0, 0, 0]),
    );
    for (const m of sock.request(msg, 1000)) {
      if (m.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) continue;
      // nfgenmsg (4 bytes), then attributes
      const id = attrList(m.payload, 4).find((a) => a.type === NFTA_GEN_ID);
      if (!id || id.value.length < 4) continue;
      const cookie = sock.netnsCookie();
      return { gen: id.value.readUInt32BE(0), ...(cookie !== undefined ? { cookie } : {}) };
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    sock?.close();
  }
}
