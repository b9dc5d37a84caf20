/**
 * The floor under a list's apply: the kernel inserting the list's intervals into fresh
 * interval sets, one netlink batch per set, no awg in between (Step 24). The elements are what
 * awg loaded (read back from its sets), so the kernel does the same work as in `awg apply`.
 *
 * Per round: `nft -f` declares table `inet awgfloor` with one interval set per family (as awg
 * declares its `d4_/d6_` sets), the batches are encoded (timed apart: JavaScript, not the
 * kernel), then each is sent and its acknowledgements awaited — the timed part: the netlink
 * transfer, the transaction's inserts into the rbtree, its commit. The table goes after each
 * round.
 */
import { nsExec } from '../test/helpers/netns.js';
import {
  NFT_MSG_NEWSETELEM,
  buildSetElemBatch,
  dumpSetElements,
  intervalRun,
} from '../src/native/nftset.js';
import { NetlinkSocket } from '../src/native/netlink.js';
import { NETLINK_NETFILTER } from '../src/native/nftnl.js';
import { dumpedIntervals } from '../src/resources/firewall/set-elements.js';

export interface FloorSet {
  name: string;
  type: 'ipv4_addr' | 'ipv6_addr';
  elements: string[];
}

/** the intervals of sets `names` of table inet `table` in `netns`, as element strings */
export function readSets(netns: string, table: string, names: [string, FloorSet['type']][]) {
  return names.map(([name, type]): FloorSet => ({
    name,
    type,
    elements: dumpedIntervals(dumpSetElements({ table, set: name, netns })),
  }));
}

export interface FloorRun {
  /** encoding the batches (intervalRun + buildSetElemBatch), ms */
  encodeMs: number;
  /** the kernel: send, inserts, commit, acknowledgements, ms (all sets) */
  insertMs: number;
}

/** one round of the floor in `netns` */
export async function insertFloor(netns: string, sets: readonly FloorSet[]): Promise<FloorRun> {
  const table = 'awgfloor';
  await nsExec(netns, 'nft', [
    [
      `add table inet ${table}`,
      ...sets.map((s) => `add set inet ${table} ${s.name} { type ${s.type}; flags interval; }`),
    ].join('; '),
  ]);
  try {
    let encodeMs = 0;
    let insertMs = 0;
    for (const s of sets) {
      // the encoding: the elements, and the batch once (for its size)
      const t0 = process.hrtime.bigint();
      const raw = intervalRun(s.elements);
      const sized = buildSetElemBatch(NFT_MSG_NEWSETELEM, 'inet', table, s.name, raw, 1);
      encodeMs += Number(process.hrtime.bigint() - t0) / 1e6;
      const bytes = sized.msgs.reduce((n, m) => n + m.length, 0);
      const sock = NetlinkSocket.open({
        protocol: NETLINK_NETFILTER,
        netns,
        sndbuf: 2 ** Math.ceil(Math.log2(bytes + 4096)),
        capAck: true,
      });
      try {
        // built again with the socket's port and seqs (the same bytes otherwise)
        const b = buildSetElemBatch(
          NFT_MSG_NEWSETELEM,
          'inet',
          table,
          s.name,
          raw,
          sock.nextSeq(),
          sock.portid,
        );
        const t1 = process.hrtime.bigint();
        const answers = sock.requestBatch(b.msgs, () => undefined, 60_000, b.acked);
        insertMs += Number(process.hrtime.bigint() - t1) / 1e6;
        for (const q of b.acked)
          if (answers.get(q) !== 0)
            throw new Error(`floor: set ${s.name}: errno ${answers.get(q)} (seq ${q})`);
      } finally {
        sock.close();
      }
    }
    return { encodeMs, insertMs };
  } finally {
    await nsExec(netns, 'nft', [`delete table inet ${table}`]);
  }
}

/**
 * The sets a `lines`-line realisticList (lists-apply.bench.ts) loads as, parsed and merged by
 * awg's list parser (config/lists.ts): what awg's apply writes into d4_/d6_.
 */
export async function listSets(lines: number): Promise<FloorSet[]> {
  const { realisticList } = await import('./lists-apply.bench.js');
  const { parseDestinationList, formatInterval4, formatInterval6 } =
    await import('../src/config/lists.js');
  const { set } = parseDestinationList(realisticList(lines), 'floor.txt');
  return [
    { name: 'd4', type: 'ipv4_addr', elements: set.v4.map(formatInterval4) },
    { name: 'd6', type: 'ipv6_addr', elements: set.v6.map(formatInterval6) },
  ];
}

// `npx tsx bench/lists-floor.ts [lines] [rounds]` (root): the floor alone, in a namespace of its own
if (process.argv[1]?.endsWith('lists-floor.ts')) {
  const { createNetns, destroyNetns } = await import('../test/helpers/netns.js');
  const { median } = await import('./lib.js');
  const lines = Number(process.argv[2] ?? 100_000);
  const rounds = Number(process.argv[3] ?? 3);
  const sets = await listSets(lines);
  const ns = await createNetns('flr');
  try {
    const runs: FloorRun[] = [];
    for (let i = 0; i < rounds; i++) runs.push(await insertFloor(ns, sets));
    const n = sets.map((s) => `${s.name} ${s.elements.length}`).join(', ');
    console.log(
      `floor (${n}): insert median ${median(runs.map((r) => r.insertMs)).toFixed(0)} ms ` +
        `[${runs.map((r) => r.insertMs.toFixed(0)).join(', ')}], encode median ` +
        `${median(runs.map((r) => r.encodeMs)).toFixed(0)} ms`,
    );
  } finally {
    await destroyNetns(ns);
  }
}
